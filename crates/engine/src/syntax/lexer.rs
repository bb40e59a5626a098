//! Lexical layer of the parser: a cursor over the source with token readers (identifiers,
//! numbers, strings, Perl blocks, comments) and the explicit layout checks of docs/JCL.md §1.3.
//!
//! JCL is line-structured: every statement, header and assignment lives on one physical
//! line, except Perl blocks and block comments. The parser therefore drives this cursor
//! directly ("scannerless" within a line), and the layout pass is a set of checks on line
//! starts with a stack of indentation widths:
//!
//! - [`Lexer::indent`] (INDENT): skip ignorable lines; the next line must be wider than the
//!   top of the stack (at least 1 when empty); push its width. Nothing is consumed.
//! - [`Lexer::same`] (SAME): skip ignorable lines; the current line's width must equal the
//!   top; its leading blanks are consumed.
//! - [`Lexer::dedent`] (DEDENT): skip ignorable lines; the next line's width (0 at end of
//!   input) must be smaller than the top; pop.
//!
//! Width: every TAB counts 8, every space 1. Ignorable lines: blank lines, line comments
//! (`#...`) at any indentation, block comments `#[tag[ ... #]tag]`.
//!
//! Numbers (§1.2): hex `0x1F` (no sign), decimal with fraction `[0-9]*\.[0-9]+`, decimal
//! integer `[0-9]+`. **Leading zeros:** like the original (which pastes the text into
//! Perl) a decimal integer with a leading zero (`010`) is read as **octal** (= 8) inside
//! expressions, with a `tracing` warning; a digit 8 or 9 in such a literal is an error
//! (`illegal octal digit`), as in Perl. In `in:`/`env:` defaults numbers must be JSON
//! numbers (Appendix D.9), so `010` is rejected there.
//!
//! Strings: the value is the raw text between the quotes with only `\\` turned into `\`
//! (§1.2). Single-quoted strings accept the escapes `\'` and `\\` lexically; `\'` is
//! **rejected** (the original compiles it to broken code). Double-quoted strings accept
//! `\"`, `\\`, `\0`, `\n`, `\t`; any other backslash sequence is a syntax error.

use super::error::CompileError;

/// Result type of the lexer and parser: a syntax error stops parsing.
pub(crate) type PResult<T> = Result<T, CompileError>;

/// A scanned number literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NumberTok {
    /// The source text (without sign).
    pub text: String,
    /// The value.
    pub value: super::ast::Literal,
}

/// A scanned string literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StringTok {
    /// The value (raw text, `\\` → `\`).
    pub value: String,
    /// The raw text between the quotes.
    pub raw: String,
}

/// The cursor over a source file plus the layout stack.
pub(crate) struct Lexer<'a> {
    file: &'a str,
    src: &'a [u8],
    /// Current byte offset.
    pub pos: usize,
    line_starts: Vec<usize>,
    stack: Vec<usize>,
}

pub(crate) fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

