//! A small Perl-dialect regular-expression matcher for `expr ~ /re/` (docs/JCL.md §1.4, Stage B).
//!
//! JCL only needs to know **whether** a pattern matches (capture groups are not accessible),
//! so the pattern is compiled to a small instruction program and run as a Pike VM (a set of
//! threads advanced in lock step): linear in the text length, no catastrophic backtracking.
//!
//! Supported: literals, `.`, `[...]` classes (ranges, negation, escapes, POSIX `[:name:]`),
//! `\d \w \s \D \W \S`, `\b \B \A \z \Z`, `^ $`, groups `( )`/`(?: )`, alternation,
//! greedy/lazy quantifiers `* + ? {n} {n,} {n,m}`, lookahead `(?= )`/`(?! )`, escapes
//! `\t \n \r \f \e \a \0 \xHH \x{H..}`. Not supported (an error): back-references,
//! lookbehind, inline flags, possessive quantifiers, `\Q...\E`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Largest compiled pattern, counting the instructions of all its (sub-)programs (guards
/// against `(a{1000}){1000}` and `(x(?=a{9999})){9999}`).
const MAX_PROGRAM: usize = 100_000;

/// Most compiler steps (syntax nodes visited, counting each repetition): guards against
/// patterns that compile to little but take long, such as `((?:){65535}){65535}`.
const MAX_COMPILE_STEPS: usize = 1_000_000;

/// Deepest nesting of groups (guards the recursive parser and compiler against
/// `((((...` exhausting the stack).
const MAX_NESTING: usize = 250;

/// A pattern that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} in regex; marked by <-- HERE in m/{pattern}/")]
pub struct RegexError {
    /// What is wrong.
    pub reason: String,
    /// The pattern.
    pub pattern: String,
}

#[derive(Debug, Clone, PartialEq)]
enum ClassItem {
    Range(char, char),
    Digit(bool),
    Word(bool),
    Space(bool),
}

