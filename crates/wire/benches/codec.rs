//! Netstring codec throughput: encode + decode of ~100 B and ~10 KB payloads, and classification.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use jobcenter_wire::{classify, classify_value, encode_frame, NetstringCodec, CLIENT_MAX_FRAME};
use std::hint::black_box;
use std::time::Duration;
use tokio_util::codec::Decoder;

fn payload(size: usize) -> Vec<u8> {
    let head = br#"{"jsonrpc":"2.0","method":"job_done","params":{"job_id":4711,"outargs":{"s":""#;
    let tail = br#""}}}"#;
    let fill = size.saturating_sub(head.len() + tail.len());
    let mut p = Vec::with_capacity(size);
    p.extend_from_slice(head);
    p.resize(head.len() + fill, b'x');
    p.extend_from_slice(tail);
    p
}

fn bench_codec(c: &mut Criterion) {
    const FRAMES: usize = 64;
    for (name, size) in [("100B", 100usize), ("10KB", 10 * 1024)] {
        let p = payload(size);
        let mut g = c.benchmark_group(format!("netstring_{name}"));
        g.throughput(Throughput::Elements(FRAMES as u64));
        g.measurement_time(Duration::from_secs(3));
        g.bench_function("encode+decode x64", |b| {
            let mut codec = NetstringCodec::new(CLIENT_MAX_FRAME);
            let mut buf = BytesMut::with_capacity(FRAMES * (size + 16));
            b.iter(|| {
                for _ in 0..FRAMES {
                    encode_frame(black_box(&p), &mut buf);
                }
                let mut n = 0;
                while let Ok(Some(f)) = codec.decode(&mut buf) {
                    n += f.len();
                }
                black_box(n)
            })
        });
        g.bench_function("classify x64", |b| {
            b.iter_batched(
                || p.clone(),
                |p| {
                    for _ in 0..FRAMES {
                        let _ = black_box(classify(black_box(&p)));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.bench_function("decode Value + classify_value x64", |b| {
            b.iter_batched(
                || p.clone(),
                |p| {
                    for _ in 0..FRAMES {
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(black_box(&p)) {
                            let _ = black_box(classify_value(v));
                        }
                    }
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench_codec);
criterion_main!(benches);
