//! Lexer, layout pass and parser: JCL source text to the AST.
//!
//! Entry point: [`parse`]. The AST types are in [`ast`]; errors are [`CompileError`].

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
    let normalised;
    let src = if src.contains('\r') {
        normalised = src.replace("\r\n", "\n");
        normalised.as_str()
    } else {
        src
    };
    parser::parse_file(file_name, src)
}