#[derive(Debug, Clone, PartialEq)]
struct Class {
    items: Vec<ClassItem>,
    negated: bool,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl ClassItem {
    fn matches(&self, c: char) -> bool {
        match self {
            ClassItem::Range(a, b) => *a <= c && c <= *b,
            ClassItem::Digit(neg) => c.is_ascii_digit() != *neg,
            ClassItem::Word(neg) => is_word(c) != *neg,
            ClassItem::Space(neg) => c.is_whitespace() != *neg,
        }
    }
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.items.iter().any(|i| i.matches(c)) != self.negated
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Empty,
    Char(char),
    Any,
    Class(Class),
    Assert(Assert),
    Look(Box<Node>, bool),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Assert {
    /// `^`, `\A`
    Start,
    /// `$`, `\Z`: end or before a final newline
    EndOrNewline,
    /// `\z`
    End,
    /// `\b` (true) / `\B` (false)
    WordBoundary(bool),
}

#[derive(Debug, Clone)]
enum Inst {
    Char(char),
    Any,
    Class(Class),
    Assert(Assert),
    /// Lookahead: sub-program index, negated.
    Look(usize, bool),
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Regex {
    progs: Vec<Vec<Inst>>,
}

struct Parser<'p> {
    chars: Vec<char>,
    pos: usize,
    pattern: &'p str,
    /// Groups open at `pos`.
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &str) -> RegexError {
        RegexError {
            reason: reason.to_string(),
            pattern: self.pattern.to_string(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn alt(&mut self) -> Result<Node, RegexError> {
        let mut arms = vec![self.concat()?];
        while self.eat('|') {
            arms.push(self.concat()?);
        }
        Ok(if arms.len() == 1 {
            arms.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(arms)
        })
    }

    fn concat(&mut self) -> Result<Node, RegexError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.quantified(atom)?);
        }
        Ok(Node::Concat(items))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }

    /// `{n}`, `{n,}`, `{n,m}`; anything else leaves `{` as a literal.
    fn braces(&mut self) -> Result<Option<(u32, Option<u32>)>, RegexError> {
        let save = self.pos;
        if !self.eat('{') {
            return Ok(None);
        }
        let Some(min) = self.number() else {
            self.pos = save;
            return Ok(None);
        };
        let max = if self.eat(',') {
            self.number()
        } else {
            Some(min)
        };
        if !self.eat('}') {
            self.pos = save;
            return Ok(None);
        }
        if max.is_some_and(|m| m < min) {
            return Err(self.err("Can't do {n,m} with n > m"));
        }
        Ok(Some((min, max)))
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, RegexError> {
        let (min, max) = match self.peek() {
            Some('*') => {
                self.pos += 1;
                (0, None)
            }
            Some('+') => {
                self.pos += 1;
                (1, None)
            }
            Some('?') => {
                self.pos += 1;
                (0, Some(1))
            }
            Some('{') => match self.braces()? {
                Some(q) => q,
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
        if matches!(atom, Node::Assert(_) | Node::Look(..)) {
            // Quantified assertions match like the assertion itself (or nothing).
            return Ok(if min == 0 { Node::Empty } else { atom });
        }
        if self.eat('+') {
            return Err(self.err("Possessive quantifiers are not supported"));
        }
        self.eat('?'); // lazy: same answer for "does it match"
        if matches!(self.peek(), Some('*' | '+' | '?')) {
            return Err(self.err("Nested quantifiers"));
        }
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    fn atom(&mut self) -> Result<Node, RegexError> {
        let Some(c) = self.peek() else {
            return Ok(Node::Empty);
        };
        self.pos += 1;
        match c {
            '(' => {
                if self.depth >= MAX_NESTING {
                    return Err(self.err("Too deeply nested groups"));
                }
                let mut look = None;
                if self.eat('?') {
                    if self.eat(':') {
                    } else if self.eat('=') {
                        look = Some(false);
                    } else if self.eat('!') {
                        look = Some(true);
                    } else {
                        return Err(self.err("Sequence (?... not supported"));
                    }
                }
                self.depth += 1;
                let inner = self.alt()?;
                self.depth -= 1;
                if !self.eat(')') {
                    return Err(self.err("Unmatched ("));
                }
                Ok(match look {
                    Some(neg) => Node::Look(Box::new(inner), neg),
                    None => inner,
                })
            }
            ')' => Err(self.err("Unmatched )")),
            '*' | '+' | '?' => Err(self.err("Quantifier follows nothing")),
            '.' => Ok(Node::Any),
            '^' => Ok(Node::Assert(Assert::Start)),
            '$' => Ok(Node::Assert(Assert::EndOrNewline)),
            '[' => self.class(),
            '\\' => self.escape(false).map(|e| match e {
                Escaped::Char(ch) => Node::Char(ch),
                Escaped::Item(item) => Node::Class(Class {
                    items: vec![item],
                    negated: false,
                }),
                Escaped::Assert(a) => Node::Assert(a),
            }),
            other => Ok(Node::Char(other)),
        }
    }

    fn hex(&mut self) -> Result<char, RegexError> {
        let digits: String = if self.eat('{') {
            let start = self.pos;
            while self.peek().is_some_and(|c| c != '}') {
                self.pos += 1;
            }
            let d = self.chars[start..self.pos].iter().collect();
            if !self.eat('}') {
                return Err(self.err("Missing right brace on \\x{}"));
            }
            d
        } else {
            let start = self.pos;
            while self.pos < start + 2 && self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            self.chars[start..self.pos].iter().collect()
        };
        let n = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits.trim(), 16).map_err(|_| self.err("Invalid hex number"))?
        };
        char::from_u32(n).ok_or_else(|| self.err("Invalid character code"))
    }

    fn escape(&mut self, in_class: bool) -> Result<Escaped, RegexError> {
        let Some(c) = self.peek() else {
            return Err(self.err("Trailing \\"));
        };
        self.pos += 1;
        Ok(match c {
            'd' => Escaped::Item(ClassItem::Digit(false)),
            'D' => Escaped::Item(ClassItem::Digit(true)),
            'w' => Escaped::Item(ClassItem::Word(false)),
            'W' => Escaped::Item(ClassItem::Word(true)),
            's' => Escaped::Item(ClassItem::Space(false)),
            'S' => Escaped::Item(ClassItem::Space(true)),
            'b' if in_class => Escaped::Char('\u{8}'),
            'b' => Escaped::Assert(Assert::WordBoundary(true)),
            'B' if !in_class => Escaped::Assert(Assert::WordBoundary(false)),
            'A' if !in_class => Escaped::Assert(Assert::Start),
            'z' if !in_class => Escaped::Assert(Assert::End),
            'Z' if !in_class => Escaped::Assert(Assert::EndOrNewline),
            't' => Escaped::Char('\t'),
            'n' => Escaped::Char('\n'),
            'r' => Escaped::Char('\r'),
            'f' => Escaped::Char('\u{c}'),
            'e' => Escaped::Char('\u{1b}'),
            'a' => Escaped::Char('\u{7}'),
            '0' => Escaped::Char('\0'),
            'x' => Escaped::Char(self.hex()?),
            '1'..='9' => return Err(self.err("Back-references are not supported")),
            'Q' | 'E' | 'K' | 'G' | 'p' | 'P' | 'N' | 'R' | 'X' | 'h' | 'H' | 'v' | 'V' => {
                return Err(self.err(&format!("Escape \\{c} is not supported")))
            }
            other => Escaped::Char(other),
        })
    }

    fn class(&mut self) -> Result<Node, RegexError> {
        let negated = self.eat('^');
        let mut items = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("Unmatched ["));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            self.pos += 1;
            let lo = match c {
                '[' if self.peek() == Some(':') => {
                    let rest: String = self.chars[self.pos..].iter().collect();
                    let Some(end) = rest.find(":]") else {
                        items.push(ClassItem::Range('[', '['));
                        continue;
                    };
                    let name = &rest[1..end];
                    self.pos += end + 2;
                    items.extend(
                        posix_class(name)
                            .ok_or_else(|| self.err(&format!("POSIX class [:{name}:] unknown")))?,
                    );
                    continue;
                }
                '\\' => match self.escape(true)? {
                    Escaped::Char(ch) => ch,
                    Escaped::Item(item) => {
                        items.push(item);
                        continue;
                    }
                    Escaped::Assert(_) => continue,
                },
                other => other,
            };
            // A range `lo-hi` (a `-` before `]` is a literal).
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&n| n != ']') {
                self.pos += 1;
                let hi = match self.peek() {
                    Some('\\') => {
                        self.pos += 1;
                        match self.escape(true)? {
                            Escaped::Char(ch) => ch,
                            _ => return Err(self.err("False [] range")),
                        }
                    }
                    Some(h) => {
                        self.pos += 1;
                        h
                    }
                    None => return Err(self.err("Unmatched [")),
                };
                if hi < lo {
                    return Err(self.err("Invalid [] range"));
                }
                items.push(ClassItem::Range(lo, hi));
            } else {
                items.push(ClassItem::Range(lo, lo));
            }
        }
        Ok(Node::Class(Class { items, negated }))
    }
}

