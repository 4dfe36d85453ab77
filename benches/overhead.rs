//! Micro-benchmarks of what parfor adds per call and per item on each engine: an empty-ish
//! call (one item) and many trivial items.
//!
//! ```text
//! cargo bench -p parfor-bench --bench overhead
//! ```

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parfor::{Engine, parmap};
use std::hint::black_box;

fn engines() -> Vec<Engine> {
    if cfg!(unix) { Engine::ALL.to_vec() } else { vec![Engine::Serial, Engine::Threads] }
}

fn per_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("per_call");
    for engine in engines() {
        g.bench_with_input(BenchmarkId::from_parameter(engine), &engine, |b, &engine| {
            b.iter(|| parmap!(|i: usize| black_box(i) + 1, 0..1usize; engine = engine));
        });
    }
    g.finish();
}

fn per_item(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut g = c.benchmark_group("per_item");
    g.throughput(Throughput::Elements(N as u64));
    for engine in engines() {
        g.bench_with_input(BenchmarkId::from_parameter(engine), &engine, |b, &engine| {
            b.iter(|| parmap!(|i: usize| black_box(i) ^ 1, 0..N; engine = engine));
        });
    }
    g.bench_function("rayon", |b| {
        use rayon::prelude::*;
        b.iter(|| (0..N).into_par_iter().map(|i| black_box(i) ^ 1).collect::<Vec<_>>());
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = per_call, per_item
}
criterion_main!(benches);
