//! The parser and compiler never panic on malformed input: every fixture is mutated many
//! times (deterministic pseudo-random byte edits, truncations, line shuffles) and compiled;
//! the result must be a definition or a list of `file:line: message` errors with lines
//! inside the source.

use jobcenter_engine::compile::{Catalog, Stage};
use std::path::PathBuf;

/// A small deterministic xorshift generator (no external crates needed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const PIECES: [&str; 24] = [
    " ", "\t", "\n", ":", "[[", "]]", "#", "#[[", "#]]", "'", "\"", "\\", "(", ")", ".", "<*>",
    "-", "**", "~ /", "ifdef(", "é", "0x", "[-1]", "\r\n",
];

fn mutate(src: &str, rng: &mut Rng) -> String {
    let mut s: Vec<char> = src.chars().collect();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !s.is_empty() => {
                let i = rng.below(s.len());
                s.remove(i);
            }
            1 => {
                let i = rng.below(s.len() + 1);
                let p = PIECES[rng.below(PIECES.len())];
                for (k, c) in p.chars().enumerate() {
                    s.insert(i + k, c);
                }
            }
            2 => {
                let n = rng.below(s.len() + 1);
                s.truncate(n);
            }
            3 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = PIECES[rng.below(PIECES.len())]
                    .chars()
                    .next()
                    .unwrap_or(' ');
            }
            _ => {
                let mut lines: Vec<String> = s
                    .iter()
                    .collect::<String>()
                    .lines()
                    .map(String::from)
                    .collect();
                if lines.len() > 2 {
                    let a = rng.below(lines.len());
                    let b = rng.below(lines.len());
                    lines.swap(a, b);
                }
                s = lines.join("\n").chars().collect();
            }
        }
    }
    s.into_iter().collect()
}

#[test]
fn mutated_sources_never_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jcl");
    let mut sources = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "wf" || ext == "ac" {
            sources.push(std::fs::read_to_string(&p).unwrap());
        }
    }
    sources.sort();
    let mut cat = Catalog::with_stage(Stage::C);
    cat.register_locktype("slot");
    assert!(cat.load_dir(&dir).loaded.len() > 40);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut rejected = 0;
    let rounds = 60;
    for src in &sources {
        for _ in 0..rounds {
            let m = mutate(src, &mut rng);
            let max_line = m.lines().count().max(1) as u32 + 1;
            let mut c = cat.clone();
            match c.compile("m.wf", &m) {
                Ok(_) => {}
                Err(errs) => {
                    rejected += 1;
                    assert!(!errs.is_empty());
                    for e in errs {
                        assert!(
                            e.line <= max_line,
                            "line {} of {max_line}: {e}\n{m}",
                            e.line
                        );
                        assert!(!e.message.is_empty());
                    }
                }
            }
        }
    }
    // Most mutations break something; the test must actually exercise the error paths.
    assert!(rejected > sources.len() * rounds / 3, "{rejected}");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let head = "workflow t:\nin:\n    x number\ndo:\n    let:\n        y = ";
    let parse = |src: &str| jobcenter_engine::parse("t.wf", src);
    // Realistic depth works (this runs on a 2 MiB test thread in debug builds).
    let ok = format!("{head}{}1{}\n", "(".repeat(40), ")".repeat(40));
    assert!(parse(&ok).is_ok());
    let ok = format!("{head}{}1\n", "!".repeat(40));
    assert!(parse(&ok).is_ok());
    for bad in [
        format!("{head}{}1{}\n", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{head}{}1\n", "!".repeat(10_000)),
        format!("{head}{}1\n", "not ".repeat(10_000)),
        format!(
            "{head}{}1{}\n",
            "tostring(".repeat(10_000),
            ")".repeat(10_000)
        ),
        format!("{head}{}\n", "2 ** ".repeat(10_000) + "2"),
    ] {
        let e = parse(&bad).unwrap_err();
        assert!(
            e[0].message.starts_with("expression nested deeper than"),
            "{}",
            e[0].message
        );
        assert_eq!(e[0].line, 6);
    }
    let mut deep = String::from("workflow t:\nin:\n    x number\ndo:\n");
    for i in 0..200 {
        deep.push_str(&format!("{}if a.x:\n", " ".repeat(4 * (i + 1))));
    }
    deep.push_str(&format!("{}return\n", " ".repeat(4 * 201)));
    let e = parse(&deep).unwrap_err();
    assert!(
        e[0].message.starts_with("blocks nested deeper than"),
        "{}",
        e[0].message
    );
    let mut ok = String::from("workflow t:\nin:\n    x number\ndo:\n");
    for i in 0..30 {
        ok.push_str(&format!("{}while a.x:\n", " ".repeat(4 * (i + 1))));
    }
    ok.push_str(&format!("{}return\n", " ".repeat(4 * 31)));
    let mut cat = Catalog::new();
    cat.compile("t.wf", &ok).unwrap();
}