enum Escaped {
    Char(char),
    Item(ClassItem),
    Assert(Assert),
}

fn posix_class(name: &str) -> Option<Vec<ClassItem>> {
    let r = |a, b| ClassItem::Range(a, b);
    Some(match name {
        "alpha" => vec![r('a', 'z'), r('A', 'Z')],
        "digit" => vec![ClassItem::Digit(false)],
        "alnum" => vec![r('a', 'z'), r('A', 'Z'), r('0', '9')],
        "upper" => vec![r('A', 'Z')],
        "lower" => vec![r('a', 'z')],
        "space" => vec![ClassItem::Space(false)],
        "word" => vec![ClassItem::Word(false)],
        "xdigit" => vec![r('0', '9'), r('a', 'f'), r('A', 'F')],
        "punct" => vec![r('!', '/'), r(':', '@'), r('[', '`'), r('{', '~')],
        "blank" => vec![r(' ', ' '), r('\t', '\t')],
        "cntrl" => vec![r('\0', '\u{1f}'), r('\u{7f}', '\u{7f}')],
        "print" => vec![r(' ', '~')],
        "graph" => vec![r('!', '~')],
        _ => return None,
    })
}

struct Compiler {
    progs: Vec<Vec<Inst>>,
    /// Instructions in all programs.
    size: usize,
    /// Nodes visited so far.
    steps: usize,
}

