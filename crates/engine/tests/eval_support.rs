//! Test support for the evaluator tests: a tiny parser for JCL expressions and assignment
//! lines (test-only, so the evaluator tests do not depend on the real parser), plus helpers.
#![allow(dead_code)]

use jobcenter_engine::syntax::ast::*;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(Literal),
    Str(String),
    Word(String),
    Op(&'static str),
    Index(i64),
}

const OPS: &[&str] = &[
    "**", "<=", ">=", "==", "!=", "&&", "||", "//", "*", "/", "%", "+", "-", ".", "<", ">", "!",
    "(", ")", ",", ":",
];

fn lex(src: &str) -> Vec<Tok> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c == ' ' {
            i += 1;
        } else if c == '.' && ((i > 0 && b[i - 1] == ' ') || b.get(i + 1) == Some(&' ')) {
            out.push(Tok::Op(" . "));
            i += 1;
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == '\\' && i + 1 < b.len() && (b[i + 1] == c || b[i + 1] == '\\') {
                    if b[i + 1] == '\\' {
                        s.push('\\');
                    } else {
                        s.push('\\');
                        s.push(c);
                    }
                    i += 2;
                    continue;
                }
                s.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if c == '[' {
            let mut j = i + 1;
            while b[j] != ']' {
                j += 1;
            }
            let n: String = b[i + 1..j].iter().collect();
            out.push(Tok::Index(n.parse().unwrap()));
            i = j + 1;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_digit()
                    || (b[j] == '.' && j + 1 < b.len() && b[j + 1].is_ascii_digit()))
            {
                j += 1;
            }
            let t: String = b[i..j].iter().collect();
            out.push(Tok::Num(if t.contains('.') {
                Literal::Float(t.parse().unwrap())
            } else if let Ok(v) = t.parse::<i64>() {
                Literal::Int(v)
            } else {
                Literal::UInt(t.parse().unwrap())
            }));
            i = j;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
                j += 1;
            }
            out.push(Tok::Word(b[i..j].iter().collect()));
            i = j;
        } else {
            let rest: String = b[i..].iter().collect();
            let op = OPS
                .iter()
                .find(|o| rest.starts_with(**o))
                .unwrap_or_else(|| panic!("bad char {c} in {src}"));
            out.push(Tok::Op(op));
            i += op.chars().count();
        }
    }
    out
}

struct P {
    t: Vec<Tok>,
    i: usize,
}

fn e(kind: ExprKind) -> Expr {
    Expr { line: 1, kind }
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.t.get(self.i).cloned();
        self.i += 1;
        t
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if self.peek()
            == Some(&Tok::Op(match OPS.iter().find(|o| **o == op) {
                Some(o) => o,
                None => return false,
            }))
        {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn binop(&self) -> Option<BinOp> {
        Some(match self.peek()? {
            Tok::Op(o) => match *o {
                "**" => BinOp::Pow,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "%" => BinOp::Mod,
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "." | " . " => BinOp::Concat,
                "<" => BinOp::NumLt,
                ">" => BinOp::NumGt,
                "<=" => BinOp::NumLe,
                ">=" => BinOp::NumGe,
                "==" => BinOp::NumEq,
                "!=" => BinOp::NumNe,
                "&&" => BinOp::And,
                "||" => BinOp::Or,
                "//" => BinOp::DefinedOr,
                _ => return None,
            },
            Tok::Word(w) => match w.as_str() {
                "x" => BinOp::Repeat,
                "lt" => BinOp::StrLt,
                "gt" => BinOp::StrGt,
                "le" => BinOp::StrLe,
                "ge" => BinOp::StrGe,
                "eq" => BinOp::StrEq,
                "ne" => BinOp::StrNe,
                "and" => BinOp::LowAnd,
                "or" => BinOp::LowOr,
                "xor" => BinOp::Xor,
                _ => return None,
            },
            _ => return None,
        })
    }
    fn expr(&mut self, max: u8) -> Expr {
        let mut lhs = if max >= 10 && self.peek() == Some(&Tok::Word("not".into())) {
            self.i += 1;
            let x = self.expr(10);
            e(ExprKind::Unary(UnOp::LowNot, Box::new(x)))
        } else {
            self.unary()
        };
        while let Some(op) = self.binop() {
            let lvl = op.level();
            if lvl > max || op == BinOp::Pow {
                break;
            }
            self.i += 1;
            let rhs = self.expr(lvl - 1);
            lhs = e(ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)));
        }
        lhs
    }
    fn unary(&mut self) -> Expr {
        for (sp, op) in [("!", UnOp::Not), ("-", UnOp::Neg), ("+", UnOp::Plus)] {
            if self.eat_op(sp) {
                let x = self.unary();
                return e(ExprKind::Unary(op, Box::new(x)));
            }
        }
        let base = self.primary();
        if self.eat_op("**") {
            let rhs = self.unary();
            return e(ExprKind::Binary(BinOp::Pow, Box::new(base), Box::new(rhs)));
        }
        base
    }
    fn parts(&mut self) -> Vec<PathPart> {
        let mut parts = Vec::new();
        loop {
            let name = match self.next() {
                Some(Tok::Word(w)) => w,
                Some(Tok::Str(s)) => s,
                Some(Tok::Num(Literal::Int(n))) => n.to_string(),
                t => panic!("bad path part {t:?}"),
            };
            let index = match self.peek() {
                Some(Tok::Index(n)) => {
                    let n = *n;
                    self.i += 1;
                    Some(n)
                }
                _ => None,
            };
            parts.push(PathPart { name, index });
            // A '.' without blanks continues the path (`a.x.'y'` is a field access);
            // concatenation is written with blanks (` . `), as in JCL.
            if self.peek() == Some(&Tok::Op("."))
                && matches!(self.t.get(self.i + 1), Some(Tok::Word(_) | Tok::Str(_)))
            {
                self.i += 1;
                continue;
            }
            break;
        }
        parts
    }
    fn primary(&mut self) -> Expr {
        match self.next() {
            Some(Tok::Num(l)) => e(ExprKind::Lit(l)),
            Some(Tok::Str(s)) => e(ExprKind::Lit(Literal::Str(s))),
            Some(Tok::Op("(")) => {
                let x = self.expr(12);
                assert!(self.eat_op(")"), "missing )");
                x
            }
            Some(Tok::Word(w)) => match w.as_str() {
                "true" | "TRUE" => e(ExprKind::Lit(Literal::Bool(true))),
                "false" | "FALSE" => e(ExprKind::Lit(Literal::Bool(false))),
                "null" | "NULL" => e(ExprKind::Lit(Literal::Null)),
                _ if self.peek() == Some(&Tok::Op("(")) => {
                    self.i += 1;
                    let f = Func::from_name(&w).unwrap_or_else(|| panic!("unknown function {w}"));
                    let mut args = vec![self.expr(12)];
                    while self.eat_op(",") || self.eat_op(":") {
                        args.push(self.expr(12));
                    }
                    assert!(self.eat_op(")"), "missing ) after args");
                    e(ExprKind::Call(f, args))
                }
                _ if w.len() == 1 && self.eat_op(".") => {
                    let obj = Obj::from_letter(w.chars().next().unwrap()).expect("object letter");
                    e(ExprKind::Var(Var {
                        obj,
                        path: self.parts(),
                    }))
                }
                _ => panic!("unexpected word {w}"),
            },
            t => panic!("unexpected token {t:?}"),
        }
    }
}

