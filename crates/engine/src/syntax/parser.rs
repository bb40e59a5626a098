//! Recursive-descent parser for the complete JCL grammar (docs/JCL.md §1.8) with Perl operator
//! precedence (§1.4), producing the AST of [`super::ast`].
//!
//! Syntax errors stop the parse (like the original PEG, one per file). Resolution errors
//! that do not disturb the structure (`unknown function F`, `invalid top level X for ...`,
//! objects not available in a context, argument rules of functions) are collected and the
//! parse continues, so one run reports all of them.
//!
//! Pattern-recognised Perl: a Perl block consisting only of white space used as an
//! assignment list (the documented way to write a call without inputs, `[[ ]]`) is
//! accepted as an empty map. Every other Perl block is kept in the AST and rejected by the
//! compiler.

use super::ast::*;
use super::error::CompileError;
use super::lexer::{is_ident_char, is_ident_start, Lexer, PResult};

/// The evaluation context of an expression: decides which objects it may read (docs/JCL.md §2.2
/// availability table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// An assignment list (and the implicit input maps of `raise_error`, `sleep`).
    Map(MapKind),
    /// `if`/`elsif`/`while`/`until`/`assert` condition.
    Cond,
    /// `case` expression, interface call destination.
    Case,
    /// `lock`/`unlock` value.
    LockValue,
}

impl Ctx {
    fn allows(self, o: Obj) -> bool {
        match self {
            Ctx::Map(MapKind::Input) => o != Obj::O,
            Ctx::Map(MapKind::Output) | Ctx::Map(MapKind::WfOmap) => o != Obj::I,
            Ctx::Map(MapKind::Let) | Ctx::Cond | Ctx::Case | Ctx::LockValue => {
                !matches!(o, Obj::I | Obj::O)
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ctx::Map(MapKind::Input) => "imap",
            Ctx::Map(MapKind::Output) => "omap",
            Ctx::Map(MapKind::Let) => "let",
            Ctx::Map(MapKind::WfOmap) => "wfomap",
            Ctx::Cond => "condition",
            Ctx::Case => "case expression",
            Ctx::LockValue => "lock value",
        }
    }
}

/// Which io-spec section is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IoSection {
    In,
    Out,
    Env,
}

/// The parser state.
pub(crate) struct Parser<'a> {
    lx: Lexer<'a>,
    errors: Vec<CompileError>,
    /// Current nesting depth of expressions (parentheses, unary chains, calls).
    expr_depth: u32,
    /// Current nesting depth of blocks.
    block_depth: u32,
}

/// Deepest expression nesting accepted (keeps recursion bounded on hostile input).
const MAX_EXPR_DEPTH: u32 = 150;
/// Deepest block nesting accepted.
const MAX_BLOCK_DEPTH: u32 = 40;

/// Parse a whole file (CR LF already normalised).
pub(crate) fn parse_file(file: &str, src: &str) -> Result<Definition, Vec<CompileError>> {
    let mut p = Parser {
        lx: Lexer::new(file, src),
        errors: Vec::new(),
        expr_depth: 0,
        block_depth: 0,
    };
    match p.file() {
        Ok(def) if p.errors.is_empty() => Ok(def),
        Ok(_) => {
            p.errors.sort_by_key(|e| e.line);
            Err(p.errors)
        }
        Err(e) => {
            let mut errs = p.errors;
            errs.push(e);
            errs.sort_by_key(|e| e.line);
            Err(errs)
        }
    }
}

/// Convert an io-spec default literal to JSON (docs/JCL.md §1.2, §1.6, Appendix D.9).
fn default_json(lit: &Literal, text: &str, raw: Option<&str>) -> Result<serde_json::Value, String> {
    const BAD: &str = "invalid input syntax for type json";
    match lit {
        Literal::Str(_) => {
            let raw = raw.unwrap_or("");
            let wrapped = format!("\"{}\"", raw.replace('"', "\\\""));
            serde_json::from_str::<String>(&wrapped)
                .map(serde_json::Value::String)
                .map_err(|_| format!("{BAD}: {text}"))
        }
        Literal::Null if text == "null" => Ok(serde_json::Value::Null),
        Literal::Bool(b) if text == "true" || text == "false" => Ok(serde_json::Value::Bool(*b)),
        Literal::Int(_) | Literal::UInt(_) | Literal::Float(_) => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(v @ serde_json::Value::Number(_)) => Ok(v),
                _ => Err(format!("{BAD}: {text}")),
            }
        }
        _ => Err(format!("{BAD}: {text}")),
    }
}

impl<'a> Parser<'a> {
    fn soft_error(&mut self, line: Line, msg: impl Into<String>) {
        self.errors.push(self.lx.err_at(line, msg));
    }

    /// At least one blank (the grammar's `__`).
    fn blanks1(&mut self, after: &str) -> PResult<()> {
        if self.lx.skip_blanks() == 0 {
            return Err(self.lx.expected(&format!("a blank after {after}")));
        }
        Ok(())
    }

    fn required_name(&mut self, what: &str) -> PResult<String> {
        match self.lx.name()? {
            Some(n) => Ok(n),
            None => Err(self.lx.expected(what)),
        }
    }

    fn required_identifier(&mut self, what: &str) -> PResult<String> {
        match self.lx.identifier()? {
            Some(n) => Ok(n),
            None => Err(self.lx.expected(what)),
        }
    }

    /// `INDENT { SAME item | ignorable } DEDENT`.
    fn indented<T>(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.lx.indent(what)?;
        let mut out = Vec::new();
        while self.lx.same()? {
            out.push(item(self)?);
        }
        self.lx.dedent()?;
        Ok(out)
    }

    // ===== files and sections ===========================================================

    fn file(&mut self) -> PResult<Definition> {
        self.lx.skip_ignorable()?;
        if self.lx.current_width() != Some(0) {
            return Err(self
                .lx
                .expected("'workflow', 'action' or 'procedure' in column 0"));
        }
        let line = self.lx.line();
        let save = self.lx.pos;
        let kw = self.lx.ident().unwrap_or_default();
        let def = match kw.as_str() {
            "workflow" => Definition::Workflow(self.workflow(line)?),
            "action" => Definition::Action(self.action(line, ActionKind::Action)?),
            "procedure" => Definition::Action(self.action(line, ActionKind::Procedure)?),
            _ => {
                self.lx.pos = save;
                return Err(self.lx.expected("'workflow', 'action' or 'procedure'"));
            }
        };
        self.lx.skip_ignorable()?;
        if !self.lx.at_eof() {
            return Err(self.lx.expected("a section keyword"));
        }
        Ok(def)
    }

