//! Benchmark of the expression evaluator: one typical `let` map per iteration.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use jobcenter_engine::eval::maps::{run_condition, run_let};
use serde_json::{json, Map, Value};
use std::hint::black_box;

#[path = "../tests/eval_support.rs"]
mod eval_support;

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn bench_let(c: &mut Criterion) {
    // Seven assignments mixing arithmetic, strings, comparisons, functions and nesting.
    let m = eval_support::map(
        jobcenter_engine::syntax::ast::MapKind::Let,
        r#"i += 1
        total = v.total + a.n * 2
        r .= ',' . v.i
        ok = v.i < a.n && defined(v.r)
        t.half = v.total / 2
        v.stats.last = object("i": v.i, "half": t.half)
        name = tostring(a.s) . '-' . v.i"#,
    );
    let a = object(json!({"n": 10, "s": "job"}));
    let e = object(json!({"client": "bench"}));
    let v = object(json!({"i": 3, "total": 100, "r": "one,two", "stats": {}}));
    let mut group = c.benchmark_group("eval");
    group.throughput(Throughput::Elements(1));
    group.bench_function("let_map_7_assignments", |b| {
        b.iter(|| {
            let out = run_let(black_box(&m), &a, &e, black_box(&v), None);
            black_box(out).ok()
        })
    });
    // A loop condition: no variables change, so nothing is copied.
    let cond =
        jobcenter_engine::syntax::ast::Code::Expr(eval_support::expr("v.i < a.n && defined(v.r)"));
    group.bench_function("condition", |b| {
        b.iter(|| {
            let out = run_condition(black_box(&cond), &a, &e, black_box(&v));
            black_box(out).ok()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_let);
criterion_main!(benches);
