//! Differential test of the Perl-dialect regex engine (`jobcenter_engine::eval::regex`)
//! against `fancy-regex` on their common subset, plus robustness on raw patterns.
//!
//! Generated patterns use literals, `.`, classes (ranges, negation, `\d \w \s` and their
//! negations), quantifiers (greedy and lazy `* + ? {n} {n,} {n,m}`), anchors (`^ $ \A \z
//! \Z \b \B`), groups, alternation and lookahead, over ASCII texts, where both engines
//! agree on the meaning. Perl's `$`/`\Z` (end, or before a final newline) is written as
//! `(?=\n?\z)` for fancy-regex. Inputs either engine rejects (including fancy-regex's
//! backtrack limit) are skipped. Only match/no-match is compared: the JCL engine answers
//! `expr ~ /re/` and has no API for match spans.
//!
//! Raw mode compiles an arbitrary pattern and matches an arbitrary text: no panic, no hang,
//! no blow-up.
#![no_main]

use arbitrary::Arbitrary;
use jobcenter_engine::eval::regex::Regex;
use libfuzzer_sys::fuzz_target;

/// Characters of generated literals and texts.
const ALPHABET: &[u8] = b"ab-c\n _.0x";

#[derive(Arbitrary, Debug)]
enum Node {
    Lit(u8),
    Dot,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
    Perl(u8),
    Start,
    End,
    AbsStart,
    AbsEnd,
    EndNl,
    WordB(bool),
    Group(Box<Node>),
    Look(Box<Node>, bool),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Rep(Box<Node>, Quant, bool),
}

#[derive(Arbitrary, Debug)]
enum ClassItem {
    Lit(u8),
    Range(u8, u8),
    Perl(u8),
}

#[derive(Arbitrary, Debug)]
enum Quant {
    Star,
    Plus,
    Opt,
    Exact(u8),
    AtLeast(u8),
    Between(u8, u8),
}

#[derive(Arbitrary, Debug)]
enum Input {
    Generated { re: Node, text: Vec<u8> },
    Raw { pattern: String, text: String },
}

fn lit(b: u8) -> char {
    ALPHABET[b as usize % ALPHABET.len()] as char
}

fn push_lit(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        c if c.is_ascii_alphanumeric() || c == '_' || c == ' ' || c == '-' => out.push(c),
        c => {
            out.push('\\');
            out.push(c);
        }
    }
}

fn perl_class(b: u8) -> &'static str {
    ["\\d", "\\w", "\\s", "\\D", "\\W", "\\S"][b as usize % 6]
}

/// Render the pattern for our engine (`perl`) and for fancy-regex (`fancy`).
fn render(n: &Node, depth: u32, perl: &mut String, fancy: &mut String) {
    if depth > 12 {
        return;
    }
    let both = |p: &mut String, f: &mut String, s: &str| {
        p.push_str(s);
        f.push_str(s);
    };
    match n {
        Node::Lit(b) => {
            let mut s = String::new();
            push_lit(&mut s, lit(*b));
            both(perl, fancy, &s);
        }
        Node::Dot => both(perl, fancy, "."),
        Node::Class { negated, items } => {
            let mut s = String::from("[");
            if *negated {
                s.push('^');
            }
            if items.is_empty() {
                s.push('a');
            }
            for it in items.iter().take(6) {
                match it {
                    // `-` escaped: `--` in a class is set difference to fancy-regex (and
                    // a range in Perl: `[l-v--a]` holds `-`..`a`), outside the common subset.
                    ClassItem::Lit(b) if lit(*b) == '-' => s.push_str("\\-"),
                    ClassItem::Lit(b) => push_lit(&mut s, lit(*b)),
                    ClassItem::Range(a, b) => {
                        let (a, b) = (b'a' + a % 26, b'a' + b % 26);
                        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                        s.push(lo as char);
                        s.push('-');
                        s.push(hi as char);
                    }
                    ClassItem::Perl(b) => s.push_str(perl_class(*b)),
                }
            }
            s.push(']');
            both(perl, fancy, &s);
        }
        Node::Perl(b) => both(perl, fancy, perl_class(*b)),
        Node::Start => both(perl, fancy, "^"),
        Node::End => {
            perl.push('$');
            fancy.push_str("(?=\\n?\\z)");
        }
        Node::AbsStart => both(perl, fancy, "\\A"),
        Node::AbsEnd => both(perl, fancy, "\\z"),
        Node::EndNl => {
            perl.push_str("\\Z");
            fancy.push_str("(?=\\n?\\z)");
        }
        Node::WordB(true) => both(perl, fancy, "\\b"),
        Node::WordB(false) => both(perl, fancy, "\\B"),
        Node::Group(inner) => {
            both(perl, fancy, "(");
            render(inner, depth + 1, perl, fancy);
            both(perl, fancy, ")");
        }
        Node::Look(inner, neg) => {
            both(perl, fancy, if *neg { "(?!" } else { "(?=" });
            render(inner, depth + 1, perl, fancy);
            both(perl, fancy, ")");
        }
        Node::Concat(items) => {
            for i in items.iter().take(8) {
                render(i, depth + 1, perl, fancy);
            }
        }
        Node::Alt(arms) => {
            both(perl, fancy, "(?:");
            for (k, a) in arms.iter().take(5).enumerate() {
                if k > 0 {
                    both(perl, fancy, "|");
                }
                render(a, depth + 1, perl, fancy);
            }
            both(perl, fancy, ")");
        }
        Node::Rep(inner, q, lazy) => {
            // Always a group as the operand: no precedence or nested-quantifier questions.
            both(perl, fancy, "(?:");
            render(inner, depth + 1, perl, fancy);
            both(perl, fancy, ")");
            let q = match q {
                Quant::Star => "*".to_string(),
                Quant::Plus => "+".to_string(),
                Quant::Opt => "?".to_string(),
                Quant::Exact(n) => format!("{{{}}}", n % 6),
                Quant::AtLeast(n) => format!("{{{},}}", n % 6),
                Quant::Between(a, b) => {
                    let (a, b) = (a % 6, b % 6);
                    format!("{{{},{}}}", a.min(b), a.max(b))
                }
            };
            both(perl, fancy, &q);
            if *lazy {
                both(perl, fancy, "?");
            }
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw { pattern, text } => {
            if let Ok(re) = Regex::new(&pattern) {
                let _ = re.is_match(&text);
            }
        }
        Input::Generated { re, text } => {
            let text: String = text.iter().take(64).map(|&b| lit(b)).collect();
            let (mut perl, mut fancy) = (String::new(), String::new());
            render(&re, 0, &mut perl, &mut fancy);
            let Ok(ours) = Regex::new(&perl) else {
                return;
            };
            let Ok(theirs) = fancy_regex::Regex::new(&fancy) else {
                return;
            };
            let Ok(expected) = theirs.is_match(&text) else {
                return;
            };
            assert_eq!(
                ours.is_match(&text),
                expected,
                "pattern /{perl}/ (fancy-regex: /{fancy}/) on {text:?}"
            );
        }
    }
});