    fn header_name(&mut self, kw: &str) -> PResult<String> {
        self.blanks1(kw)?;
        let name = self.required_name(&format!("a {kw} name"))?;
        self.lx.colon_eol()?;
        Ok(name)
    }

    /// The next section keyword in column 0, or `None` at the end of input.
    fn section_keyword(&mut self) -> PResult<Option<(Line, String)>> {
        self.lx.skip_ignorable()?;
        match self.lx.current_width() {
            None => Ok(None),
            Some(0) => {
                let line = self.lx.line();
                let save = self.lx.pos;
                match self.lx.ident() {
                    Some(k) => Ok(Some((line, k))),
                    None => {
                        self.lx.pos = save;
                        Err(self.lx.expected("a section keyword"))
                    }
                }
            }
            Some(_) => Err(self
                .lx
                .err("syntax error: section keywords must start in column 0")),
        }
    }

    fn duplicate<T>(&mut self, slot: &Option<T>, line: Line, kw: &str) {
        if slot.is_some() {
            self.soft_error(line, format!("duplicate section {kw}"));
        }
    }

    fn workflow(&mut self, line: Line) -> PResult<WorkflowDef> {
        let name = self.header_name("workflow")?;
        let mut wf = WorkflowDef {
            line,
            name,
            interface: None,
            inputs: None,
            outputs: None,
            wfenv: None,
            config: None,
            locks: None,
            role: None,
            wfomap: None,
            body: None,
        };
        while let Some((sline, kw)) = self.section_keyword()? {
            match kw.as_str() {
                "interface" => {
                    let n = self.header_name("interface")?;
                    self.duplicate(&wf.interface, sline, &kw);
                    wf.interface = Some(NameRef {
                        line: sline,
                        name: n,
                    });
                }
                "in" => {
                    self.lx.colon_eol()?;
                    let v = self.io_section(IoSection::In)?;
                    self.duplicate(&wf.inputs, sline, &kw);
                    wf.inputs = Some(v);
                }
                "out" => {
                    self.lx.colon_eol()?;
                    let v = self.io_section(IoSection::Out)?;
                    self.duplicate(&wf.outputs, sline, &kw);
                    wf.outputs = Some(v);
                }
                "wfenv" => {
                    self.lx.colon_eol()?;
                    let v = self.config_section("wfenv")?;
                    self.duplicate(&wf.wfenv, sline, &kw);
                    wf.wfenv = Some(v);
                }
                "config" => {
                    self.lx.colon_eol()?;
                    let v = self.config_section("config")?;
                    self.duplicate(&wf.config, sline, &kw);
                    wf.config = Some(v);
                }
                "locks" => {
                    self.lx.colon_eol()?;
                    let v = self.indented("lock declaration", |p| p.lock_spec())?;
                    self.duplicate(&wf.locks, sline, &kw);
                    wf.locks = Some(v);
                }
                "role" => {
                    self.lx.colon_eol()?;
                    let v = self.role_section()?;
                    self.duplicate(&wf.role, sline, &kw);
                    wf.role = Some(v);
                }
                "wfomap" => {
                    self.lx.colon_eol()?;
                    let v = self.map(MapKind::WfOmap)?;
                    self.duplicate(&wf.wfomap, sline, &kw);
                    wf.wfomap = Some(v);
                }
                "do" => {
                    self.lx.colon_eol()?;
                    let v = self.block()?;
                    self.duplicate(&wf.body, sline, &kw);
                    wf.body = Some(v);
                }
                "env" => {
                    return Err(self.lx.err_at(
                        sline,
                        "syntax error: a workflow has no env section (use wfenv)",
                    ));
                }
                _ => {
                    return Err(self.lx.err_at(
                        sline,
                        format!("syntax error: unknown workflow section {kw}"),
                    ))
                }
            }
        }
        Ok(wf)
    }

    fn action(&mut self, line: Line, kind: ActionKind) -> PResult<ActionDef> {
        let kwname = match kind {
            ActionKind::Action => "action",
            ActionKind::Procedure => "procedure",
        };
        let name = self.header_name(kwname)?;
        let mut ac = ActionDef {
            line,
            kind,
            name,
            interface: None,
            inputs: None,
            outputs: None,
            env: None,
            role: None,
            config: None,
        };
        while let Some((sline, kw)) = self.section_keyword()? {
            match kw.as_str() {
                "interface" => {
                    let n = self.header_name("interface")?;
                    self.duplicate(&ac.interface, sline, &kw);
                    ac.interface = Some(NameRef {
                        line: sline,
                        name: n,
                    });
                }
                "in" => {
                    self.lx.colon_eol()?;
                    let v = self.io_section(IoSection::In)?;
                    self.duplicate(&ac.inputs, sline, &kw);
                    ac.inputs = Some(v);
                }
                "out" => {
                    self.lx.colon_eol()?;
                    let v = self.io_section(IoSection::Out)?;
                    self.duplicate(&ac.outputs, sline, &kw);
                    ac.outputs = Some(v);
                }
                "env" => {
                    self.lx.colon_eol()?;
                    let v = self.io_section(IoSection::Env)?;
                    self.duplicate(&ac.env, sline, &kw);
                    ac.env = Some(v);
                }
                "role" => {
                    self.lx.colon_eol()?;
                    let v = self.role_section()?;
                    self.duplicate(&ac.role, sline, &kw);
                    ac.role = Some(v);
                }
                "config" => {
                    self.lx.colon_eol()?;
                    let v = self.config_section("config")?;
                    self.duplicate(&ac.config, sline, &kw);
                    ac.config = Some(v);
                }
                _ => {
                    return Err(self.lx.err_at(
                        sline,
                        format!("syntax error: unknown {kwname} section {kw}"),
                    ))
                }
            }
        }
        Ok(ac)
    }

    fn io_section(&mut self, section: IoSection) -> PResult<Vec<IoSpec>> {
        self.indented("parameter list", |p| p.io_spec(section))
    }

