//! The JCL abstract syntax tree: plain data produced by the parser (docs/JCL.md Part 1).
//!
//! Every node carries the 1-based source line it starts on ([`Line`]), so compile errors and
//! lowered tasks can point back to the source. The tree covers the **whole** grammar of
//! docs/JCL.md §1.8, including statements of Stages B and C and Perl blocks; whether a construct is
//! accepted is decided later by the compiler (`crate::compile`).
//!
//! Things the parser already resolves (so consumers never re-do them):
//! - the left-hand side of an assignment is resolved to a target object ([`Place`]) with the
//!   default-target rule of §1.5 for the map kind ([`MapKind`]);
//! - function names are resolved to [`Func`] (aliases folded); `ifdef(x)` as the whole
//!   right-hand side becomes [`Assignment::ifdef`] = `true` with `value` = `x`;
//! - string literals hold their **value** (raw text, only `\\` turned into `\`, §1.2);
//! - io-spec defaults hold their JSON value (JSON-string-decoded, §1.2 / §1.6).

use serde::{Deserialize, Serialize};

/// A 1-based source line number.
pub type Line = u32;

/// A complete source file: one workflow or one action/procedure definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Definition {
    /// A `workflow NAME:` definition.
    Workflow(WorkflowDef),
    /// An `action NAME:` or `procedure NAME:` definition.
    Action(ActionDef),
}

impl Definition {
    /// The definition's name.
    pub fn name(&self) -> &str {
        match self {
            Definition::Workflow(w) => &w.name,
            Definition::Action(a) => &a.name,
        }
    }

    /// The line of the `workflow`/`action`/`procedure` header.
    pub fn line(&self) -> Line {
        match self {
            Definition::Workflow(w) => w.line,
            Definition::Action(a) => a.line,
        }
    }
}

/// A workflow definition (docs/JCL.md §1.6). Sections are `None`/empty when absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDef {
    /// Line of the `workflow NAME:` header.
    pub line: Line,
    /// The workflow name.
    pub name: String,
    /// `interface NAME:` section (Stage C): copy in/out of the latest version of NAME.
    pub interface: Option<NameRef>,
    /// `in:` section.
    pub inputs: Option<Vec<IoSpec>>,
    /// `out:` section.
    pub outputs: Option<Vec<IoSpec>>,
    /// `wfenv:` section: `key = literal` lines.
    pub wfenv: Option<Vec<ConfigEntry>>,
    /// `config:` section: `key = literal` lines (`max_steps`, `max_depth`).
    pub config: Option<Vec<ConfigEntry>>,
    /// `locks:` section (Stage B).
    pub locks: Option<Vec<LockSpec>>,
    /// `role:` section (Stage C); the parser keeps every line, the compiler allows one.
    pub role: Option<Vec<NameRef>>,
    /// `wfomap:` section: the workflow output map (kind [`MapKind::WfOmap`]).
    pub wfomap: Option<Map>,
    /// `do:` section: the body.
    pub body: Option<Block>,
}

/// Whether an action-like definition is an `action` or a `procedure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActionKind {
    /// `action NAME:` — executed by workers.
    Action,
    /// `procedure NAME:` — executed by a stored procedure in the original (Stage C plug-in).
    Procedure,
}

/// An action or procedure definition (docs/JCL.md §1.6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionDef {
    /// Line of the `action NAME:` / `procedure NAME:` header.
    pub line: Line,
    /// Action or procedure.
    pub kind: ActionKind,
    /// The action name.
    pub name: String,
    /// `interface NAME:` section (Stage C).
    pub interface: Option<NameRef>,
    /// `in:` section.
    pub inputs: Option<Vec<IoSpec>>,
    /// `out:` section.
    pub outputs: Option<Vec<IoSpec>>,
    /// `env:` section: io-specs of the action environment.
    pub env: Option<Vec<IoSpec>>,
    /// `role:` section (Stage C).
    pub role: Option<Vec<NameRef>>,
    /// `config:` section: `key = literal` lines (`retry`, `timeout`, `retryable`, `filter`, `archive`).
    pub config: Option<Vec<ConfigEntry>>,
}