pub(crate) fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> Lexer<'a> {
    /// A lexer over `src` (CR LF line ends must already be normalised to LF).
    pub fn new(file: &'a str, src: &'a str) -> Self {
        let bytes = src.as_bytes();
        let mut line_starts = vec![0];
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        Lexer {
            file,
            src: bytes,
            pos: 0,
            line_starts,
            stack: Vec::new(),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, pos: usize) -> u32 {
        let idx = match self.line_starts.binary_search(&pos) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        (idx + 1) as u32
    }

    /// 1-based line of the cursor.
    pub fn line(&self) -> u32 {
        self.line_of(self.pos)
    }

    /// An error at the cursor's line.
    pub fn err(&self, msg: impl Into<String>) -> CompileError {
        CompileError::new(self.file, self.line(), msg)
    }

    /// An error at a given line.
    pub fn err_at(&self, line: u32, msg: impl Into<String>) -> CompileError {
        CompileError::new(self.file, line, msg)
    }

    /// The byte at the cursor.
    pub fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// The byte at an absolute offset.
    pub fn byte_at(&self, p: usize) -> Option<u8> {
        self.src.get(p).copied()
    }

    /// The byte `k` positions after the cursor.
    pub fn peek_at(&self, k: usize) -> Option<u8> {
        self.src.get(self.pos + k).copied()
    }

    /// Whether the cursor is at the end of input.
    pub fn at_eof(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// Whether the cursor is at a line end (LF) or the end of input.
    pub fn at_eol(&self) -> bool {
        matches!(self.peek(), None | Some(b'\n'))
    }

    /// Skip blanks (spaces and tabs, never line breaks); returns how many were skipped.
    pub fn skip_blanks(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ') | Some(b'\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// If the text at the cursor starts with `s`, consume it.
    pub fn eat(&mut self, s: &str) -> bool {
        if self.src[self.pos..].starts_with(s.as_bytes()) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// Whether the text at the cursor starts with `s`.
    pub fn looking_at(&self, s: &str) -> bool {
        self.src[self.pos..].starts_with(s.as_bytes())
    }

    /// Whether the cursor is at the keyword `kw` (followed by a non-identifier character).
    pub fn at_keyword(&self, kw: &str) -> bool {
        self.looking_at(kw)
            && !self
                .src
                .get(self.pos + kw.len())
                .copied()
                .is_some_and(is_ident_char)
    }

    /// A description of what is at the cursor, for messages.
    pub fn found(&self) -> String {
        match self.peek() {
            None => "end of input".to_string(),
            Some(b'\n') => "end of line".to_string(),
            Some(_) => {
                let end = self.src[self.pos..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map(|p| self.pos + p)
                    .unwrap_or(self.src.len());
                let text = String::from_utf8_lossy(&self.src[self.pos..end]);
                let short: String = text.chars().take(20).collect();
                format!("'{short}'")
            }
        }
    }

    /// A syntax error "expected X, found ...".
    pub fn expected(&self, what: &str) -> CompileError {
        self.err(format!(
            "syntax error: expected {what}, found {}",
            self.found()
        ))
    }

    /// Text of the rest of the current line (for messages like `invalid config ...`).
    pub fn rest_of_line(&self) -> String {
        let end = self.src[self.pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| self.pos + p)
            .unwrap_or(self.src.len());
        String::from_utf8_lossy(&self.src[self.pos..end])
            .trim_end()
            .to_string()
    }

    /// Skip to the start of the next line (or the end of input).
    pub fn skip_line(&mut self) {
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == b'\n' {
                break;
            }
        }
    }

    // ----- identifiers, names, literals -------------------------------------------------

    /// A bare identifier `[A-Za-z_][A-Za-z0-9_]*`.
    pub fn ident(&mut self) -> Option<String> {
        if !self.peek().is_some_and(is_ident_start) {
            return None;
        }
        let start = self.pos;
        while self.peek().is_some_and(is_ident_char) {
            self.pos += 1;
        }
        Some(String::from_utf8_lossy(&self.src[start..self.pos]).into_owned())
    }

    /// An identifier: bare identifier or quoted string (its value).
    pub fn identifier(&mut self) -> PResult<Option<String>> {
        if matches!(self.peek(), Some(b'\'') | Some(b'"')) {
            return Ok(self.string()?.map(|s| s.value));
        }
        Ok(self.ident())
    }

    /// A definition/call-target name: `[A-Za-z][A-Za-z0-9_.]*` or a quoted string.
    pub fn name(&mut self) -> PResult<Option<String>> {
        if matches!(self.peek(), Some(b'\'') | Some(b'"')) {
            return Ok(self.string()?.map(|s| s.value));
        }
        if !self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Ok(None);
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| is_ident_char(c) || c == b'.') {
            self.pos += 1;
        }
        Ok(Some(
            String::from_utf8_lossy(&self.src[start..self.pos]).into_owned(),
        ))
    }

    /// A string literal at the cursor (`None` if there is no quote).
    pub fn string(&mut self) -> PResult<Option<StringTok>> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Ok(None),
        };
        let line = self.line();
        self.pos += 1;
        let start = self.pos;
        let mut value: Vec<u8> = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => {
                    return Err(self.err_at(line, "syntax error: unterminated string literal"));
                }
                Some(c) if c == quote => {
                    let raw = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
                    self.pos += 1;
                    return Ok(Some(StringTok {
                        value: String::from_utf8_lossy(&value).into_owned(),
                        raw,
                    }));
                }
                Some(b'\\') => {
                    let next = self.peek_at(1);
                    match (quote, next) {
                        (_, Some(b'\\')) => {
                            value.push(b'\\');
                            self.pos += 2;
                        }
                        (b'\'', Some(b'\'')) => {
                            return Err(self.err(
                                "\\' in a single-quoted string is not supported (use a double-quoted string)",
                            ));
                        }
                        (b'"', Some(c @ (b'"' | b'0' | b'n' | b't'))) => {
                            value.push(b'\\');
                            value.push(c);
                            self.pos += 2;
                        }
                        _ => {
                            return Err(self.err(format!(
                                "syntax error: invalid escape in string literal: {}",
                                self.found()
                            )));
                        }
                    }
                }
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A number literal without sign at the cursor (`None` if there is none).
    /// `in_expression` selects the Perl reading of leading-zero integers (octal).
    pub fn number(&mut self, in_expression: bool) -> PResult<Option<NumberTok>> {
        use super::ast::Literal;
        let start = self.pos;
        let c0 = match self.peek() {
            Some(c) => c,
            None => return Ok(None),
        };
        let starts_fraction = c0 == b'.' && self.peek_at(1).is_some_and(|c| c.is_ascii_digit());
        if !c0.is_ascii_digit() && !starts_fraction {
            return Ok(None);
        }
        let line = self.line();
        let value;
        if c0 == b'0'
            && matches!(self.peek_at(1), Some(b'x') | Some(b'X'))
            && self.peek_at(2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            self.pos += 2;
            let hs = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let hex = std::str::from_utf8(&self.src[hs..self.pos]).unwrap_or("0");
            value = match u64::from_str_radix(hex, 16) {
                Ok(n) => match i64::try_from(n) {
                    Ok(i) => Literal::Int(i),
                    Err(_) => Literal::UInt(n),
                },
                Err(_) => Literal::Float(hex.chars().fold(0.0, |acc, c| {
                    acc * 16.0 + f64::from(c.to_digit(16).unwrap_or(0))
                })),
            };
        } else {
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
            let int_end = self.pos;
            if self.peek() == Some(b'.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.src[start..self.pos]).unwrap_or("0");
                let text = if text.starts_with('.') {
                    format!("0{text}")
                } else {
                    text.to_string()
                };
                value = Literal::Float(
                    text.parse::<f64>()
                        .map_err(|_| self.err_at(line, "syntax error: invalid number"))?,
                );
            } else {
                let digits = std::str::from_utf8(&self.src[start..int_end]).unwrap_or("0");
                if in_expression && digits.len() > 1 && digits.starts_with('0') {
                    if digits.bytes().any(|d| d > b'7') {
                        return Err(
                            self.err_at(line, format!("illegal octal digit in number {digits}"))
                        );
                    }
                    tracing::warn!(
                        file = self.file,
                        line,
                        "number {digits} with a leading zero is read as octal"
                    );
                    value = match u64::from_str_radix(digits, 8) {
                        Ok(n) => match i64::try_from(n) {
                            Ok(i) => Literal::Int(i),
                            Err(_) => Literal::UInt(n),
                        },
                        Err(_) => Literal::Float(
                            digits
                                .bytes()
                                .fold(0.0, |acc, d| acc * 8.0 + f64::from(d - b'0')),
                        ),
                    };
                } else if let Ok(i) = digits.parse::<i64>() {
                    value = Literal::Int(i);
                } else if let Ok(u) = digits.parse::<u64>() {
                    value = Literal::UInt(u);
                } else {
                    value = Literal::Float(digits.parse::<f64>().unwrap_or(f64::INFINITY));
                }
            }
        }
        if self.peek().is_some_and(is_ident_char) {
            // `1e3`, `12abc` are not JCL numbers.
            return Err(self.err_at(
                line,
                format!("syntax error: invalid number {}", self.found()),
            ));
        }
        let text = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
        Ok(Some(NumberTok { text, value }))
    }

    /// A Perl block `[tag[ ... ]tag]` at the cursor (`None` if not at `[`). The line break
    /// after it is left to the caller (`expect_eol`).
    pub fn perl_block(&mut self) -> PResult<Option<super::ast::PerlBlock>> {
        if self.peek() != Some(b'[') {
            return Ok(None);
        }
        let line = self.line();
        let save = self.pos;
        self.pos += 1;
        let tag_start = self.pos;
        while let Some(c) = self.peek() {
            if c == b'[' || c == b'\n' {
                break;
            }
            self.pos += 1;
        }
        if self.peek() != Some(b'[') {
            self.pos = save;
            return Err(self.err_at(line, "syntax error: malformed perl block (expected [tag[)"));
        }
        let tag = String::from_utf8_lossy(&self.src[tag_start..self.pos]).into_owned();
        self.pos += 1;
        let text_start = self.pos;
        let close = format!("]{tag}]");
        let rel = find(&self.src[text_start..], close.as_bytes());
        match rel {
            None => Err(self.err_at(line, "syntax error: unterminated perl block")),
            Some(r) => {
                let text =
                    String::from_utf8_lossy(&self.src[text_start..text_start + r]).into_owned();
                self.pos = text_start + r + close.len();
                Ok(Some(super::ast::PerlBlock { line, tag, text }))
            }
        }
    }

    // ----- comments and line ends --------------------------------------------------------

    /// If a block comment `#[tag[ ... #]tag]` starts at the cursor, skip it. Returns whether
    /// one was skipped.
    fn block_comment(&mut self) -> PResult<bool> {
        if !self.looking_at("#[") {
            return Ok(false);
        }
        let mut p = self.pos + 2;
        while p < self.src.len() && self.src[p] != b'[' && self.src[p] != b'\n' {
            p += 1;
        }
        if p >= self.src.len() || self.src[p] != b'[' {
            return Ok(false); // a line comment that happens to start with `#[`
        }
        let tag = &self.src[self.pos + 2..p];
        let mut close = b"#]".to_vec();
        close.extend_from_slice(tag);
        close.push(b']');
        match find(&self.src[p + 1..], &close) {
            // Like the original PEG: without its closing `#]tag]` it is a line comment.
            None => Ok(false),
            Some(r) => {
                self.pos = p + 1 + r + close.len();
                Ok(true)
            }
        }
    }

    /// End of a statement/assignment/io-spec line: blanks, optionally `;` (if allowed),
    /// blanks, then a comment or the line end (consumed).
    pub fn expect_eol(&mut self, allow_semicolon: bool) -> PResult<()> {
        self.skip_blanks();
        if allow_semicolon && self.peek() == Some(b';') {
            self.pos += 1;
            self.skip_blanks();
        }
        self.finish_line()
    }

    /// Rest of a line: blanks, then an optional comment, then the line end (consumed).
    fn finish_line(&mut self) -> PResult<()> {
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Ok(()),
                Some(b'\n') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'#') => {
                    if self.block_comment()? {
                        continue;
                    }
                    self.skip_line();
                    return Ok(());
                }
                Some(_) => return Err(self.expected("end of line")),
            }
        }
    }

    /// `_ ":" _ EOL`: a header colon followed only by blanks and the line end (no comment).
    pub fn colon_eol(&mut self) -> PResult<()> {
        self.skip_blanks();
        if self.peek() != Some(b':') {
            return Err(self.expected("':'"));
        }
        self.pos += 1;
        self.skip_blanks();
        match self.peek() {
            None => Ok(()),
            Some(b'\n') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'#') => Err(self.err("syntax error: no comment allowed after ':'")),
            Some(_) => Err(self.expected("end of line after ':'")),
        }
    }

    // ----- layout ------------------------------------------------------------------------

    /// Width and content offset of the line starting at `start`.
    fn line_info(&self, start: usize) -> (usize, usize) {
        let mut w = 0;
        let mut p = start;
        while p < self.src.len() {
            match self.src[p] {
                b' ' => w += 1,
                b'\t' => w += 8,
                _ => break,
            }
            p += 1;
        }
        (w, p)
    }

    /// Skip ignorable lines (blank lines, line comments, block comments) starting at the
    /// cursor, which must be at a line start. Stops at the start of a significant line or
    /// at the end of input.
    pub fn skip_ignorable(&mut self) -> PResult<()> {
        loop {
            if self.at_eof() {
                return Ok(());
            }
            let line_start = self.pos;
            let (_, content) = self.line_info(line_start);
            self.pos = content;
            match self.peek() {
                None => return Ok(()),
                Some(b'\n') => {
                    self.pos += 1;
                }
                Some(b'#') => {
                    if self.block_comment()? {
                        self.finish_line()?;
                    } else {
                        self.skip_line();
                    }
                }
                Some(_) => {
                    self.pos = line_start;
                    return Ok(());
                }
            }
        }
    }

    /// Width of the significant line at the cursor (after [`Lexer::skip_ignorable`]);
    /// `None` at the end of input.
    pub fn current_width(&self) -> Option<usize> {
        if self.at_eof() {
            None
        } else {
            Some(self.line_info(self.pos).0)
        }
    }

    /// The top of the layout stack (0 when empty: top-level keywords are in column 0).
    pub fn top(&self) -> usize {
        self.stack.last().copied().unwrap_or(0)
    }

    /// INDENT: the next significant line must be wider than the top; push its width.
    pub fn indent(&mut self, what: &str) -> PResult<()> {
        self.skip_ignorable()?;
        let min = self.stack.last().map(|t| t + 1).unwrap_or(1);
        match self.current_width() {
            Some(w) if w >= min => {
                self.stack.push(w);
                Ok(())
            }
            _ => Err(self.err(format!("syntax error: expected an indented {what}"))),
        }
    }

    /// SAME: if the next significant line has exactly the top width, consume its leading
    /// blanks and return `true`; otherwise consume nothing significant and return `false`.
    pub fn same(&mut self) -> PResult<bool> {
        self.skip_ignorable()?;
        match self.current_width() {
            Some(w) if w == self.top() => {
                let (_, content) = self.line_info(self.pos);
                self.pos = content;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// SAME followed by a keyword: if the next significant line has the top width and
    /// starts with `kw` (as a whole word), consume up to after the keyword and return
    /// `true`; otherwise restore the cursor and return `false`.
    pub fn same_keyword(&mut self, kw: &str) -> PResult<bool> {
        let save = self.pos;
        if self.same()? && self.at_keyword(kw) {
            self.pos += kw.len();
            return Ok(true);
        }
        self.pos = save;
        Ok(false)
    }

    /// DEDENT: the next significant line (0 at end of input) must be narrower than the top;
    /// pop.
    pub fn dedent(&mut self) -> PResult<()> {
        self.skip_ignorable()?;
        let w = self.current_width().unwrap_or(0);
        if w >= self.top() {
            return Err(self.err("syntax error: inconsistent indentation"));
        }
        self.stack.pop();
        Ok(())
    }

    /// Byte slice access for the parser.
    pub fn slice(&self, from: usize, to: usize) -> String {
        String::from_utf8_lossy(&self.src[from..to.min(self.src.len())]).into_owned()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