    fn io_spec(&mut self, section: IoSection) -> PResult<IoSpec> {
        let line = self.lx.line();
        let name = self.required_identifier("a parameter name")?;
        self.blanks1("the parameter name")?;
        let ty = self.required_identifier("a type name")?;
        let mut spec = IoSpec {
            line,
            name,
            ty,
            default: None,
            optional: false,
        };
        let save = self.lx.pos;
        if self.lx.skip_blanks() > 0 {
            if self.lx.at_keyword("optional") {
                self.lx.pos += "optional".len();
                if section == IoSection::Out {
                    spec.optional = true;
                } else {
                    self.soft_error(
                        line,
                        "optional is only allowed in out (inputs are optional by having a default)",
                    );
                }
            } else if let Some((lit, text, raw)) = self.literal()? {
                if section == IoSection::Out {
                    self.soft_error(line, format!("default value {text} not allowed in out"));
                } else {
                    match default_json(&lit, &text, raw.as_deref()) {
                        Ok(v) => spec.default = Some(v),
                        Err(m) => self.soft_error(line, m),
                    }
                }
            } else {
                self.lx.pos = save;
            }
        }
        self.lx.expect_eol(true)?;
        Ok(spec)
    }

    /// A literal as allowed in io-spec defaults and config/wfenv: number (with optional
    /// `-`), boolean, null, string. Returns the value, the source text and (for strings) the
    /// raw content.
    fn literal(&mut self) -> PResult<Option<(Literal, String, Option<String>)>> {
        let start = self.lx.pos;
        if let Some(s) = self.lx.string()? {
            let text = self.lx.slice(start, self.lx.pos);
            return Ok(Some((Literal::Str(s.value), text, Some(s.raw))));
        }
        let neg = self.lx.peek() == Some(b'-');
        if neg {
            self.lx.pos += 1;
        }
        if let Some(n) = self.lx.number(false)? {
            if neg && (n.text.starts_with("0x") || n.text.starts_with("0X")) {
                self.lx.pos = start;
                return Ok(None);
            }
            let text = self.lx.slice(start, self.lx.pos);
            let v = if neg {
                negate_literal(n.value)
            } else {
                n.value
            };
            return Ok(Some((v, text, None)));
        }
        if neg {
            self.lx.pos = start;
            return Ok(None);
        }
        let save = self.lx.pos;
        if let Some(id) = self.lx.ident() {
            let v = match id.as_str() {
                "true" | "TRUE" => Some(Literal::Bool(true)),
                "false" | "FALSE" => Some(Literal::Bool(false)),
                "null" | "NULL" => Some(Literal::Null),
                _ => None,
            };
            if let Some(v) = v {
                return Ok(Some((v, id, None)));
            }
        }
        self.lx.pos = save;
        Ok(None)
    }

    fn config_section(&mut self, what: &str) -> PResult<Vec<ConfigEntry>> {
        // A Perl block is not a `key = literal` list.
        let save = self.lx.pos;
        self.lx.skip_ignorable()?;
        self.lx.skip_blanks();
        if self.lx.peek() == Some(b'[') {
            let line = self.lx.line();
            let pb = self.lx.perl_block()?;
            self.lx.expect_eol(false)?;
            self.soft_error(
                line,
                format!(
                    "invalid {what} {}",
                    pb.map(|p| format!("[[{}]]", p.text)).unwrap_or_default()
                ),
            );
            return Ok(Vec::new());
        }
        self.lx.pos = save;
        let items = self.indented(&format!("{what} line"), |p| p.config_line(what))?;
        Ok(items.into_iter().flatten().collect())
    }

    fn config_line(&mut self, what: &str) -> PResult<Option<ConfigEntry>> {
        let line = self.lx.line();
        let text = self.lx.rest_of_line();
        let start = self.lx.pos;
        let parsed = (|| -> PResult<Option<ConfigEntry>> {
            let key = match self.lx.identifier()? {
                Some(k) => k,
                None => return Ok(None),
            };
            self.lx.skip_blanks();
            if !self.lx.eat("=") || self.lx.peek() == Some(b'=') {
                return Ok(None);
            }
            self.lx.skip_blanks();
            let (value, vtext, _) = match self.literal()? {
                Some(l) => l,
                None => return Ok(None),
            };
            self.lx.skip_blanks();
            if self.lx.peek() == Some(b';') {
                self.lx.pos += 1;
                self.lx.skip_blanks();
            }
            if !(self.lx.at_eol() || self.lx.peek() == Some(b'#')) {
                return Ok(None);
            }
            Ok(Some(ConfigEntry {
                line,
                key,
                value,
                text: vtext,
            }))
        })();
        match parsed {
            Ok(Some(e)) => {
                self.lx.expect_eol(true)?;
                Ok(Some(e))
            }
            Ok(None) | Err(_) => {
                self.lx.pos = start;
                self.lx.skip_line();
                self.soft_error(line, format!("invalid {what} {text}"));
                Ok(None)
            }
        }
    }

    fn role_section(&mut self) -> PResult<Vec<NameRef>> {
        self.indented("role name", |p| {
            let line = p.lx.line();
            let name = p.required_identifier("a role name")?;
            p.lx.expect_eol(false)?;
            Ok(NameRef { line, name })
        })
    }

    fn lock_spec(&mut self) -> PResult<LockSpec> {
        let line = self.lx.line();
        let locktype = self.required_identifier("a lock type")?;
        self.blanks1("the lock type")?;
        let value = self.required_identifier("a lock value or _")?;
        let mut spec = LockSpec {
            line,
            locktype,
            value,
            manual: false,
            inherit: false,
        };
        loop {
            let save = self.lx.pos;
            if self.lx.skip_blanks() == 0 {
                break;
            }
            if self.lx.at_keyword("manual") {
                self.lx.pos += "manual".len();
                spec.manual = true;
            } else if self.lx.at_keyword("inherit") {
                self.lx.pos += "inherit".len();
                spec.inherit = true;
            } else {
                self.lx.pos = save;
                break;
            }
        }
        self.lx.expect_eol(false)?;
        Ok(spec)
    }

    // ===== maps =========================================================================

    fn map(&mut self, kind: MapKind) -> PResult<Map> {
        let save = self.lx.pos;
        self.lx.skip_ignorable()?;
        if !self.lx.at_eof() {
            let line_start = self.lx.pos;
            self.lx.skip_blanks();
            if self.lx.peek() == Some(b'[') {
                let line = self.lx.line();
                let pb = self.lx.perl_block()?;
                self.lx.expect_eol(false)?;
                let body = match pb {
                    Some(pb) if pb.text.trim().is_empty() => MapBody::Items(Vec::new()),
                    Some(pb) => MapBody::Perl(pb),
                    None => MapBody::Items(Vec::new()),
                };
                return Ok(Map { line, kind, body });
            }
            self.lx.pos = line_start;
        }
        self.lx.pos = save;
        self.lx.skip_ignorable()?;
        let line = self.lx.line();
        let items = self.indented("assignment list", |p| p.map_item(kind))?;
        Ok(Map {
            line,
            kind,
            body: MapBody::Items(items),
        })
    }