/// Parse a JCL expression (test subset: no regex, no `fromjson(x).y`).
pub fn expr(src: &str) -> Expr {
    let mut p = P { t: lex(src), i: 0 };
    let x = p.expr(12);
    assert!(p.i >= p.t.len(), "trailing tokens in {src:?} at {}", p.i);
    x
}

/// Parse a variable path `X.a.b[1]` as an assignment target with the default-target rule of
/// docs/JCL.md §1.5 for `kind`.
pub fn place(src: &str, kind: MapKind) -> Var {
    let mut p = P { t: lex(src), i: 0 };
    let parts = p.parts();
    if parts.len() > 1 && parts[0].name.len() == 1 && parts[0].index.is_none() {
        let obj = Obj::from_letter(parts[0].name.chars().next().unwrap()).expect("object letter");
        Var {
            obj,
            path: parts[1..].to_vec(),
        }
    } else {
        Var {
            obj: kind.default_target(),
            path: parts,
        }
    }
}

/// Parse a map: one item per line (`lhs op rhs`, `<*>`, `<a,b>`, `x = ifdef(...)`).
pub fn map(kind: MapKind, src: &str) -> Map {
    let mut items = Vec::new();
    for (n, line) in src
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let line_no = n as u32 + 1;
        if let Some(inner) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) {
            let names = if inner == "*" {
                None
            } else {
                Some(inner.split(',').map(String::from).collect())
            };
            items.push(MapItem::Magic(Magic {
                line: line_no,
                names,
            }));
            continue;
        }
        let ops = [
            ("//=", AssignOp::DefinedOr),
            ("||=", AssignOp::Or),
            (".=", AssignOp::Concat),
            (",=", AssignOp::Push),
            ("+=", AssignOp::Add),
            ("-=", AssignOp::Sub),
            ("*=", AssignOp::Mul),
            ("/=", AssignOp::Div),
            ("=", AssignOp::Assign),
        ];
        let (pos, spelling, op) = ops
            .iter()
            .filter_map(|(s, op)| line.find(&format!(" {s} ")).map(|p| (p, *s, *op)))
            .min_by_key(|(p, _, _)| *p)
            .unwrap_or_else(|| panic!("no assignment operator in {line}"));
        let lhs = &line[..pos];
        let mut rhs = line[pos + spelling.len() + 2..].trim();
        let mut ifdef = false;
        if let Some(inner) = rhs.strip_prefix("ifdef(").and_then(|r| r.strip_suffix(')')) {
            ifdef = true;
            rhs = inner;
        }
        items.push(MapItem::Assign(Assignment {
            line: line_no,
            target: place(lhs, kind),
            op,
            ifdef,
            value: expr(rhs),
        }));
    }
    Map {
        line: 1,
        kind,
        body: MapBody::Items(items),
    }
}

/// A JSON object from JSON text.
pub fn obj(json: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str(json).unwrap() {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// Numbers compare by value (`4.0` ≡ `4`), recursively.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| same(p, q)))
        }
        _ => a == b,
    }
}

/// Assert value equality with numbers compared by value.
#[track_caller]
pub fn assert_same(actual: &Value, expected: &Value) {
    assert!(
        same(actual, expected),
        "\n  actual: {actual}\nexpected: {expected}"
    );
}
