//! The Perl-compatible value model, expression evaluation, maps and type checks.
//!
//! - [`value`]: Perl scalar semantics over `serde_json::Value` (docs/JCL.md §2.3);
//! - [`types`]: input/output type checking with defaults and the exact messages (§2.5);
//! - [`codec`]: the byte codecs behind `b64encode`/`md5`... (Latin-1 semantics, Appendix D.7);
//! - [`scope`]: the six objects of one evaluation (availability, copy-on-write `v`);
//! - [`expr`]: expression evaluation, conditions and string values;
//! - [`maps`]: assignment lists and one `run_*` helper per evaluation context;
//! - [`regex`]: the matcher behind `expr ~ /re/` (Perl dialect subset, linear time).
//!
//! Typical use by the runtime (a `let` task):
//!
//! ```ignore
//! match eval::run_let(&map, &job.args, &job.env, &job.vars, Some(ids)) {
//!     Ok(Some(new_vars)) => job.vars = new_vars,
//!     Ok(None) => {}
//!     Err(err) => raise(MapError::from(err).job_message(Phase::Eval)),
//! }
//! ```
//!
//! Errors of an evaluation are [`EvalError`]s: an [`ErrorKind`] plus the 1-based line (the
//! index of the assignment in its map; a condition is line 1). `Display` gives the exact
//! `sqlerrm` text of the original, e.g. `Illegal division by zero at line 2.`.

pub mod codec;
pub mod expr;
pub mod maps;
pub mod regex;
pub mod scope;
pub mod types;
pub mod value;

pub use expr::{eval_condition, eval_expr, eval_string};
pub use maps::{
    eval_map, run_case, run_condition, run_implicit_input, run_input_map, run_let, run_lock_value,
    run_output_map, run_wfomap,
};
pub use scope::{Context, EnvIds, Object, Scope};
pub use types::{
    check_inputs, check_inputs_owned, check_outputs, IoSpec, IoType, SchemaRegistry, TypeError,
};
pub use value::{is_true, to_perl_string, Val};

/// What went wrong while evaluating an expression or a map (without the location).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// `/` with a zero right operand.
    #[error("Illegal division by zero")]
    DivisionByZero,
    /// `%` with a right operand that truncates to zero.
    #[error("Illegal modulus zero")]
    ModulusZero,
    /// Walking into a string/number with `.key`; the payload is the quoted (and possibly
    /// truncated) string as Perl prints it, e.g. `"abc"`.
    #[error("Can't use string ({0}) as a HASH ref while \"strict refs\" in use")]
    StringAsHash(String),
    /// Walking into a string/number with `[n]` (payload as for `StringAsHash`).
    #[error("Can't use string ({0}) as an ARRAY ref while \"strict refs\" in use")]
    StringAsArray(String),
    /// Walking into an array with `.key`.
    #[error("Not a HASH reference")]
    NotAHash,
    /// Walking into an object with `[n]`.
    #[error("Not an ARRAY reference")]
    NotAnArray,
    /// An object (`a e v t i o`) that the evaluation context does not provide.
    #[error("Global symbol \"%{0}\" requires explicit package name (did you forget to declare \"my %{0}\"?)")]
    UnavailableObject(char),
    /// An assignment through a negative index before the start of an array.
    #[error("Modification of non-creatable array value attempted, subscript {0}")]
    NonCreatableIndex(i64),
    /// An object that the context provides read-only was assigned to.
    #[error("Modification of a read-only value attempted")]
    ReadOnly,
    /// An array or object used as a number (the original used a memory address).
    #[error("Can't use {0} reference as a number")]
    RefAsNumber(&'static str),
    /// An array or object used as a string (the original used `HASH(0x...)`).
    #[error("Can't use {0} reference as a string")]
    RefAsString(&'static str),
    /// `keys`/`values` of something that is not an object (no location suffix).
    #[error("not an object")]
    NotAnObject,
    /// `list` of something that is not a reference (no location suffix).
    #[error("not a reference")]
    NotAReference,
    /// `fromjson` of invalid JSON text.
    #[error("{0}")]
    Json(String),
    /// `tojson` of a scalar.
    #[error("hash- or arrayref expected (not a simple scalar, use allow_nonref to allow this)")]
    ToJsonScalar,
    /// `fromjson` of a JSON text that is a scalar.
    #[error("JSON text must be an object or array (but found number, string, true, false or null, use allow_nonref to allow this)")]
    FromJsonScalar,
    /// A character above U+00FF given to a byte function (`b64encode`, `md5`, ...).
    #[error("Wide character in subroutine entry")]
    WideCharacter,
    /// A string operator would build a string larger than [`value::MAX_STRING_LEN`].
    #[error("Out of memory during string extend")]
    OutOfMemory,
    /// A function the evaluator does not know (normally rejected at compile time).
    #[error("Undefined subroutine &main::{0} called")]
    UnknownFunction(String),
    /// A function called with the wrong number of arguments (normally a compile error).
    #[error("wrong number of arguments for {0}")]
    Arity(String),
    /// A regex match whose pattern does not compile (or uses an unsupported construct).
    #[error("{0}")]
    Regex(String),
    /// A construct this engine does not evaluate yet (e.g. Perl blocks, regex match).
    #[error("{0} not supported yet")]
    Unsupported(String),
}

impl ErrorKind {
    /// Does the original append ` at line N.` to this message? (Messages the JCL functions
    /// produce themselves, `not an object` / `not a reference`, have no location.)
    pub fn has_location(&self) -> bool {
        !matches!(self, ErrorKind::NotAnObject | ErrorKind::NotAReference)
    }
}

/// A runtime error of an expression, map or condition evaluation (sqlstate `38000`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.message())]
pub struct EvalError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// 1-based index of the assignment within the evaluated map (1 for a condition).
    pub line: usize,
}

