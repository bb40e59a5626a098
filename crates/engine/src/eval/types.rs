//! Input/output type checking with defaults and the original's exact messages (docs/JCL.md §2.5).
//!
//! A declaration (`in:`, `out:`, `env:` line) is an [`IoSpec`]; its type is resolved once
//! (at compile time) to an [`IoType`] via a [`SchemaRegistry`]. [`check_inputs`] validates and
//! completes an argument object, [`check_outputs`] validates an output object. Both keep
//! undeclared extra keys. The sqlstate of every [`TypeError`] is `P0001`.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::value::json_type_name;

/// One of the six base types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseType {
    /// `null`
    Null,
    /// `boolean`
    Boolean,
    /// `number` (integers and floats)
    Number,
    /// `string`
    String,
    /// `array`
    Array,
    /// `object`
    Object,
}

impl BaseType {
    /// The base type of this name, if it is one.
    pub fn from_name(name: &str) -> Option<BaseType> {
        Some(match name {
            "null" => BaseType::Null,
            "boolean" => BaseType::Boolean,
            "number" => BaseType::Number,
            "string" => BaseType::String,
            "array" => BaseType::Array,
            "object" => BaseType::Object,
            _ => return None,
        })
    }

    /// The type's name.
    pub fn name(self) -> &'static str {
        match self {
            BaseType::Null => "null",
            BaseType::Boolean => "boolean",
            BaseType::Number => "number",
            BaseType::String => "string",
            BaseType::Array => "array",
            BaseType::Object => "object",
        }
    }

    /// Does a value have this JSON type?
    pub fn matches(self, v: &Value) -> bool {
        json_type_name(v) == self.name()
    }
}

/// A resolved declared type.
#[derive(Debug, Clone, PartialEq)]
pub enum IoType {
    /// A base type: `null` or a value of that JSON type is accepted.
    Base(BaseType),
    /// A registered JSON-Schema type (e.g. `integer`): the value, null included, must validate.
    Schema {
        /// The type name as declared.
        name: String,
        /// The (resolved) schema document.
        schema: Value,
    },
}

impl IoType {
    /// The type name for messages.
    pub fn name(&self) -> &str {
        match self {
            IoType::Base(b) => b.name(),
            IoType::Schema { name, .. } => name,
        }
    }
}

/// One declared input, output or action-environment parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct IoSpec {
    /// Parameter name.
    pub name: String,
    /// Its type.
    pub ty: IoType,
    /// Default value (inputs/env only); a parameter with a default is optional.
    pub default: Option<Value>,
    /// `optional` (outputs only).
    pub optional: bool,
}

impl IoSpec {
    /// A required parameter of a base type (convenience for tests and built-ins);
    /// `None` if `ty` is not a base type name.
    pub fn base(name: &str, ty: &str) -> Option<IoSpec> {
        Some(IoSpec {
            name: name.to_string(),
            ty: IoType::Base(BaseType::from_name(ty)?),
            default: None,
            optional: false,
        })
    }

    /// Build from a parsed io-spec line, resolving its type name with `registry`
    /// (`input`: for `in:`/`env:` lines; only used in messages).
    pub fn from_ast(
        spec: &crate::syntax::ast::IoSpec,
        registry: &SchemaRegistry,
        input: bool,
    ) -> Result<IoSpec, TypeError> {
        Ok(IoSpec {
            name: spec.name.clone(),
            ty: registry.resolve(&spec.ty, &spec.name, input)?,
            default: spec.default.clone(),
            optional: spec.optional,
        })
    }

    /// Build a whole `in:`/`out:`/`env:` section (see [`IoSpec::from_ast`]).
    pub fn from_ast_list(
        specs: &[crate::syntax::ast::IoSpec],
        registry: &SchemaRegistry,
        input: bool,
    ) -> Result<Vec<IoSpec>, TypeError> {
        specs
            .iter()
            .map(|s| IoSpec::from_ast(s, registry, input))
            .collect()
    }

    /// The same spec with a default value.
    pub fn with_default(mut self, default: Value) -> IoSpec {
        self.default = Some(default);
        self
    }

    /// The same spec marked `optional`.
    pub fn optional(mut self) -> IoSpec {
        self.optional = true;
        self
    }
}