impl Compiler {
    fn emit(&mut self, prog: usize, inst: Inst) -> Result<usize, String> {
        if self.size >= MAX_PROGRAM {
            return Err("Regex too big".into());
        }
        self.size += 1;
        let p = &mut self.progs[prog];
        p.push(inst);
        Ok(p.len() - 1)
    }

    fn patch(&mut self, prog: usize, at: usize, inst: Inst) {
        self.progs[prog][at] = inst;
    }

    fn pc(&self, prog: usize) -> usize {
        self.progs[prog].len()
    }

    fn node(&mut self, prog: usize, n: &Node) -> Result<(), String> {
        self.steps += 1;
        if self.steps > MAX_COMPILE_STEPS {
            return Err("Regex too big".into());
        }
        match n {
            Node::Empty => {}
            Node::Char(c) => {
                self.emit(prog, Inst::Char(*c))?;
            }
            Node::Any => {
                self.emit(prog, Inst::Any)?;
            }
            Node::Class(c) => {
                self.emit(prog, Inst::Class(c.clone()))?;
            }
            Node::Assert(a) => {
                self.emit(prog, Inst::Assert(*a))?;
            }
            Node::Look(inner, neg) => {
                self.progs.push(Vec::new());
                let sub = self.progs.len() - 1;
                self.node(sub, inner)?;
                self.emit(sub, Inst::Match)?;
                self.emit(prog, Inst::Look(sub, *neg))?;
            }
            Node::Concat(items) => {
                for i in items {
                    self.node(prog, i)?;
                }
            }
            Node::Alt(arms) => {
                let mut jumps = Vec::new();
                for (k, arm) in arms.iter().enumerate() {
                    if k + 1 < arms.len() {
                        let split = self.emit(prog, Inst::Jmp(0))?;
                        self.node(prog, arm)?;
                        jumps.push(self.emit(prog, Inst::Jmp(0))?);
                        let next = self.pc(prog);
                        self.patch(prog, split, Inst::Split(split + 1, next));
                    } else {
                        self.node(prog, arm)?;
                    }
                }
                let end = self.pc(prog);
                for j in jumps {
                    self.patch(prog, j, Inst::Jmp(end));
                }
            }
            Node::Repeat(inner, min, max) => {
                for _ in 0..*min {
                    self.node(prog, inner)?;
                }
                match max {
                    None => {
                        // L: split body, end; body; jmp L
                        let split = self.emit(prog, Inst::Jmp(0))?;
                        self.node(prog, inner)?;
                        self.emit(prog, Inst::Jmp(split))?;
                        let end = self.pc(prog);
                        self.patch(prog, split, Inst::Split(split + 1, end));
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.emit(prog, Inst::Jmp(0))?);
                            self.node(prog, inner)?;
                        }
                        let end = self.pc(prog);
                        for s in splits {
                            self.patch(prog, s, Inst::Split(s + 1, end));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Regex {
    /// Compile a Perl pattern (the text between the slashes).
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        let mut p = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            pattern,
            depth: 0,
        };
        let node = p.alt()?;
        if p.pos < p.chars.len() {
            return Err(p.err("Unmatched )"));
        }
        let mut c = Compiler {
            progs: vec![Vec::new()],
            size: 0,
            steps: 0,
        };
        c.node(0, &node)
            .and_then(|_| c.emit(0, Inst::Match).map(|_| ()))
            .map_err(|reason| RegexError {
                reason,
                pattern: pattern.to_string(),
            })?;
        Ok(Regex { progs: c.progs })
    }

    /// Does the pattern match anywhere in `text`?
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        self.run(0, &chars, None, &mut HashMap::new())
    }

    /// Run program `prog` over `text`; `anchor`: only try a match starting there (lookahead).
    /// `looks` remembers the outcome of each lookahead sub-program at each position, so a
    /// lookahead is run at most once per position however many threads (or enclosing
    /// lookaheads) reach it: without it, nested lookaheads take time exponential in their
    /// depth. A lookahead still scans ahead from its position, so a pattern with one costs
    /// up to O(text length²).
    fn run(
        &self,
        prog: usize,
        text: &[char],
        anchor: Option<usize>,
        looks: &mut HashMap<(usize, usize), bool>,
    ) -> bool {
        let code = &self.progs[prog];
        let n = code.len();
        let mut clist: Vec<usize> = Vec::with_capacity(n);
        let mut nlist: Vec<usize> = Vec::with_capacity(n);
        let mut seen = vec![usize::MAX; n];
        let start = anchor.unwrap_or(0);
        for pos in start..=text.len() {
            if (anchor.is_none() || pos == start)
                && self.add(prog, text, pos, 0, &mut clist, &mut seen, looks)
            {
                return true;
            }
            if clist.is_empty() {
                if anchor.is_some() {
                    return false;
                }
                continue;
            }
            let Some(&c) = text.get(pos) else {
                break;
            };
            nlist.clear();
            for &pc in &clist {
                let ok = match &code[pc] {
                    Inst::Char(want) => *want == c,
                    Inst::Any => c != '\n',
                    Inst::Class(cls) => cls.matches(c),
                    _ => false,
                };
                if ok && self.add(prog, text, pos + 1, pc + 1, &mut nlist, &mut seen, looks) {
                    return true;
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
        }
        false
    }

    /// Add a thread at `pc` for position `pos`, following epsilon transitions; `true` if a
    /// `Match` is reached.
    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        prog: usize,
        text: &[char],
        pos: usize,
        pc: usize,
        list: &mut Vec<usize>,
        seen: &mut [usize],
        looks: &mut HashMap<(usize, usize), bool>,
    ) -> bool {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if seen[pc] == pos {
                continue;
            }
            seen[pc] = pos;
            match &self.progs[prog][pc] {
                Inst::Match => return true,
                Inst::Jmp(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Assert(a) => {
                    if assert_holds(*a, text, pos) {
                        stack.push(pc + 1);
                    }
                }
                Inst::Look(sub, neg) => {
                    let matched = match looks.get(&(*sub, pos)) {
                        Some(&m) => m,
                        None => {
                            let m = self.run(*sub, text, Some(pos), looks);
                            looks.insert((*sub, pos), m);
                            m
                        }
                    };
                    if matched != *neg {
                        stack.push(pc + 1);
                    }
                }
                Inst::Char(_) | Inst::Any | Inst::Class(_) => list.push(pc),
            }
        }
        false
    }
}

fn assert_holds(a: Assert, text: &[char], pos: usize) -> bool {
    match a {
        Assert::Start => pos == 0,
        Assert::End => pos == text.len(),
        Assert::EndOrNewline => pos == text.len() || (pos + 1 == text.len() && text[pos] == '\n'),
        Assert::WordBoundary(want) => {
            let before = pos > 0 && is_word(text[pos - 1]);
            let after = text.get(pos).is_some_and(|&c| is_word(c));
            (before != after) == want
        }
    }
}

thread_local! {
    static CACHE: RefCell<HashMap<String, Rc<Regex>>> = RefCell::new(HashMap::new());
}

/// Match `text` against `pattern`, compiling it once per thread (a small cache).
pub fn is_match(pattern: &str, text: &str) -> Result<bool, RegexError> {
    let cached = CACHE.with(|c| c.borrow().get(pattern).cloned());
    let re = match cached {
        Some(re) => re,
        None => {
            let re = Rc::new(Regex::new(pattern)?);
            CACHE.with(|c| {
                let mut c = c.borrow_mut();
                if c.len() >= 256 {
                    c.clear();
                }
                c.insert(pattern.to_string(), re.clone());
            });
            re
        }
    };
    Ok(re.is_match(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Regex::new(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .is_match(t)
    }

    #[test]
    fn basics() {
        assert!(m("abc", "xxabcxx"));
        assert!(!m("abd", "xxabcxx"));
        assert!(m("^ab", "abc"));
        assert!(!m("^bc", "abc"));
        assert!(m("bc$", "abc"));
        assert!(m("bc$", "abc\n"));
        assert!(!m("bc\\z", "abc\n"));
        assert!(m("a.c", "abc"));
        assert!(!m("a.c", "a\nc"));
        assert!(m("", "anything"));
        assert!(m("^$", ""));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(m("^\\d+$", "12345"));
        assert!(!m("^\\d+$", "12a45"));
        assert!(m("^[a-c]+$", "abcabc"));
        assert!(!m("^[^a-c]+$", "xyzb"));
        assert!(m("^[\\w.-]+@[\\w.-]+$", "jc.admin@example.org"));
        assert!(m("\\s", "a b"));
        assert!(m("^[[:upper:]][[:lower:]]+$", "Hello"));
        assert!(m("\\bfoo\\b", "a foo b"));
        assert!(!m("\\bfoo\\b", "afoob"));
        assert!(m("a\\.b", "a.b"));
        assert!(!m("a\\.b", "axb"));
        assert!(m("\\x41", "A"));
        assert!(m("[]x]", "]"));
        assert!(m("^[a-]+$", "a-a"));
        assert!(m("é", "café"));
        // Perl: a `-` right after a range may start a range of its own (`-`..`a`), where
        // Rust's regex reads `--` as set difference (found by fuzz target regex_diff).
        for (text, hit) in [
            ("_", true),
            (".", true),
            ("-", true),
            ("m", true),
            ("b", false),
        ] {
            assert_eq!(m("^[l-v--a]$", text), hit, "{text}");
        }
    }

    #[test]
    fn groups_alternation_quantifiers() {
        assert!(m("^(foo|bar)+$", "foobarfoo"));
        assert!(!m("^(foo|bar)+$", "foobaz"));
        assert!(m("^a{2,3}$", "aaa"));
        assert!(!m("^a{2,3}$", "aaaa"));
        assert!(m("^a{2}$", "aa"));
        assert!(m("^a{2,}$", "aaaaa"));
        assert!(m("^x{a$", "x{a"));
        assert!(m("^(?:ab)*?c$", "ababc"));
        assert!(m("^(a*)*$", "aaaa"));
        assert!(!m("^(a|aa)*b$", &"a".repeat(5000)));
        assert!(m("colou?r", "color"));
    }

    #[test]
    fn lookahead() {
        assert!(m("foo(?=bar)", "foobar"));
        assert!(!m("foo(?=bar)", "foobaz"));
        assert!(m("foo(?!bar)", "foobaz"));
        assert!(m("^(?=.*\\d)(?=.*[a-z]).{6,}$", "abc123"));
        assert!(!m("^(?=.*\\d)(?=.*[a-z]).{6,}$", "abcdef"));
    }

    #[test]
    fn errors() {
        assert!(Regex::new("(ab").is_err());
        assert!(Regex::new("ab)").is_err());
        assert!(Regex::new("*a").is_err());
        assert!(Regex::new("(a)\\1").is_err());
        assert!(Regex::new("[a").is_err());
        assert!(Regex::new("(?<=a)b").is_err());
        assert!(Regex::new("a{3,1}").is_err());
        assert!(Regex::new("(a{1000}){1000}").is_err());
    }

    // Found by fuzzing (fuzz/, docs/fuzzing.md): these used to overflow the stack, hang or
    // exhaust memory.

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}a{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = Regex::new(&deep).unwrap_err();
        assert!(e.reason.contains("nested"), "{e}");
        let lookahead = format!("{}a{}", "(?=".repeat(100_000), ")".repeat(100_000));
        assert!(Regex::new(&lookahead).is_err());
        let ok = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(m(&ok, "xa"));
    }

    #[test]
    fn empty_repeats_compile_in_bounded_time() {
        let t = std::time::Instant::now();
        // Nothing is emitted, but the compiler used to loop 4 294 967 295 (or 65535²) times.
        assert!(Regex::new("(?:){4294967295}").is_err());
        assert!(Regex::new("((?:){65535}){65535}").is_err());
        assert!(Regex::new("(?:){1000}").is_ok());
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn lookahead_programs_count_towards_the_size_limit() {
        // Each repetition used to copy the lookahead into a new sub-program of its own
        // (the size limit was per program): about 5 * 10^9 instructions.
        let t = std::time::Instant::now();
        assert!(Regex::new("(x(?=a{99999})){99999}").is_err());
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn nested_lookaheads_run_in_polynomial_time() {
        // Each lookahead level re-ran the inner one from every position it reached:
        // time exponential in the nesting depth.
        let p = "^(?:(?=(?:(?=(?:(?=(?:(?=.*b).)*a).)*a).)*a).)*$";
        let text = "a".repeat(2000);
        let t = std::time::Instant::now();
        assert!(m(p, &text));
        assert!(!m(p, &format!("{text}b")));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
    }
}
