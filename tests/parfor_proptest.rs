//! Random float inputs, worker counts and chunk sizes: `#[parfor]` float reductions are
//! bit-identical on every engine and worker count for a given chunk size.

mod common;

use parfor::{Engine, parfor};
use proptest::prelude::*;

#[parfor(engine = engine, workers = workers, chunk = chunk)]
fn reduce(engine: Engine, workers: usize, chunk: usize, xs: &[f64]) -> [u64; 4] {
    let mut sum = 0.0;
    let mut prod = 1.0;
    let mut hi = f64::MIN;
    let mut alt = 0.0;
    #[parfor]
    for (i, x) in xs.iter().enumerate() {
        sum += x;
        prod *= 1.0 + x * 1e-3;
        hi = hi.max(x.sin());
        if i % 2 == 0 {
            alt -= x * x;
        }
    }
    [sum.to_bits(), prod.to_bits(), hi.to_bits(), alt.to_bits()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn float_reductions_do_not_depend_on_engine_or_workers(
        xs in proptest::collection::vec(-1e6f64..1e6, 0..600),
        chunk in 1usize..80,
        workers in 1usize..9,
    ) {
        let expected = reduce(Engine::Serial, 1, chunk, &xs);
        for &engine in common::ENGINES {
            for w in common::WORKERS.iter().copied().chain([workers]) {
                prop_assert_eq!(reduce(engine, w, chunk, &xs), expected, "{} with {} workers", engine, w);
            }
        }
    }
}