/// A type-check or type-resolution failure, with the original's exact text as `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// An input of a base type has a value of another JSON type.
    #[error("input argument \"{name}\" has wrong type {actual} (should be {expected})")]
    WrongInputType {
        /// Parameter name.
        name: String,
        /// JSON type of the value.
        actual: &'static str,
        /// Declared type.
        expected: String,
    },
    /// An input of a schema type does not validate (note the literal backslash-n).
    #[error("input argument \"{name}\" with value \"{value}\" does not validate against schema:\\n\"{schema}\"")]
    InputSchema {
        /// Parameter name.
        name: String,
        /// Compact JSON text of the value.
        value: String,
        /// The schema, pretty-printed with 4-space indentation.
        schema: String,
    },
    /// A required input is absent.
    #[error("required input argument \"{name}\" not found")]
    MissingInput {
        /// Parameter name.
        name: String,
    },
    /// A non-optional output is absent.
    #[error("required output parameter {name} not found")]
    MissingOutput {
        /// Parameter name.
        name: String,
    },
    /// An output of a base type has a value of another JSON type (sic: "ouput").
    #[error("ouput parameter {name} has wrong type {actual} (should be {expected})")]
    WrongOutputType {
        /// Parameter name.
        name: String,
        /// JSON type of the value.
        actual: &'static str,
        /// Declared type.
        expected: String,
    },
    /// An output of a schema type does not validate (a real newline here).
    #[error("output parameter \"{name}\" with value \"{value}\" does not validate against schema:\n\"{schema}\"")]
    OutputSchema {
        /// Parameter name.
        name: String,
        /// Compact JSON text of the value.
        value: String,
        /// The schema, pretty-printed with 4-space indentation.
        schema: String,
    },
    /// A type name that is neither a base type nor registered (a compile-time error).
    #[error("unknown type {name}")]
    UnknownType {
        /// The type name.
        name: String,
    },
    /// A `jcdb:OTHER#/path` reference to an unregistered type (sic: "unkown").
    #[error("unkown type {other} referenced from schema {schema} for {what} {param}")]
    UnknownReferencedType {
        /// The referenced type.
        other: String,
        /// The referencing type.
        schema: String,
        /// `input argument` or `output parameter`.
        what: &'static str,
        /// Parameter name.
        param: String,
    },
}

impl TypeError {
    /// The sqlstate the original reports for type-check errors: `P0001`.
    pub fn sqlstate(&self) -> &'static str {
        "P0001"
    }
}

/// The registered JSON-Schema types (original: table `json_schemas`).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaRegistry {
    schemas: BTreeMap<String, Value>,
}

impl Default for SchemaRegistry {
    fn default() -> Self {
        SchemaRegistry::new()
    }
}

impl SchemaRegistry {
    /// A registry with the built-in `integer` type (`{"type":"integer"}`).
    pub fn new() -> SchemaRegistry {
        let mut schemas = BTreeMap::new();
        schemas.insert(
            "integer".to_string(),
            serde_json::json!({"type": "integer"}),
        );
        SchemaRegistry { schemas }
    }

    /// Register (or replace) a schema type. The document may also be a JSON string
    /// `"jcdb:OTHER#/path"`: the sub-schema at `/path` of registered type OTHER.
    pub fn insert(&mut self, name: &str, schema: Value) {
        self.schemas.insert(name.to_string(), schema);
    }

    /// The raw registered document of a type.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schemas.get(name)
    }

    /// Resolve a declared type name: base types first, then registered schemas (following
    /// `jcdb:` references). `param`/`input` only serve the error message.
    pub fn resolve(&self, name: &str, param: &str, input: bool) -> Result<IoType, TypeError> {
        if let Some(b) = BaseType::from_name(name) {
            return Ok(IoType::Base(b));
        }
        let doc = self
            .schemas
            .get(name)
            .ok_or_else(|| TypeError::UnknownType {
                name: name.to_string(),
            })?;
        let mut schema = doc.clone();
        // Follow jcdb: references (bounded, to survive cycles).
        for _ in 0..16 {
            let Some(reference) = schema.as_str().and_then(|s| s.strip_prefix("jcdb:")) else {
                break;
            };
            let (other, path) = reference.split_once('#').unwrap_or((reference, ""));
            let target =
                self.schemas
                    .get(other)
                    .ok_or_else(|| TypeError::UnknownReferencedType {
                        other: other.to_string(),
                        schema: name.to_string(),
                        what: if input {
                            "input argument"
                        } else {
                            "output parameter"
                        },
                        param: param.to_string(),
                    })?;
            schema = target.pointer(path).cloned().unwrap_or(Value::Null);
        }
        Ok(IoType::Schema {
            name: name.to_string(),
            schema,
        })
    }
}

