//! Lexer, layout pass and parser: JCL source text to the AST.
//!
//! Entry point: [`parse`]. The AST types are in [`ast`]; errors are [`CompileError`].
//!
//! Choices where docs/JCL.md leaves room (all documented at their place too):
//! - a decimal integer with a leading zero (`010`) is **octal** in expressions, like the
//!   original (a `tracing` warning is logged); digits 8/9 there are an error;
//! - `\'` in single-quoted strings is rejected (the original compiles it to broken code);
//! - io-spec defaults must be JSON literals (Appendix D.9): `TRUE`, `NULL`, `010`, `.5`,
//!   `0x1F`, invalid JSON escapes fail with `invalid input syntax for type json`;
//! - a Perl block consisting only of white space used as an assignment list (`[[ ]]`, the
//!   way to call without inputs) is an empty map; every other Perl block stays in the AST
//!   and is rejected by the compiler (`perl blocks are not supported`);
//! - a comment on the last line without a final newline is accepted; an unclosed `#[[`
//!   is a line comment (PEG fallback); a UTF-8 byte order mark is ignored; CR LF is LF;
//! - word operators (`eq`, `x`, `and`, ...) need a word boundary, relational and equality
//!   operators do not chain;
//! - nesting is bounded (expressions ~50 parenthesis levels, 40 block levels), so hostile
//!   input gets an error instead of exhausting the stack.

pub mod ast;
mod error;
mod lexer;
mod parser;

pub use error::CompileError;

/// Parse one JCL source file (a workflow, action or procedure) into its AST.
///
/// Reports syntax errors (the first one stops the parse, with its line) and the resolution
/// errors the parser can see (unknown functions, argument rules, invalid top-level objects
/// in assignments and expressions, magic assignments in `let`, invalid defaults/config
/// lines), each as `file:line: message`. Stage and catalog checks (call targets, lock types,
/// types, Perl blocks, unsupported statements) are done by the compiler
/// (`crate::compile::Catalog::compile`).
pub fn parse(file_name: &str, src: &str) -> Result<ast::Definition, Vec<CompileError>> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let normalised;
    let src = if src.contains('\r') {
        normalised = src.replace("\r\n", "\n");
        normalised.as_str()
    } else {
        src
    };
    parser::parse_file(file_name, src)
}