/// A name with the line it was written on (interface names, roles, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRef {
    /// Source line.
    pub line: Line,
    /// The name (content of a quoted name, or the bare name).
    pub name: String,
}

/// One io-spec line of `in:`, `out:` or `env:`: `name type [optional | literal]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IoSpec {
    /// Source line.
    pub line: Line,
    /// Parameter name.
    pub name: String,
    /// Type name (base type or registered schema type).
    pub ty: String,
    /// Default value (`in:`/`env:` only), already converted to JSON: numbers → numbers,
    /// `true`/`false` → booleans, `null` → null, strings → the JSON-string-decoded raw
    /// content (docs/JCL.md §1.2 "Default values are different"). A present default makes the
    /// parameter optional.
    pub default: Option<serde_json::Value>,
    /// `optional` keyword (`out:` only).
    pub optional: bool,
}

/// One `key = literal` line of a `config:` or `wfenv:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigEntry {
    /// Source line.
    pub line: Line,
    /// The key.
    pub key: String,
    /// The literal value.
    pub value: Literal,
    /// The literal exactly as written in the source (wfenv values are this text as a string,
    /// except strings, whose value is used).
    pub text: String,
}

/// One line of a `locks:` section: `type value [manual] [inherit]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSpec {
    /// Source line.
    pub line: Line,
    /// The lock type.
    pub locktype: String,
    /// The lock value; `"_"` (unquoted) means "value supplied by a `lock` statement".
    pub value: String,
    /// `manual`: not acquired automatically; `lock`/`unlock` statements allowed.
    pub manual: bool,
    /// `inherit`: may be lent to a child job while this job waits for it.
    pub inherit: bool,
}

/// A block of statements (a `do:` body, branch bodies, loop bodies). Never empty after a
/// successful parse.
pub type Block = Vec<Stmt>;

/// A statement with its source line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stmt {
    /// Line of the statement's first keyword.
    pub line: Line,
    /// What statement it is.
    pub kind: StmtKind,
}