    fn map_item(&mut self, kind: MapKind) -> PResult<MapItem> {
        let line = self.lx.line();
        if self.lx.peek() == Some(b'<') {
            self.lx.pos += 1;
            let names = if self.lx.eat("*") {
                None
            } else {
                let mut names = vec![self.required_identifier("a name or * in <...>")?];
                while self.lx.eat(",") {
                    names.push(self.required_identifier("a name in <...>")?);
                }
                Some(names)
            };
            if !self.lx.eat(">") {
                return Err(self.lx.expected("'>'"));
            }
            self.lx.expect_eol(true)?;
            if kind == MapKind::Let {
                self.soft_error(
                    line,
                    "magic assignments are not allowed in let/eval (there is no o)",
                );
            }
            return Ok(MapItem::Magic(Magic { line, names }));
        }
        Ok(MapItem::Assign(self.assignment(kind)?))
    }

    fn path_parts(&mut self) -> PResult<Vec<PathPart>> {
        let mut parts = Vec::new();
        loop {
            let name = self.required_identifier("a name")?;
            let mut index = None;
            if self.lx.peek() == Some(b'[') {
                self.lx.pos += 1;
                let start = self.lx.pos;
                if self.lx.peek() == Some(b'-') {
                    self.lx.pos += 1;
                }
                while self.lx.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.lx.pos += 1;
                }
                let text = self.lx.slice(start, self.lx.pos);
                let n = text.parse::<i64>().map_err(|_| {
                    self.lx
                        .err("syntax error: an index must be an integer literal, like [0] or [-1]")
                })?;
                if !self.lx.eat("]") {
                    return Err(self.lx.expected("']'"));
                }
                index = Some(n);
            }
            parts.push(PathPart { name, index });
            if self.lx.peek() == Some(b'.')
                && self
                    .lx
                    .peek_at(1)
                    .is_some_and(|c| is_ident_start(c) || c == b'\'' || c == b'"')
            {
                self.lx.pos += 1;
                continue;
            }
            return Ok(parts);
        }
    }

    fn assignment(&mut self, kind: MapKind) -> PResult<Assignment> {
        let line = self.lx.line();
        let parts = self.path_parts()?;
        self.lx.skip_blanks();
        let op = if self.lx.eat("//=") {
            AssignOp::DefinedOr
        } else if self.lx.eat("||=") {
            AssignOp::Or
        } else if self.lx.eat(".=") {
            AssignOp::Concat
        } else if self.lx.eat(",=") {
            AssignOp::Push
        } else if self.lx.eat("+=") {
            AssignOp::Add
        } else if self.lx.eat("-=") {
            AssignOp::Sub
        } else if self.lx.eat("*=") {
            AssignOp::Mul
        } else if self.lx.eat("/=") {
            AssignOp::Div
        } else if self.lx.peek() == Some(b'=') && self.lx.peek_at(1) != Some(b'=') {
            self.lx.pos += 1;
            AssignOp::Assign
        } else {
            return Err(self.lx.expected("an assignment operator"));
        };
        self.lx.skip_blanks();
        let ctx = Ctx::Map(kind);
        let (ifdef, value) = if self.lx.at_keyword("ifdef") && self.lx.peek_at(5) == Some(b'(') {
            self.lx.pos += 6;
            self.lx.skip_blanks();
            let inner = self.rhs(ctx)?;
            self.lx.skip_blanks();
            if !self.lx.eat(")") {
                return Err(self.lx.expected("')'"));
            }
            let save = self.lx.pos;
            self.lx.skip_blanks();
            if !(self.lx.at_eol() || matches!(self.lx.peek(), Some(b';') | Some(b'#'))) {
                return Err(self
                    .lx
                    .err("ifdef(...) must be the whole right-hand side of an assignment"));
            }
            self.lx.pos = save;
            (true, inner)
        } else {
            (false, self.rhs(ctx)?)
        };
        self.lx.expect_eol(true)?;
        let target = self.resolve_lhs(kind, parts, line);
        Ok(Assignment {
            line,
            target,
            op,
            ifdef,
            value,
        })
    }

    /// The lhs rule of docs/JCL.md §1.5.
    fn resolve_lhs(&mut self, kind: MapKind, mut parts: Vec<PathPart>, line: Line) -> Place {
        let first_is_letter = parts.len() > 1 && parts[0].name.chars().count() == 1;
        if !first_is_letter {
            return Var {
                obj: kind.default_target(),
                path: parts,
            };
        }
        let letter = parts[0].name.chars().next().unwrap_or('?');
        let allowed = matches!(
            (Obj::from_letter(letter), kind),
            (Some(Obj::T), _)
                | (Some(Obj::I), MapKind::Input)
                | (Some(Obj::V), MapKind::Output | MapKind::Let)
                | (Some(Obj::O), MapKind::WfOmap)
        );
        if !allowed || parts[0].index.is_some() {
            self.soft_error(
                line,
                format!("invalid top level {letter} for {}", kind.message_name()),
            );
        }
        let obj = Obj::from_letter(letter).unwrap_or(kind.default_target());
        parts.remove(0);
        Var { obj, path: parts }
    }

    // ===== statements ===================================================================

    fn block(&mut self) -> PResult<Block> {
        if self.block_depth >= MAX_BLOCK_DEPTH {
            return Err(self.lx.err(format!(
                "blocks nested deeper than {MAX_BLOCK_DEPTH} levels"
            )));
        }
        self.block_depth += 1;
        let r = self.indented("block (blocks must not be empty)", |p| p.statement());
        self.block_depth -= 1;
        r
    }

    /// Run `f` one expression level deeper, failing beyond [`MAX_EXPR_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.expr_depth >= MAX_EXPR_DEPTH {
            return Err(self.lx.err(format!(
                "expression nested deeper than {MAX_EXPR_DEPTH} levels"
            )));
        }
        self.expr_depth += 1;
        let r = f(self);
        self.expr_depth -= 1;
        r
    }

    /// `PERL_BLOCK | rhs`.
    fn code(&mut self, ctx: Ctx) -> PResult<Code> {
        if self.lx.peek() == Some(b'[') {
            if let Some(pb) = self.lx.perl_block()? {
                return Ok(Code::Perl(pb));
            }
        }
        Ok(Code::Expr(self.rhs(ctx)?))
    }

    fn call_body(&mut self, line: Line, target: String) -> PResult<FlowCall> {
        let inputs = self.map(MapKind::Input)?;
        let outputs = if self.lx.same_keyword("into")? {
            self.lx.colon_eol()?;
            Some(self.map(MapKind::Output)?)
        } else {
            None
        };
        Ok(FlowCall {
            line,
            target,
            inputs,
            outputs,
        })
    }

    fn map_call(&mut self, line: Line) -> PResult<MapCall> {
        self.blanks1("map")?;
        let target = self.required_name("a workflow name")?;
        self.blanks1("the workflow name")?;
        if !self.lx.at_keyword("using") {
            return Err(self.lx.expected("'using'"));
        }
        self.lx.pos += "using".len();
        self.blanks1("using")?;
        let vline = self.lx.line();
        let using = match self.variable(Ctx::Cond, vline)? {
            Some(v) => v,
            None => return Err(self.lx.expected("a variable like a.x or v.x")),
        };
        self.lx.colon_eol()?;
        let inputs = self.map(MapKind::Input)?;
        let collect = if self.lx.same_keyword("collect")? {
            self.lx.colon_eol()?;
            Some(self.map(MapKind::Output)?)
        } else {
            None
        };
        Ok(MapCall {
            line,
            target,
            using,
            inputs,
            collect,
        })
    }

    fn statement(&mut self) -> PResult<Stmt> {
        let line = self.lx.line();
        let save = self.lx.pos;
        let kw = match self.lx.ident() {
            Some(k) => k,
            None => return Err(self.lx.expected("a statement")),
        };
        let kind = match kw.as_str() {
            "assert" => {
                self.lx.skip_blanks();
                let cond = self.code(Ctx::Cond)?;
                self.lx.colon_eol()?;
                let mut msgs = self.indented("assert message", |p| {
                    let e = p.rhs(Ctx::Map(MapKind::Input))?;
                    p.lx.expect_eol(false)?;
                    Ok(e)
                })?;
                if msgs.len() != 1 {
                    self.soft_error(line, "assert needs exactly one message line");
                }
                let message = match msgs.pop() {
                    Some(m) => m,
                    None => {
                        return Err(self
                            .lx
                            .err_at(line, "assert needs exactly one message line"))
                    }
                };
                StmtKind::Assert { cond, message }
            }
            "call" => {
                self.blanks1("call")?;
                let target = self.required_name("an action or workflow name")?;
                self.lx.colon_eol()?;
                StmtKind::Call(self.call_body(line, target)?)
            }
            "case" => {
                self.blanks1("case")?;
                let expr = self.code(Ctx::Case)?;
                self.lx.colon_eol()?;
                let mut whens = Vec::new();
                while self.lx.same_keyword("when")? {
                    let wline = self.lx.line();
                    self.blanks1("when")?;
                    let mut labels =
                        vec![self.required_identifier("a label (numbers must be quoted)")?];
                    loop {
                        let s = self.lx.pos;
                        self.lx.skip_blanks();
                        if self.lx.eat(",") {
                            self.lx.skip_blanks();
                            labels.push(
                                self.required_identifier("a label (numbers must be quoted)")?,
                            );
                        } else {
                            self.lx.pos = s;
                            break;
                        }
                    }
                    self.lx.colon_eol()?;
                    let body = self.block()?;
                    whens.push(When {
                        line: wline,
                        labels,
                        body,
                    });
                }
                let else_block = if self.lx.same_keyword("else")? {
                    self.lx.colon_eol()?;
                    Some(self.block()?)
                } else {
                    None
                };
                StmtKind::Case {
                    expr,
                    whens,
                    else_block,
                }
            }
            "detachflow" => {
                self.blanks1("detachflow")?;
                let target = self.required_name("a workflow name")?;
                self.lx.colon_eol()?;
                let inputs = self.map(MapKind::Input)?;
                StmtKind::DetachFlow(FlowCall {
                    line,
                    target,
                    inputs,
                    outputs: None,
                })
            }
            "eval" | "let" => {
                self.lx.colon_eol()?;
                let map = self.map(MapKind::Let)?;
                StmtKind::Let {
                    eval_spelling: kw == "eval",
                    map,
                }
            }
            "goto" | "label" => {
                self.blanks1(&kw)?;
                let label = self.required_identifier("a label")?;
                self.lx.expect_eol(false)?;
                if kw == "goto" {
                    StmtKind::Goto { label }
                } else {
                    StmtKind::Label { label }
                }
            }
            "if" => {
                self.lx.skip_blanks();
                let cond = self.code(Ctx::Cond)?;
                self.lx.colon_eol()?;
                let body = self.block()?;
                let first = CondBlock { line, cond, body };
                let mut elsifs = Vec::new();
                let mut else_block = None;
                loop {
                    if self.lx.same_keyword("elsif")? {
                        let eline = self.lx.line();
                        self.blanks1("elsif")?;
                        let cond = self.code(Ctx::Cond)?;
                        self.lx.colon_eol()?;
                        let body = self.block()?;
                        elsifs.push(CondBlock {
                            line: eline,
                            cond,
                            body,
                        });
                    } else if self.lx.same_keyword("else")? {
                        self.lx.colon_eol()?;
                        else_block = Some(self.block()?);
                        break;
                    } else {
                        break;
                    }
                }
                StmtKind::If {
                    first,
                    elsifs,
                    else_block,
                }
            }
            "interface" => {
                self.blanks1("interface")?;
                let interface = self.required_name("an interface name")?;
                self.lx.colon_eol()?;
                let names = self.indented("list of names", |p| {
                    let l = p.lx.line();
                    let n = p.required_name("a name")?;
                    p.lx.expect_eol(false)?;
                    Ok(NameRef { line: l, name: n })
                })?;
                if !self.lx.same_keyword("call")? {
                    return Err(self.lx.expected("'call' after the interface names"));
                }
                let call_line = self.lx.line();
                self.lx.skip_blanks();
                let target = self.code(Ctx::Case)?;
                self.lx.colon_eol()?;
                let body = self.call_body(call_line, String::new())?;
                StmtKind::InterfaceCall {
                    interface,
                    names,
                    target,
                    call_line,
                    inputs: body.inputs,
                    outputs: body.outputs,
                }
            }
            "lock" | "unlock" => {
                self.blanks1(&kw)?;
                let locktype = self.required_identifier("a lock type")?;
                self.blanks1("the lock type")?;
                let value = self.code(Ctx::LockValue)?;
                self.lx.expect_eol(false)?;
                if kw == "lock" {
                    StmtKind::Lock { locktype, value }
                } else {
                    StmtKind::Unlock { locktype, value }
                }
            }
            "map" => StmtKind::Map(self.map_call(line)?),
            "raise_error" | "sleep" => {
                self.blanks1(&kw)?;
                let value = self.code(Ctx::Map(MapKind::Input))?;
                self.lx.expect_eol(false)?;
                if kw == "sleep" {
                    StmtKind::Sleep { duration: value }
                } else {
                    StmtKind::RaiseError { message: value }
                }
            }
            "raise_event" | "subscribe" | "unsubscribe" => {
                self.lx.colon_eol()?;
                let inputs = self.map(MapKind::Input)?;
                match kw.as_str() {
                    "raise_event" => StmtKind::RaiseEvent { inputs },
                    "subscribe" => StmtKind::Subscribe { inputs },
                    _ => StmtKind::Unsubscribe { inputs },
                }
            }
            "repeat" => {
                self.lx.colon_eol()?;
                let body = self.block()?;
                self.lx.skip_ignorable()?;
                let until_line = self.lx.line();
                if self.lx.skip_blanks() == 0 || !self.lx.at_keyword("until") {
                    return Err(self
                        .lx
                        .expected("'until' (indented less than the repeat body)"));
                }
                self.lx.pos += "until".len();
                self.blanks1("until")?;
                let until = self.code(Ctx::Cond)?;
                self.lx.expect_eol(false)?;
                StmtKind::Repeat {
                    body,
                    until_line,
                    until,
                }
            }
            "return" => {
                self.lx.expect_eol(false)?;
                StmtKind::Return
            }
            "split" => {
                self.lx.colon_eol()?;
                let items = self.indented("split item (callflow or map)", |p| {
                    let l = p.lx.line();
                    let s = p.lx.pos;
                    match p.lx.ident().as_deref() {
                        Some("callflow") => {
                            p.blanks1("callflow")?;
                            let target = p.required_name("a workflow name")?;
                            p.lx.colon_eol()?;
                            Ok(SplitItem::Callflow(p.call_body(l, target)?))
                        }
                        Some("map") => Ok(SplitItem::Map(p.map_call(l)?)),
                        _ => {
                            p.lx.pos = s;
                            Err(p.lx.expected("'callflow' or 'map' in split"))
                        }
                    }
                })?;
                StmtKind::Split { items }
            }
            "try" => {
                self.lx.colon_eol()?;
                let body = self.block()?;
                if !self.lx.same_keyword("catch")? {
                    return Err(self.lx.expected("'catch:' at the width of 'try:'"));
                }
                let catch_line = self.lx.line();
                self.lx.colon_eol()?;
                let catch = self.block()?;
                StmtKind::Try {
                    body,
                    catch_line,
                    catch,
                }
            }
            "wait_for_event" => {
                self.lx.colon_eol()?;
                let b = self.call_body(line, String::new())?;
                StmtKind::WaitForEvent {
                    inputs: b.inputs,
                    outputs: b.outputs,
                }
            }
            "wait_for_lock" => {
                self.blanks1("wait_for_lock")?;
                let locktype = self.required_identifier("a lock type")?;
                self.lx.colon_eol()?;
                let inputs = self.map(MapKind::Input)?;
                StmtKind::WaitForLock { locktype, inputs }
            }
            "while" => {
                self.blanks1("while")?;
                let cond = self.code(Ctx::Cond)?;
                self.lx.colon_eol()?;
                let body = self.block()?;
                StmtKind::While { cond, body }
            }
            _ => {
                self.lx.pos = save;
                return Err(self.lx.err(format!("syntax error: unknown statement {kw}")));
            }
        };
        Ok(Stmt { line, kind })
    }

    // ===== expressions ==================================================================

    /// `rhs`: a full expression.
    fn rhs(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.parse_low_or(ctx)
    }

    /// Peek a binary operator after optional blanks; returns it and the position after it.
    fn peek_binop(&self) -> Option<(BinOp, usize)> {
        let mut p = self.lx.pos;
        while matches!(self.peek_byte(p), Some(b' ') | Some(b'\t')) {
            p += 1;
        }
        let c = self.peek_byte(p)?;
        let c1 = self.peek_byte(p + 1);
        let sym = |op, len: usize| Some((op, p + len));
        match c {
            b'*' if c1 == Some(b'*') => sym(BinOp::Pow, 2),
            b'*' => sym(BinOp::Mul, 1),
            b'/' if c1 == Some(b'/') => sym(BinOp::DefinedOr, 2),
            b'/' => sym(BinOp::Div, 1),
            b'%' => sym(BinOp::Mod, 1),
            b'+' => sym(BinOp::Add, 1),
            b'-' => sym(BinOp::Sub, 1),
            b'.' => sym(BinOp::Concat, 1),
            b'<' if c1 == Some(b'=') => sym(BinOp::NumLe, 2),
            b'>' if c1 == Some(b'=') => sym(BinOp::NumGe, 2),
            b'<' => sym(BinOp::NumLt, 1),
            b'>' => sym(BinOp::NumGt, 1),
            b'=' if c1 == Some(b'=') => sym(BinOp::NumEq, 2),
            b'!' if c1 == Some(b'=') => sym(BinOp::NumNe, 2),
            b'&' if c1 == Some(b'&') => sym(BinOp::And, 2),
            b'|' if c1 == Some(b'|') => sym(BinOp::Or, 2),
            c if is_ident_start(c) => {
                let mut q = p;
                while self.peek_byte(q).is_some_and(is_ident_char) {
                    q += 1;
                }
                let word = self.lx.slice(p, q);
                let op = match word.as_str() {
                    "lt" => BinOp::StrLt,
                    "gt" => BinOp::StrGt,
                    "le" => BinOp::StrLe,
                    "ge" => BinOp::StrGe,
                    "eq" => BinOp::StrEq,
                    "ne" => BinOp::StrNe,
                    "and" => BinOp::LowAnd,
                    "or" => BinOp::LowOr,
                    "xor" => BinOp::Xor,
                    "x" => BinOp::Repeat,
                    _ => return None,
                };
                Some((op, q))
            }
            _ => None,
        }
    }

    fn peek_byte(&self, p: usize) -> Option<u8> {
        self.lx.byte_at(p)
    }

    /// Parse a left-associative (or non-associative) level: operands by `next`, operators
    /// in `ops`.
    fn level(
        &mut self,
        ctx: Ctx,
        ops: &[BinOp],
        non_assoc: bool,
        next: fn(&mut Self, Ctx) -> PResult<Expr>,
    ) -> PResult<Expr> {
        let mut left = next(self, ctx)?;
        let mut seen = false;
        while let Some((op, after)) = self.peek_binop() {
            if !ops.contains(&op) {
                break;
            }
            if non_assoc && seen {
                return Err(self.lx.err(format!(
                    "syntax error: operator {} cannot be chained (non-associative)",
                    op.spelling()
                )));
            }
            seen = true;
            self.lx.pos = after;
            self.lx.skip_blanks();
            let right = next(self, ctx)?;
            let line = left.line;
            left = Expr {
                line,
                kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
            };
        }
        Ok(left)
    }

    fn parse_low_or(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.level(ctx, &[BinOp::LowOr, BinOp::Xor], false, Self::parse_low_and)
    }

    fn parse_low_and(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.level(ctx, &[BinOp::LowAnd], false, Self::parse_low_not)
    }

    fn at_low_not(&self) -> bool {
        self.lx.at_keyword("not") && matches!(self.lx.peek_at(3), Some(b' ') | Some(b'\t'))
    }

    fn parse_low_not(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.nested(|p| p.parse_low_not_inner(ctx))
    }

    fn parse_low_not_inner(&mut self, ctx: Ctx) -> PResult<Expr> {
        if self.at_low_not() {
            let line = self.lx.line();
            self.lx.pos += 3;
            self.lx.skip_blanks();
            let operand = self.parse_low_not(ctx)?;
            return Ok(Expr {
                line,
                kind: ExprKind::Unary(UnOp::LowNot, Box::new(operand)),
            });
        }
        self.parse_or(ctx)
    }

    fn parse_or(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.level(ctx, &[BinOp::Or, BinOp::DefinedOr], false, Self::parse_and)
    }

    fn parse_and(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.level(ctx, &[BinOp::And], false, Self::parse_equality)
    }

    fn parse_equality(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.level(
            ctx,
            &[BinOp::NumEq, BinOp::NumNe, BinOp::StrEq, BinOp::StrNe],
            true,
            Self::parse_relational,
        )
    }

    fn parse_relational(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.level(
            ctx,
            &[
                BinOp::NumLt,
                BinOp::NumGt,
                BinOp::NumLe,
                BinOp::NumGe,
                BinOp::StrLt,
                BinOp::StrGt,
                BinOp::StrLe,
                BinOp::StrGe,
            ],
            true,
            Self::parse_additive,
        )
    }

    fn parse_additive(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.level(
            ctx,
            &[BinOp::Add, BinOp::Sub, BinOp::Concat],
            false,
            Self::parse_multiplicative,
        )
    }

    fn parse_multiplicative(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.level(
            ctx,
            &[BinOp::Mul, BinOp::Div, BinOp::Mod, BinOp::Repeat],
            false,
            Self::parse_match,
        )
    }

    /// Level 3: `term ~ /re/`.
    fn parse_match(&mut self, ctx: Ctx) -> PResult<Expr> {
        let mut left = self.parse_unary(ctx)?;
        loop {
            let save = self.lx.pos;
            self.lx.skip_blanks();
            if self.lx.peek() != Some(b'~') {
                self.lx.pos = save;
                return Ok(left);
            }
            self.lx.pos += 1;
            self.lx.skip_blanks();
            if !self.lx.eat("/") {
                return Err(self.lx.expected("'/' starting a regular expression"));
            }
            let start = self.lx.pos;
            while !self.lx.at_eol() && self.lx.peek() != Some(b'/') {
                self.lx.pos += 1;
            }
            if self.lx.pos == start || self.lx.peek() != Some(b'/') {
                return Err(self.lx.err(
                    "syntax error: a regular expression needs 1+ characters between slashes",
                ));
            }
            let re = self.lx.slice(start, self.lx.pos);
            self.lx.pos += 1;
            let line = left.line;
            left = Expr {
                line,
                kind: ExprKind::Match(Box::new(left), re),
            };
        }
    }

    /// Level 2: unary `!`, `-`, `+` (no blank after them); `not ` in term position.
    fn parse_unary(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.nested(|p| p.parse_unary_inner(ctx))
    }

    fn parse_unary_inner(&mut self, ctx: Ctx) -> PResult<Expr> {
        let line = self.lx.line();
        if self.at_low_not() {
            return self.parse_low_not(ctx);
        }
        let op = match self.lx.peek() {
            Some(b'!') => Some(UnOp::Not),
            Some(b'-') => Some(UnOp::Neg),
            Some(b'+') => Some(UnOp::Plus),
            _ => None,
        };
        if let Some(op) = op {
            self.lx.pos += 1;
            if matches!(self.lx.peek(), Some(b' ') | Some(b'\t')) {
                return Err(self.lx.err(format!(
                    "syntax error: no blank allowed after unary {}",
                    op.spelling()
                )));
            }
            let operand = self.parse_unary(ctx)?;
            return Ok(make_unary(line, op, operand));
        }
        self.parse_pow(ctx)
    }

    /// Level 1: `primary ** unary` (right-associative).
    fn parse_pow(&mut self, ctx: Ctx) -> PResult<Expr> {
        let base = self.primary(ctx)?;
        if let Some((BinOp::Pow, after)) = self.peek_binop() {
            self.lx.pos = after;
            self.lx.skip_blanks();
            let exp = self.parse_unary(ctx)?;
            let line = base.line;
            return Ok(Expr {
                line,
                kind: ExprKind::Binary(BinOp::Pow, Box::new(base), Box::new(exp)),
            });
        }
        Ok(base)
    }

    /// A single term for `concat`/`array`/`object` arguments: `[unary] plain_term`.
    fn single_term(&mut self, ctx: Ctx) -> PResult<Expr> {
        let line = self.lx.line();
        if self.at_low_not() {
            self.lx.pos += 3;
            self.lx.skip_blanks();
            let t = self.primary(ctx)?;
            return Ok(make_unary(line, UnOp::LowNot, t));
        }
        let op = match self.lx.peek() {
            Some(b'!') => Some(UnOp::Not),
            Some(b'-') => Some(UnOp::Neg),
            Some(b'+') => Some(UnOp::Plus),
            _ => None,
        };
        if let Some(op) = op {
            self.lx.pos += 1;
            if matches!(self.lx.peek(), Some(b' ') | Some(b'\t')) {
                return Err(self.lx.err(format!(
                    "syntax error: no blank allowed after unary {}",
                    op.spelling()
                )));
            }
            let t = self.primary(ctx)?;
            return Ok(make_unary(line, op, t));
        }
        self.primary(ctx)
    }

    /// A variable `X.part(.part)*` at the cursor, if there is one.
    fn variable(&mut self, ctx: Ctx, line: Line) -> PResult<Option<Var>> {
        let c = match self.lx.peek() {
            Some(c) if c.is_ascii_alphabetic() => c,
            _ => return Ok(None),
        };
        let after_dot = self.lx.peek_at(2);
        let is_var = self.lx.peek_at(1) == Some(b'.')
            && after_dot.is_some_and(|d| is_ident_start(d) || d == b'\'' || d == b'"');
        if !is_var {
            return Ok(None);
        }
        self.lx.pos += 2;
        let path = self.path_parts()?;
        let letter = c as char;
        let obj = match Obj::from_letter(letter) {
            Some(o) => o,
            None => {
                self.soft_error(
                    line,
                    format!("invalid top level {letter} for right hand side"),
                );
                Obj::V
            }
        };
        if Obj::from_letter(letter).is_some() && !ctx.allows(obj) {
            self.soft_error(line, format!("{letter} is not available in {}", ctx.name()));
        }
        Ok(Some(Var { obj, path }))
    }

    fn primary(&mut self, ctx: Ctx) -> PResult<Expr> {
        self.nested(|p| p.primary_inner(ctx))
    }

    fn primary_inner(&mut self, ctx: Ctx) -> PResult<Expr> {
        let line = self.lx.line();
        let lit = |kind| Ok(Expr { line, kind });
        match self.lx.peek() {
            Some(b'(') => {
                self.lx.pos += 1;
                self.lx.skip_blanks();
                let e = self.rhs(ctx)?;
                self.lx.skip_blanks();
                if !self.lx.eat(")") {
                    return Err(self.lx.expected("')'"));
                }
                Ok(e)
            }
            Some(b'\'') | Some(b'"') => {
                let s = self.lx.string()?.map(|s| s.value).unwrap_or_default();
                lit(ExprKind::Lit(Literal::Str(s)))
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => match self.lx.number(true)? {
                Some(n) => lit(ExprKind::Lit(n.value)),
                None => Err(self.lx.expected("a term")),
            },
            Some(c) if is_ident_start(c) => {
                if let Some(v) = self.variable(ctx, line)? {
                    return lit(ExprKind::Var(v));
                }
                let start = self.lx.pos;
                let id = self.lx.ident().unwrap_or_default();
                if self.lx.peek() == Some(b'(') {
                    return self.function_call(ctx, line, id);
                }
                match id.as_str() {
                    "true" | "TRUE" => lit(ExprKind::Lit(Literal::Bool(true))),
                    "false" | "FALSE" => lit(ExprKind::Lit(Literal::Bool(false))),
                    "null" | "NULL" => lit(ExprKind::Lit(Literal::Null)),
                    _ => {
                        self.lx.pos = start;
                        if id.len() == 1 {
                            Err(self.lx.err(format!(
                                "syntax error: the whole object {id} is not an expression (use {id}.name)"
                            )))
                        } else {
                            Err(self
                                .lx
                                .err(format!("syntax error: unexpected identifier {id}")))
                        }
                    }
                }
            }
            _ => Err(self.lx.expected("a term")),
        }
    }

    fn function_call(&mut self, ctx: Ctx, line: Line, name: String) -> PResult<Expr> {
        self.lx.pos += 1; // (
        self.lx.skip_blanks();
        let func = Func::from_name(&name);
        let variadic = func.is_some_and(|f| f.is_variadic());
        let mut args = Vec::new();
        loop {
            let arg = if variadic {
                let t = self.single_term(ctx)?;
                let save = self.lx.pos;
                self.lx.skip_blanks();
                if !matches!(self.lx.peek(), Some(b',') | Some(b':') | Some(b')')) {
                    self.soft_error(
                        line,
                        format!("arguments of {name}() must be single terms (put expressions in parentheses)"),
                    );
                    self.lx.pos = save;
                    // Recover: parse the rest of the expression and drop it.
                    self.skip_rest_of_arg(ctx)?;
                }
                t
            } else {
                self.rhs(ctx)?
            };
            args.push(arg);
            self.lx.skip_blanks();
            if self.lx.eat(",") || self.lx.eat(":") {
                self.lx.skip_blanks();
                continue;
            }
            if self.lx.eat(")") {
                break;
            }
            return Err(self.lx.expected("',', ':' or ')'"));
        }
        let func = match func {
            Some(f) => f,
            None => {
                if name == "ifdef" {
                    self.soft_error(
                        line,
                        "ifdef(...) must be the whole right-hand side of an assignment",
                    );
                } else {
                    self.soft_error(line, format!("unknown function {name}"));
                }
                return Ok(Expr {
                    line,
                    kind: ExprKind::Lit(Literal::Null),
                });
            }
        };
        if !variadic && args.len() != 1 {
            self.soft_error(line, format!("function {name} takes exactly one argument"));
        }
        if func == Func::Object && args.len() % 2 != 0 {
            self.soft_error(
                line,
                "object() needs an even number of arguments (key/value pairs)",
            );
        }
        Ok(Expr {
            line,
            kind: ExprKind::Call(func, args),
        })
    }

    /// Error recovery inside a variadic argument: consume `op term` pairs.
    fn skip_rest_of_arg(&mut self, ctx: Ctx) -> PResult<()> {
        while let Some((_, after)) = self.peek_binop() {
            self.lx.pos = after;
            self.lx.skip_blanks();
            self.parse_unary(ctx)?;
        }
        Ok(())
    }
}

fn negate_literal(l: Literal) -> Literal {
    match l {
        Literal::Int(i) => match i.checked_neg() {
            Some(n) => Literal::Int(n),
            None => Literal::Float(-(i as f64)),
        },
        Literal::UInt(u) => {
            if u == 1u64 << 63 {
                Literal::Int(i64::MIN)
            } else {
                Literal::Float(-(u as f64))
            }
        }
        Literal::Float(f) => Literal::Float(-f),
        other => other,
    }
}

/// Build a unary expression, folding `-NUMBER` into a negative literal.
fn make_unary(line: Line, op: UnOp, operand: Expr) -> Expr {
    if op == UnOp::Neg {
        if let ExprKind::Lit(l @ (Literal::Int(_) | Literal::UInt(_) | Literal::Float(_))) =
            &operand.kind
        {
            return Expr {
                line,
                kind: ExprKind::Lit(negate_literal(l.clone())),
            };
        }
    }
    Expr {
        line,
        kind: ExprKind::Unary(op, Box::new(operand)),
    }
}