/// Compact JSON text of a value (as in the schema messages).
fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A schema pretty-printed with 4-space indentation.
pub fn pretty_schema(schema: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if schema.serialize(&mut ser).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Check and complete input arguments (docs/JCL.md §2.5 "Input check"), consuming the object:
/// declared inputs in order; absent ones get their default (not type-checked) or fail;
/// extra keys are kept.
pub fn check_inputs_owned(
    spec: &[IoSpec],
    mut args: Map<String, Value>,
) -> Result<Map<String, Value>, TypeError> {
    for p in spec {
        match args.get(&p.name) {
            Some(v) => match &p.ty {
                IoType::Base(b) => {
                    if !v.is_null() && !b.matches(v) {
                        return Err(TypeError::WrongInputType {
                            name: p.name.clone(),
                            actual: json_type_name(v),
                            expected: b.name().to_string(),
                        });
                    }
                }
                IoType::Schema { schema, .. } => {
                    if !validate(schema, v) {
                        return Err(TypeError::InputSchema {
                            name: p.name.clone(),
                            value: compact(v),
                            schema: pretty_schema(schema),
                        });
                    }
                }
            },
            None => match &p.default {
                Some(d) => {
                    args.insert(p.name.clone(), d.clone());
                }
                None => {
                    return Err(TypeError::MissingInput {
                        name: p.name.clone(),
                    })
                }
            },
        }
    }
    Ok(args)
}

/// Check and complete input arguments (borrowing variant of [`check_inputs_owned`]).
pub fn check_inputs(
    spec: &[IoSpec],
    args: &Map<String, Value>,
) -> Result<Map<String, Value>, TypeError> {
    check_inputs_owned(spec, args.clone())
}

/// Check an output object (docs/JCL.md §2.5 "Output check"): every declared output present
/// unless `optional`, of the right type; extra keys are allowed.
pub fn check_outputs(spec: &[IoSpec], outs: &Map<String, Value>) -> Result<(), TypeError> {
    for p in spec {
        match outs.get(&p.name) {
            None => {
                if !p.optional {
                    return Err(TypeError::MissingOutput {
                        name: p.name.clone(),
                    });
                }
            }
            Some(v) => match &p.ty {
                IoType::Base(b) => {
                    if !v.is_null() && !b.matches(v) {
                        return Err(TypeError::WrongOutputType {
                            name: p.name.clone(),
                            actual: json_type_name(v),
                            expected: b.name().to_string(),
                        });
                    }
                }
                IoType::Schema { schema, .. } => {
                    if !validate(schema, v) {
                        return Err(TypeError::OutputSchema {
                            name: p.name.clone(),
                            value: compact(v),
                            schema: pretty_schema(schema),
                        });
                    }
                }
            },
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// A small JSON-Schema (draft 4) validator
// ---------------------------------------------------------------------------------------

/// Does `v` validate against `schema`? Supports the draft-4 keywords listed in docs/JCL.md §2.5
/// (`pattern`/`patternProperties` use the Perl-subset matcher of [`super::regex`]; a
/// pattern it cannot compile never matches).
pub fn validate(schema: &Value, v: &Value) -> bool {
    validate_at(schema, schema, v, 0)
}

fn is_integer_value(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "integer" => is_integer_value(v),
        "any" => true,
        other => json_type_name(v) == other,
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_equal(p, q)))
        }
        _ => a == b,
    }
}