/// Every statement of docs/JCL.md §1.7 / §1.8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StmtKind {
    /// `assert COND:` + one message line (Stage A). Lowered as `if not (COND): raise_error MSG`.
    Assert {
        /// The condition that must hold.
        cond: Code,
        /// The error message expression (the indented line).
        message: Expr,
    },
    /// `call NAME:` imap [`into:` omap] (Stage A): action, procedure or workflow.
    Call(FlowCall),
    /// `case EXPR:` { `when L, ...:` block } [`else:` block] (Stage A).
    Case {
        /// The case expression (converted to a string at run time).
        expr: Code,
        /// The `when` arms in source order.
        whens: Vec<When>,
        /// The `else:` block.
        else_block: Option<Block>,
    },
    /// `detachflow NAME:` imap (Stage C extension).
    DetachFlow(FlowCall),
    /// `let:` / `eval:` assignments (Stage A).
    Let {
        /// `true` if spelled `eval:`, `false` for `let:`.
        eval_spelling: bool,
        /// The assignments (kind [`MapKind::Let`]).
        map: Map,
    },
    /// `goto LABEL` (Stage C).
    Goto {
        /// The target label.
        label: String,
    },
    /// `if COND:` block { `elsif COND:` block } [`else:` block] (Stage A).
    If {
        /// The `if` arm.
        first: CondBlock,
        /// The `elsif` arms in order (each lowered as a nested if in the else part).
        elsifs: Vec<CondBlock>,
        /// The `else:` block.
        else_block: Option<Block>,
    },
    /// `interface NAME:` names `call EXPR:` imap [`into:` omap] (Stage C extension).
    InterfaceCall {
        /// The interface name.
        interface: String,
        /// The allowed destination names listed under the header.
        names: Vec<NameRef>,
        /// The expression choosing the destination.
        target: Code,
        /// Line of the `call` line.
        call_line: Line,
        /// Input map (kind [`MapKind::Input`]).
        inputs: Map,
        /// Output map (kind [`MapKind::Output`]).
        outputs: Option<Map>,
    },
    /// `label LABEL` (Stage C).
    Label {
        /// The label name.
        label: String,
    },
    /// `lock TYPE VALUE` (Stage B).
    Lock {
        /// The lock type.
        locktype: String,
        /// The lock value expression (converted to a string).
        value: Code,
    },
    /// `map NAME using VAR:` imap [`collect:` omap] (Stage C extension), alone (not in a split).
    Map(MapCall),
    /// `raise_error RHS` (Stage A).
    RaiseError {
        /// The message (`msg = <rhs>` implicit input map, checked as `msg string`).
        message: Code,
    },
    /// `raise_event:` imap (Stage C).
    RaiseEvent {
        /// Input map (must set `event`).
        inputs: Map,
    },
    /// `repeat:` block `until COND` (Stage A).
    Repeat {
        /// The loop body (runs at least once).
        body: Block,
        /// Line of the `until` line.
        until_line: Line,
        /// The loop ends when this is true.
        until: Code,
    },
    /// `return` (Stage A).
    Return,
    /// `sleep RHS` (Stage B).
    Sleep {
        /// The interval (converted to a string).
        duration: Code,
    },
    /// `split:` with one or more `callflow`/`map` items (Stage B).
    Split {
        /// The items in source order.
        items: Vec<SplitItem>,
    },
    /// `subscribe:` imap (Stage C).
    Subscribe {
        /// Input map (`name`, `mask`).
        inputs: Map,
    },
    /// `try:` block `catch:` block (Stage A).
    Try {
        /// The protected block.
        body: Block,
        /// Line of the `catch:` line.
        catch_line: Line,
        /// The handler block.
        catch: Block,
    },
    /// `unlock TYPE VALUE` (Stage B).
    Unlock {
        /// The lock type.
        locktype: String,
        /// The lock value expression (converted to a string).
        value: Code,
    },
    /// `unsubscribe:` imap (Stage C).
    Unsubscribe {
        /// Input map (`name`).
        inputs: Map,
    },
    /// `wait_for_event:` imap [`into:` omap] (Stage C).
    WaitForEvent {
        /// Input map (`events`, `timeout`).
        inputs: Map,
        /// Output map (`o.event`).
        outputs: Option<Map>,
    },
    /// `wait_for_lock TYPE:` with `value = ...` and `wait = ...` lines (Stage B extension).
    WaitForLock {
        /// The lock type.
        locktype: String,
        /// The lines (kind [`MapKind::Input`]).
        inputs: Map,
    },
    /// `while COND:` block (Stage A).
    While {
        /// The loop condition.
        cond: Code,
        /// The loop body.
        body: Block,
    },
}

impl StmtKind {
    /// The statement keyword as written in the source (`call`, `split`, `let`, ...), used in
    /// messages like `statement split not supported yet`.
    pub fn keyword(&self) -> &'static str {
        match self {
            StmtKind::Assert { .. } => "assert",
            StmtKind::Call(_) => "call",
            StmtKind::Case { .. } => "case",
            StmtKind::DetachFlow(_) => "detachflow",
            StmtKind::Let {
                eval_spelling: true,
                ..
            } => "eval",
            StmtKind::Let { .. } => "let",
            StmtKind::Goto { .. } => "goto",
            StmtKind::If { .. } => "if",
            StmtKind::InterfaceCall { .. } => "interface",
            StmtKind::Label { .. } => "label",
            StmtKind::Lock { .. } => "lock",
            StmtKind::Map(_) => "map",
            StmtKind::RaiseError { .. } => "raise_error",
            StmtKind::RaiseEvent { .. } => "raise_event",
            StmtKind::Repeat { .. } => "repeat",
            StmtKind::Return => "return",
            StmtKind::Sleep { .. } => "sleep",
            StmtKind::Split { .. } => "split",
            StmtKind::Subscribe { .. } => "subscribe",
            StmtKind::Try { .. } => "try",
            StmtKind::Unlock { .. } => "unlock",
            StmtKind::Unsubscribe { .. } => "unsubscribe",
            StmtKind::WaitForEvent { .. } => "wait_for_event",
            StmtKind::WaitForLock { .. } => "wait_for_lock",
            StmtKind::While { .. } => "while",
        }
    }
}

