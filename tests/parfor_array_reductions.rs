//! Array reductions (`hist[bin] += 1`): every engine and worker count gives the plain loop's
//! integers exactly and the same float bits, with at most `ARRAY_REDUCTION_BLOCKS` partial
//! copies of the array.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{ENGINES, WORKERS};
use parfor::{Engine, parfor};

fn sample(i: u64) -> u64 {
    // splitmix64
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[parfor(engine = engine, workers = workers)]
fn histogram(
    engine: Engine,
    workers: usize,
    n: u64,
    bins: usize,
) -> (Vec<u64>, Vec<f64>, Vec<i32>, Vec<u64>) {
    let mut counts = vec![0u64; bins];
    let mut weights = vec![0.0f64; bins];
    let mut lows = vec![i32::MAX; bins];
    let mut down = vec![1000u64 * n; bins];
    #[parfor]
    for i in 0..n {
        let s = sample(i);
        let bin = (s % bins as u64) as usize;
        counts[bin] += 1;
        weights[bin] += (s >> 11) as f64 / (1u64 << 53) as f64;
        lows[bin] = lows[bin].min((s >> 40) as i32);
        down[bin] -= 3;
    }
    (counts, weights, lows, down)
}

fn plain(n: u64, bins: usize) -> (Vec<u64>, Vec<i32>, Vec<u64>) {
    let mut counts = vec![0u64; bins];
    let mut lows = vec![i32::MAX; bins];
    let mut down = vec![1000u64 * n; bins];
    for i in 0..n {
        let s = sample(i);
        let bin = (s % bins as u64) as usize;
        counts[bin] += 1;
        lows[bin] = lows[bin].min((s >> 40) as i32);
        down[bin] -= 3;
    }
    (counts, lows, down)
}

#[test]
fn histograms_equal_the_plain_loop_on_every_engine() {
    for (n, bins) in [(0, 3), (1, 3), (10_000, 100), (3_001, 1)] {
        let (counts, lows, down) = plain(n, bins);
        let (_, reference, _, _) = histogram(Engine::Serial, 1, n, bins);
        for &e in ENGINES {
            for &w in WORKERS {
                let (c, f, l, d) = histogram(e, w, n, bins);
                assert_eq!(c, counts, "{e:?} x{w} n={n}");
                assert_eq!(l, lows, "{e:?} x{w} n={n}");
                assert_eq!(d, down, "{e:?} x{w} n={n}");
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&f), bits(&reference), "{e:?} x{w} n={n}");
                assert_eq!(c.iter().sum::<u64>(), n);
            }
        }
    }
}

#[parfor(engine = engine)]
fn into_slice(engine: Engine, keys: &[usize], hist: &mut [u32]) {
    #[parfor]
    for (i, k) in keys.iter().enumerate() {
        hist[*k] += i as u32 % 3;
    }
}

#[test]
fn a_slice_parameter_and_an_enumerate_loop() {
    let keys: Vec<usize> = (0..997).map(|i| (i * 7) % 13).collect();
    let mut want = vec![5u32; 13];
    for (i, k) in keys.iter().enumerate() {
        want[*k] += i as u32 % 3;
    }
    for &e in ENGINES {
        let mut hist = vec![5u32; 13];
        into_slice(e, &keys, &mut hist);
        assert_eq!(hist, want, "{e:?}");
    }
}

#[test]
fn an_index_out_of_bounds_panics_like_indexing() {
    for &e in ENGINES {
        let keys = [0usize, 1, 13];
        let mut hist = vec![0u32; 13];
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            into_slice(e, &keys, &mut hist);
        }))
        .expect_err("index 13 is out of bounds");
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains("the len is 13 but the index is 13"), "{e:?}: {msg}");
    }
}