fn validate_at(root: &Value, schema: &Value, v: &Value, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    let s = match schema {
        Value::Object(s) => s,
        Value::Bool(b) => return *b,
        _ => return true,
    };
    let sub = |sch: &Value, val: &Value| validate_at(root, sch, val, depth + 1);
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = r.strip_prefix('#').and_then(|p| root.pointer(p));
        return match target {
            Some(t) => sub(t, v),
            None => false,
        };
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(name) => type_matches(name, v),
            Value::Array(names) => names
                .iter()
                .filter_map(Value::as_str)
                .any(|n| type_matches(n, v)),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.iter().any(|o| json_equal(o, v)) {
            return false;
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        if !all.iter().all(|x| sub(x, v)) {
            return false;
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf") {
        if !any.iter().any(|x| sub(x, v)) {
            return false;
        }
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        if one.iter().filter(|x| sub(x, v)).count() != 1 {
            return false;
        }
    }
    if let Some(not) = s.get("not") {
        if sub(not, v) {
            return false;
        }
    }
    match v {
        Value::Number(n) => validate_number(s, n.as_f64().unwrap_or(0.0)),
        Value::String(text) => {
            let len = text.chars().count() as u64;
            let min_ok = s
                .get("minLength")
                .and_then(Value::as_u64)
                .is_none_or(|m| len >= m);
            let max_ok = s
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_none_or(|m| len <= m);
            let pattern_ok = s
                .get("pattern")
                .and_then(Value::as_str)
                .is_none_or(|p| pattern_matches(p, text));
            min_ok && max_ok && pattern_ok
        }
        Value::Array(items) => validate_array(s, items, &sub),
        Value::Object(obj) => validate_object(s, obj, &sub),
        _ => true,
    }
}

fn pattern_matches(pattern: &str, text: &str) -> bool {
    super::regex::is_match(pattern, text).unwrap_or(false)
}

fn validate_number(s: &Map<String, Value>, x: f64) -> bool {
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let excl = s
            .get("exclusiveMinimum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if x < min || (excl && x == min) {
            return false;
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let excl = s
            .get("exclusiveMaximum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if x > max || (excl && x == max) {
            return false;
        }
    }
    if let Some(m) = s.get("multipleOf").and_then(Value::as_f64) {
        if m > 0.0 {
            let q = x / m;
            if (q - q.round()).abs() > 1e-9 {
                return false;
            }
        }
    }
    true
}

fn validate_array(
    s: &Map<String, Value>,
    items: &[Value],
    sub: &dyn Fn(&Value, &Value) -> bool,
) -> bool {
    let len = items.len() as u64;
    if s.get("minItems")
        .and_then(Value::as_u64)
        .is_some_and(|m| len < m)
    {
        return false;
    }
    if s.get("maxItems")
        .and_then(Value::as_u64)
        .is_some_and(|m| len > m)
    {
        return false;
    }
    if s.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        for (i, a) in items.iter().enumerate() {
            if items[i + 1..].iter().any(|b| json_equal(a, b)) {
                return false;
            }
        }
    }
    match s.get("items") {
        Some(Value::Array(tuple)) => {
            for (item, sch) in items.iter().zip(tuple) {
                if !sub(sch, item) {
                    return false;
                }
            }
            if items.len() > tuple.len() {
                if let Some(extra) = s.get("additionalItems") {
                    if !items[tuple.len()..].iter().all(|x| sub(extra, x)) {
                        return false;
                    }
                }
            }
        }
        Some(sch) if !items.iter().all(|x| sub(sch, x)) => return false,
        _ => {}
    }
    true
}

fn validate_object(
    s: &Map<String, Value>,
    obj: &Map<String, Value>,
    sub: &dyn Fn(&Value, &Value) -> bool,
) -> bool {
    let len = obj.len() as u64;
    if s.get("minProperties")
        .and_then(Value::as_u64)
        .is_some_and(|m| len < m)
    {
        return false;
    }
    if s.get("maxProperties")
        .and_then(Value::as_u64)
        .is_some_and(|m| len > m)
    {
        return false;
    }
    if let Some(Value::Array(req)) = s.get("required") {
        if !req
            .iter()
            .filter_map(Value::as_str)
            .all(|k| obj.contains_key(k))
        {
            return false;
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    let pattern_props = s.get("patternProperties").and_then(Value::as_object);
    for (k, val) in obj {
        let mut matched = false;
        if let Some(sch) = props.and_then(|p| p.get(k)) {
            matched = true;
            if !sub(sch, val) {
                return false;
            }
        }
        for (pattern, sch) in pattern_props.into_iter().flatten() {
            if pattern_matches(pattern, k) {
                matched = true;
                if !sub(sch, val) {
                    return false;
                }
            }
        }
        if !matched {
            if let Some(extra) = s.get("additionalProperties") {
                if !sub(extra, val) {
                    return false;
                }
            }
        }
    }
    if let Some(Value::Object(deps)) = s.get("dependencies") {
        for (k, dep) in deps {
            if !obj.contains_key(k) {
                continue;
            }
            let ok = match dep {
                Value::Array(names) => names
                    .iter()
                    .filter_map(Value::as_str)
                    .all(|n| obj.contains_key(n)),
                sch => sub(sch, &Value::Object(obj.clone())),
            };
            if !ok {
                return false;
            }
        }
    }
    true
}