/// A condition with its block: the `if` arm or an `elsif` arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CondBlock {
    /// Line of the `if`/`elsif` keyword.
    pub line: Line,
    /// The condition.
    pub cond: Code,
    /// The block run when the condition is true.
    pub body: Block,
}

/// One `when L1, L2, ...:` arm of a `case`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct When {
    /// Line of the `when` keyword.
    pub line: Line,
    /// The labels (identifier text or quoted-string content), compared as exact strings.
    pub labels: Vec<String>,
    /// The block.
    pub body: Block,
}

/// A call of a named target with an input map and optional output map: `call`,
/// `callflow`, `detachflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowCall {
    /// Line of the `call`/`callflow`/`detachflow` keyword.
    pub line: Line,
    /// The target name.
    pub target: String,
    /// Input map (kind [`MapKind::Input`]); never empty (use `[[ ]]` for no inputs).
    pub inputs: Map,
    /// `into:` output map (kind [`MapKind::Output`]).
    pub outputs: Option<Map>,
}

/// `map NAME using VAR:` imap [`collect:` omap] (Stage C extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapCall {
    /// Line of the `map` keyword.
    pub line: Line,
    /// The workflow to run once per element.
    pub target: String,
    /// The array variable (`a.x` or `v.x`).
    pub using: Var,
    /// Input map per element (kind [`MapKind::Input`]; `e._i`, `e._v` available).
    pub inputs: Map,
    /// `collect:` output map, run once per child (kind [`MapKind::Output`]).
    pub collect: Option<Map>,
}

/// One item of a `split:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SplitItem {
    /// `callflow NAME:` imap [`into:` omap].
    Callflow(FlowCall),
    /// `map NAME using VAR:` imap [`collect:` omap].
    Map(MapCall),
}

/// Either a JCL expression or a Perl block: conditions, case expressions and the values of
/// `lock`/`unlock`/`sleep`/`raise_error` (docs/JCL.md §1.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Code {
    /// A JCL expression.
    Expr(Expr),
    /// A Perl block (not executable by this engine; rejected by the compiler).
    Perl(PerlBlock),
}

/// A Perl block `[tag[ ... ]tag]`, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerlBlock {
    /// Line of the opening bracket.
    pub line: Line,
    /// The tag between the brackets (often empty).
    pub tag: String,
    /// The Perl source between the brackets, verbatim.
    pub text: String,
}

/// Which kind of map an assignment list is; decides the default target object, the allowed
/// explicit targets and the meaning of magic assignments (docs/JCL.md §1.5, §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MapKind {
    /// Input map (`call`, `callflow`, `map`, `detachflow`, events, `wait_for_lock`):
    /// default target `i`, allowed `i`, `t`. Messages say `imap`.
    Input,
    /// Output map (`into:`, `collect:`): default target `v`, allowed `v`, `t`. `omap`.
    Output,
    /// `let:` / `eval:`: like an output map but without `o`. Messages say `omap`.
    Let,
    /// Workflow output map (`wfomap:`): default target `o`, allowed `o`, `t`. `wfomap`.
    WfOmap,
}

impl MapKind {
    /// The default target object of an lhs.
    pub fn default_target(self) -> Obj {
        match self {
            MapKind::Input => Obj::I,
            MapKind::Output | MapKind::Let => Obj::V,
            MapKind::WfOmap => Obj::O,
        }
    }