impl EvalError {
    /// Attach a line number to an error kind.
    pub fn new(kind: ErrorKind, line: usize) -> Self {
        EvalError { kind, line }
    }

    /// The exact `sqlerrm` text, e.g. `Illegal division by zero at line 1.`.
    pub fn message(&self) -> String {
        if self.kind.has_location() {
            format!("{} at line {}.", self.kind, self.line)
        } else {
            self.kind.to_string()
        }
    }

    /// The sqlstate the original reports for expression errors: `38000`.
    pub fn sqlstate(&self) -> &'static str {
        "38000"
    }
}

/// The phase names of `caught exception in <phase> sqlstate <S> sqlerrm <text>` (§2.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `let`/`eval` evaluation.
    Eval,
    /// Condition of `if`/`elsif`/`while`/`until`/`assert`.
    BoolCode,
    /// Case expression; lock/unlock value.
    StringCode,
    /// Input map or input check of a call or system statement.
    InArgsMap,
    /// Output check or output map of a call.
    OutArgsMap,
    /// `wfomap` or workflow output check.
    WorkflowOutArgsMap,
}

impl Phase {
    /// The original's name of the phase, e.g. `do_eval`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Eval => "do_eval",
            Phase::BoolCode => "do_boolcode",
            Phase::StringCode => "do_stringcode",
            Phase::InArgsMap => "do_inargsmap",
            Phase::OutArgsMap => "do_outargsmap",
            Phase::WorkflowOutArgsMap => "do_workflowoutargsmap",
        }
    }
}

/// Either failure of a map step: an expression error (sqlstate `38000`) or a type-check
/// error (sqlstate `P0001`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    /// A runtime expression error.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// A type-check failure.
    #[error(transparent)]
    Type(#[from] TypeError),
}

impl MapError {
    /// `38000` for expression errors, `P0001` for type-check errors.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            MapError::Eval(e) => e.sqlstate(),
            MapError::Type(e) => e.sqlstate(),
        }
    }

    /// The job error message: `caught exception in <phase> sqlstate <S> sqlerrm <text>`.
    pub fn job_message(&self, phase: Phase) -> String {
        caught_exception(phase, self.sqlstate(), &self.to_string())
    }
}

/// Format `caught exception in <phase> sqlstate <sqlstate> sqlerrm <text>` (§2.10).
pub fn caught_exception(phase: Phase, sqlstate: &str, text: &str) -> String {
    format!(
        "caught exception in {} sqlstate {} sqlerrm {}",
        phase.name(),
        sqlstate,
        text
    )
}
