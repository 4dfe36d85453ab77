//! `progress = true` on both macros: accepted on every engine and changes no result (the bar
//! itself is drawn only when stderr is a terminal, which it is not under the test harness;
//! its counting is unit-tested in the runtime).

mod common;

use parfor::{Engine, parfor, parmap};

#[parfor]
fn squares_and_sum(n: u64, engine: Engine) -> (Vec<u64>, u64) {
    let mut out = vec![0u64; n as usize];
    let mut sum = 0u64;
    #[parfor(engine = engine, progress = true)]
    for i in 0..out.len() {
        out[i] = (i as u64) * (i as u64);
        sum += (i as u64) * (i as u64);
    }
    (out, sum)
}

#[test]
fn progress_changes_no_result() {
    let xs: Vec<f64> = (0..5000).map(|i| f64::from(i) * 0.01).collect();
    let plain: Vec<f64> = xs.iter().map(|x| x.sin()).collect();
    let want_sum: u64 = (0..3000u64).map(|i| i * i).sum();
    for &engine in common::ENGINES {
        let got = parmap!(|x: f64| x.sin(), xs; engine = engine, progress = true);
        assert_eq!(got, plain, "{engine}");
        let (out, sum) = squares_and_sum(3000, engine);
        assert_eq!(sum, want_sum, "{engine}");
        assert_eq!(out[2999], 2999 * 2999, "{engine}");
    }
}