    /// The name used in `invalid top level X for NAME` messages.
    pub fn message_name(self) -> &'static str {
        match self {
            MapKind::Input => "imap",
            MapKind::Output | MapKind::Let => "omap",
            MapKind::WfOmap => "wfomap",
        }
    }
}

/// An assignment list: a Perl block or indented lines of assignments / magic assignments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Map {
    /// Line of the first assignment (or of the Perl block).
    pub line: Line,
    /// The map kind.
    pub kind: MapKind,
    /// The content.
    pub body: MapBody,
}

/// The content of a [`Map`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MapBody {
    /// A Perl block replacing the whole list.
    Perl(PerlBlock),
    /// Assignment lines in source order. The 1-based index of an item in this list is the
    /// `line N` of runtime error messages (docs/JCL.md §2.3 "Error texts").
    Items(Vec<MapItem>),
}

/// One line of an assignment list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MapItem {
    /// `lhs op rhs`.
    Assign(Assignment),
    /// `<*>` or `<a,b,...>`.
    Magic(Magic),
}

/// A magic assignment: copy same-named fields (docs/JCL.md §1.5 table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Magic {
    /// Source line.
    pub line: Line,
    /// `None` for `<*>`; else the names of `<a,b,...>`.
    pub names: Option<Vec<String>>,
}

/// One assignment `lhs op rhs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// Source line.
    pub line: Line,
    /// The resolved target (default object already prepended).
    pub target: Place,
    /// The operator.
    pub op: AssignOp,
    /// `true` if the rhs was written `ifdef(X)`: perform the assignment only if `X` (stored in
    /// `value`) is defined (not null/absent), else leave the target untouched.
    pub ifdef: bool,
    /// The right-hand side (for `ifdef`, the argument of `ifdef`).
    pub value: Expr,
}

/// Assignment operators with their exact spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AssignOp {
    /// `=`
    Assign,
    /// `.=` append string
    Concat,
    /// `,=` push the value as one element onto the array (created if absent)
    Push,
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// `/=`
    Div,
    /// `//=` assign if currently null/absent
    DefinedOr,
    /// `||=` assign if currently false
    Or,
}

impl AssignOp {
    /// The exact source spelling.
    pub fn spelling(self) -> &'static str {
        match self {
            AssignOp::Assign => "=",
            AssignOp::Concat => ".=",
            AssignOp::Push => ",=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
            AssignOp::DefinedOr => "//=",
            AssignOp::Or => "||=",
        }
    }
}

/// The six top-level objects (docs/JCL.md §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Obj {
    /// `a`: the job's arguments.
    A,
    /// `e`: the environment.
    E,
    /// `v`: the variables.
    V,
    /// `t`: temporaries (empty at the start of every evaluation).
    T,
    /// `i`: the input object being built by an input map.
    I,
    /// `o`: outputs (output map) / the workflow output being built (wfomap).
    O,
}

impl Obj {
    /// The object for a one-letter name, if it is one of `a e v t i o`.
    pub fn from_letter(c: char) -> Option<Obj> {
        match c {
            'a' => Some(Obj::A),
            'e' => Some(Obj::E),
            'v' => Some(Obj::V),
            't' => Some(Obj::T),
            'i' => Some(Obj::I),
            'o' => Some(Obj::O),
            _ => None,
        }
    }

    /// The one-letter name.
    pub fn letter(self) -> char {
        match self {
            Obj::A => 'a',
            Obj::E => 'e',
            Obj::V => 'v',
            Obj::T => 't',
            Obj::I => 'i',
            Obj::O => 'o',
        }
    }
}

/// One part of a variable path: a field name with an optional integer index, e.g. `b[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathPart {
    /// Field name (bare or quoted identifier content).
    pub name: String,
    /// `[n]` after the name; negative counts from the end (`-1` = last).
    pub index: Option<i64>,
}

