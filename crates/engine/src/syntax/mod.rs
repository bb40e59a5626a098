//! Lexer, layout pass and parser: JCL source text to the AST.

pub mod ast;
