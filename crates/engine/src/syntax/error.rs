//! The compile error type shared by the parser and the compiler.

/// One error found while parsing or compiling a definition. Displays as `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct CompileError {
    /// The file name given to the parser/compiler.
    pub file: String,
    /// 1-based source line (0 when the error concerns the whole file).
    pub line: u32,
    /// The message (docs/JCL.md §1.10 texts where the original has one).
    pub message: String,
}

impl CompileError {
    /// Build an error.
    pub fn new(file: &str, line: u32, message: impl Into<String>) -> Self {
        CompileError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}