/// A variable read in an expression: `X.part(.part)*` (at least one part).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Var {
    /// The top-level object.
    pub obj: Obj,
    /// The path below it (never empty).
    pub path: Vec<PathPart>,
}

/// An assignment target: object plus path (never empty).
pub type Place = Var;

/// An expression node with its source line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expr {
    /// Source line.
    pub line: Line,
    /// The expression.
    pub kind: ExprKind,
}

/// Expression forms (docs/JCL.md §1.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ExprKind {
    /// A literal.
    Lit(Literal),
    /// A variable read.
    Var(Var),
    /// A unary operator applied to an operand.
    Unary(UnOp, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Regex match `expr ~ /re/` (Stage B): `1` or `""`. The pattern is the raw text between
    /// the slashes (Perl regex dialect).
    Match(Box<Expr>, String),
    /// A function call with its (flattened) arguments.
    Call(Func, Vec<Expr>),
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// `null` / `NULL`.
    Null,
    /// `true` / `false` / `TRUE` / `FALSE`.
    Bool(bool),
    /// An integer literal (decimal, hex, or leading-zero octal — see the lexer docs) that
    /// fits `i64`.
    Int(i64),
    /// A positive decimal integer literal above `i64::MAX` that fits `u64` (Perl keeps it
    /// integral).
    UInt(u64),
    /// A decimal literal with a fraction (or an integer literal beyond `u64`).
    Float(f64),
    /// A string literal's value: the raw text between the quotes with only `\\` → `\`
    /// (no other escape processing, docs/JCL.md §1.2).
    Str(String),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnOp {
    /// `!x` (binds tight): `1` or `""`.
    Not,
    /// `-x`: numeric negation.
    Neg,
    /// `+x`: no-op.
    Plus,
    /// `not x` (low precedence): `1` or `""`.
    LowNot,
}

impl UnOp {
    /// The exact source spelling.
    pub fn spelling(self) -> &'static str {
        match self {
            UnOp::Not => "!",
            UnOp::Neg => "-",
            UnOp::Plus => "+",
            UnOp::LowNot => "not",
        }
    }
}

/// Binary operators (docs/JCL.md §1.4 table), with their exact spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinOp {
    /// `**` power (right-associative).
    Pow,
    /// `*`
    Mul,
    /// `/` (float result)
    Div,
    /// `%` (integer modulus, sign of the right operand)
    Mod,
    /// `x` string repetition
    Repeat,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `.` string concatenation
    Concat,
    /// `<`
    NumLt,
    /// `>`
    NumGt,
    /// `<=`
    NumLe,
    /// `>=`
    NumGe,
    /// `lt`
    StrLt,
    /// `gt`
    StrGt,
    /// `le`
    StrLe,
    /// `ge`
    StrGe,
    /// `==`
    NumEq,
    /// `!=`
    NumNe,
    /// `eq`
    StrEq,
    /// `ne`
    StrNe,
    /// `&&` (returns an operand)
    And,
    /// `||` (returns an operand)
    Or,
    /// `//` defined-or
    DefinedOr,
    /// `and` (low precedence; same semantics as `&&`)
    LowAnd,
    /// `or` (low precedence; same semantics as `||`)
    LowOr,
    /// `xor` (low precedence): `1` or `""`
    Xor,
}

impl BinOp {
    /// The exact source spelling.
    pub fn spelling(self) -> &'static str {
        match self {
            BinOp::Pow => "**",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Repeat => "x",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Concat => ".",
            BinOp::NumLt => "<",
            BinOp::NumGt => ">",
            BinOp::NumLe => "<=",
            BinOp::NumGe => ">=",
            BinOp::StrLt => "lt",
            BinOp::StrGt => "gt",
            BinOp::StrLe => "le",
            BinOp::StrGe => "ge",
            BinOp::NumEq => "==",
            BinOp::NumNe => "!=",
            BinOp::StrEq => "eq",
            BinOp::StrNe => "ne",
            BinOp::And => "&&",
            BinOp::Or => "||",
            BinOp::DefinedOr => "//",
            BinOp::LowAnd => "and",
            BinOp::LowOr => "or",
            BinOp::Xor => "xor",
        }
    }

    /// Perl precedence level of docs/JCL.md §1.4 (1 = binds tightest). Unary `!`/`-`/`+` are
    /// level 2, regex match level 3, `not` level 10.
    pub fn level(self) -> u8 {
        match self {
            BinOp::Pow => 1,
            BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Repeat => 4,
            BinOp::Add | BinOp::Sub | BinOp::Concat => 5,
            BinOp::NumLt
            | BinOp::NumGt
            | BinOp::NumLe
            | BinOp::NumGe
            | BinOp::StrLt
            | BinOp::StrGt
            | BinOp::StrLe
            | BinOp::StrGe => 6,
            BinOp::NumEq | BinOp::NumNe | BinOp::StrEq | BinOp::StrNe => 7,
            BinOp::And => 8,
            BinOp::Or | BinOp::DefinedOr => 9,
            BinOp::LowAnd => 11,
            BinOp::LowOr | BinOp::Xor => 12,
        }
    }
}

/// The functions of docs/JCL.md §1.4 (aliases folded into one variant). `ifdef` is not here: it
/// is represented by [`Assignment::ifdef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Func {
    /// `tostring(x)`
    ToString,
    /// `tonumber(x)`
    ToNumber,
    /// `defined(x)`: `1` or `""`
    Defined,
    /// `concat(a, b, ...)` (single terms)
    Concat,
    /// `array(a, b, ...)` (single terms)
    Array,
    /// `object(k1: v1, ...)` (even number of single terms)
    Object,
    /// `tojson` / `to_json` / `encode_json`
    ToJson,
    /// `fromjson` / `from_json` / `decode_json`
    FromJson,
    /// `b64encode` / `encode_base64`
    B64Encode,
    /// `b64decode` / `decode_base64`
    B64Decode,
    /// `md5` / `md5_hex`
    Md5,
    /// `md5b64` / `md5_base64`
    Md5B64,
    /// `keys(o)`
    Keys,
    /// `values(o)`
    Values,
    /// `list(x)` (Stage C)
    List,
}

impl Func {
    /// Resolve a source function name (including aliases). `ifdef` is not resolved here.
    pub fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "tostring" => Func::ToString,
            "tonumber" => Func::ToNumber,
            "defined" => Func::Defined,
            "concat" => Func::Concat,
            "array" => Func::Array,
            "object" => Func::Object,
            "tojson" | "to_json" | "encode_json" => Func::ToJson,
            "fromjson" | "from_json" | "decode_json" => Func::FromJson,
            "b64encode" | "encode_base64" => Func::B64Encode,
            "b64decode" | "decode_base64" => Func::B64Decode,
            "md5" | "md5_hex" => Func::Md5,
            "md5b64" | "md5_base64" => Func::Md5B64,
            "keys" => Func::Keys,
            "values" => Func::Values,
            "list" => Func::List,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Func::ToString => "tostring",
            Func::ToNumber => "tonumber",
            Func::Defined => "defined",
            Func::Concat => "concat",
            Func::Array => "array",
            Func::Object => "object",
            Func::ToJson => "tojson",
            Func::FromJson => "fromjson",
            Func::B64Encode => "b64encode",
            Func::B64Decode => "b64decode",
            Func::Md5 => "md5",
            Func::Md5B64 => "md5b64",
            Func::Keys => "keys",
            Func::Values => "values",
            Func::List => "list",
        }
    }

    /// `true` for the variadic functions whose arguments must be single terms
    /// (`concat`, `array`, `object`); all others take exactly one expression.
    pub fn is_variadic(self) -> bool {
        matches!(self, Func::Concat | Func::Array | Func::Object)
    }
}
