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

/// Initial value of bin `k` of the float arrays: `-0.0`, `+0.0`, NaN or a number, so merges
/// meet every kind of target.
fn float_init(k: usize) -> f64 {
    [-0.0, 0.0, f64::NAN, 1.5][k % 4]
}

/// Bins `0..TOUCHED` receive contributions; the others must keep their bits.
const TOUCHED: u64 = 97;
const BINS: usize = 103;

/// A contribution of sample `s`: small integers, halves and twos (so sums and products are
/// exact in any grouping), `-0.0`, and NaN now and then in a few bins.
fn float_value(s: u64) -> f64 {
    match (s >> 20) % 64 {
        0 | 1 => -0.0,
        2 if s % TOUCHED < 3 => f64::NAN,
        3..=20 => 0.5,
        21..=40 => 2.0,
        r => -((r % 5) as f64),
    }
}

/// Every operator of every kind of element, one array each.
#[derive(Debug, PartialEq)]
struct Ints {
    add: Vec<u64>,
    sub: Vec<u64>,
    mul: Vec<i32>,
    or: Vec<u32>,
    and: Vec<u32>,
    xor: Vec<u64>,
    min: Vec<i32>,
    max: Vec<i16>,
    max_fn: Vec<u8>,
    min_fn: Vec<i64>,
    any: Vec<bool>,
    all: Vec<bool>,
    odd: Vec<bool>,
}

struct Floats {
    add: Vec<f64>,
    sub: Vec<f64>,
    mul: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    add32: Vec<f32>,
}

fn new_ints(n: u64) -> Ints {
    Ints {
        add: vec![7; BINS],
        sub: vec![4 * n + 9; BINS],
        mul: vec![3; BINS],
        or: vec![1 << 31; BINS],
        and: vec![!0 ^ 1; BINS],
        xor: vec![0xF0; BINS],
        min: vec![1 << 20; BINS],
        max: vec![-5; BINS],
        max_fn: vec![200; BINS],
        min_fn: vec![0; BINS],
        any: vec![false; BINS],
        all: vec![true; BINS],
        odd: (0..BINS).map(|k| k % 2 == 0).collect(),
    }
}

fn new_floats() -> Floats {
    let init: Vec<f64> = (0..BINS).map(float_init).collect();
    Floats {
        add: init.clone(),
        sub: init.clone(),
        mul: init.clone(),
        min: init.clone(),
        max: init.clone(),
        add32: init.iter().map(|&x| x as f32).collect(),
    }
}

#[parfor(engine = engine, workers = workers)]
fn every_operator(engine: Engine, workers: usize, n: u64) -> (Ints, Floats) {
    let Ints { mut add, mut sub, mut mul, mut or, mut and, mut xor, mut min, mut max, .. } =
        new_ints(n);
    let Ints { mut max_fn, mut min_fn, mut any, mut all, mut odd, .. } = new_ints(n);
    let Floats {
        add: mut fadd, sub: mut fsub, mul: mut fmul, min: mut fmin, max: mut fmax, ..
    } = new_floats();
    let mut fadd32 = new_floats().add32;
    #[parfor]
    for i in 0..n {
        let s = sample(i);
        let k = (s % TOUCHED) as usize;
        add[k] += s % 5;
        sub[k] -= s % 4;
        mul[k] *= if s & (1 << 40) == 0 { 1 } else { -1 };
        or[k] |= 1 << (s % 31);
        and[k] &= !(1 << (s % 29));
        xor[k] ^= s;
        min[k] = min[k].min((s >> 40) as i32 - (1 << 22));
        max[k] = max[k].max((s >> 50) as i16);
        max_fn[k] = std::cmp::max(max_fn[k], (s >> 56) as u8);
        min_fn[k] = std::cmp::min((s >> 48) as i64 - 30_000, min_fn[k]);
        any[k] |= s.is_multiple_of(1000);
        all[k] &= !s.is_multiple_of(1000);
        odd[k] ^= s % 2 == 1;
    }
    // A second loop: serde's tuples, which carry a loop's reductions to the fork engine, stop
    // at 16 elements.
    #[parfor]
    for i in 0..n {
        let s = sample(i);
        let k = (s % TOUCHED) as usize;
        let x = float_value(s);
        fadd[k] += x;
        fsub[k] -= x;
        fmul[k] *= if x.is_nan() || x == 0.0 { 1.0 } else { x.abs() };
        fmin[k] = fmin[k].min(x);
        fmax[k] = f64::max(fmax[k], x);
        fadd32[k] += x as f32;
    }
    let ints = Ints { add, sub, mul, or, and, xor, min, max, max_fn, min_fn, any, all, odd };
    (ints, Floats { add: fadd, sub: fsub, mul: fmul, min: fmin, max: fmax, add32: fadd32 })
}

fn plain_every_operator(n: u64) -> (Ints, Floats) {
    let mut ints = new_ints(n);
    let mut f = new_floats();
    for i in 0..n {
        let s = sample(i);
        let k = (s % TOUCHED) as usize;
        ints.add[k] += s % 5;
        ints.sub[k] -= s % 4;
        ints.mul[k] *= if s & (1 << 40) == 0 { 1 } else { -1 };
        ints.or[k] |= 1 << (s % 31);
        ints.and[k] &= !(1 << (s % 29));
        ints.xor[k] ^= s;
        ints.min[k] = ints.min[k].min((s >> 40) as i32 - (1 << 22));
        ints.max[k] = ints.max[k].max((s >> 50) as i16);
        ints.max_fn[k] = std::cmp::max(ints.max_fn[k], (s >> 56) as u8);
        ints.min_fn[k] = std::cmp::min((s >> 48) as i64 - 30_000, ints.min_fn[k]);
        ints.any[k] |= s.is_multiple_of(1000);
        ints.all[k] &= !s.is_multiple_of(1000);
        ints.odd[k] ^= s % 2 == 1;
        let x = float_value(s);
        f.add[k] += x;
        f.sub[k] -= x;
        f.mul[k] *= if x.is_nan() || x == 0.0 { 1.0 } else { x.abs() };
        f.min[k] = f.min[k].min(x);
        f.max[k] = f64::max(f.max[k], x);
        f.add32[k] += x as f32;
    }
    (ints, f)
}

fn float_arrays(f: &Floats) -> Vec<(&'static str, Vec<f64>)> {
    vec![
        ("+=", f.add.clone()),
        ("-=", f.sub.clone()),
        ("*=", f.mul.clone()),
        ("min", f.min.clone()),
        ("max", f.max.clone()),
        ("f32 +=", f.add32.iter().map(|&x| x as f64).collect()),
    ]
}

#[test]
fn every_operator_equals_the_plain_loop_and_floats_agree_bit_for_bit() {
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for n in [0, 1, 5, 20_000] {
        let (want_ints, want_floats) = plain_every_operator(n);
        let (_, reference) = every_operator(Engine::Serial, 1, n);
        for (op, (want, got)) in
            float_arrays(&want_floats).into_iter().zip(float_arrays(&reference)).map(|(w, g)| {
                assert_eq!(w.0, g.0);
                (w.0, (w.1, g.1))
            })
        {
            for k in 0..BINS {
                let (w, g) = (want[k], got[k]);
                if k as u64 >= TOUCHED {
                    // No contribution: the target's bits stay, `-0.0` and NaN included.
                    assert_eq!(g.to_bits(), w.to_bits(), "{op} n={n} untouched bin {k}");
                } else {
                    // Contributions are exact in any grouping: the plain loop's value.
                    assert!(w == g || (w.is_nan() && g.is_nan()), "{op} n={n} bin {k}: {g} {w}");
                }
            }
        }
        if n == 20_000 {
            // The data reach every kind of target and contribution.
            assert!(want_floats.add[..TOUCHED as usize].iter().any(|x| x.is_nan()));
            assert!(want_floats.add[..TOUCHED as usize].iter().any(|x| !x.is_nan()));
            assert!(want_ints.any.iter().any(|&b| b) && !want_ints.all.iter().all(|&b| b));
        }
        for &e in ENGINES {
            for &w in WORKERS {
                let (ints, floats) = every_operator(e, w, n);
                assert_eq!(ints, want_ints, "{e:?} x{w} n={n}");
                for ((op, got), (_, r)) in
                    float_arrays(&floats).iter().zip(float_arrays(&reference))
                {
                    assert_eq!(bits(got), bits(&r), "{op} {e:?} x{w} n={n}");
                }
            }
        }
    }
}

/// A user type: no identity is known, so its partial arrays start from the first contribution.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Mod7(u8);

impl std::ops::Add for Mod7 {
    type Output = Mod7;
    fn add(self, o: Mod7) -> Mod7 {
        Mod7((self.0 + o.0) % 7)
    }
}

impl std::ops::AddAssign for Mod7 {
    fn add_assign(&mut self, o: Mod7) {
        *self = *self + o;
    }
}

#[parfor(engine = engine, workers = workers)]
fn user_type(engine: Engine, workers: usize, n: u64) -> Vec<Mod7> {
    let mut sums = vec![Mod7(3); 11];
    #[parfor]
    for i in 0..n {
        let s = sample(i);
        sums[(s % 10) as usize] += Mod7((s % 7) as u8);
    }
    sums
}

#[test]
fn a_type_without_identity_uses_option_partials() {
    let n = 5_000;
    let mut want = vec![Mod7(3); 11];
    for i in 0..n {
        let s = sample(i);
        want[(s % 10) as usize] += Mod7((s % 7) as u8);
    }
    for &e in ENGINES {
        for &w in WORKERS {
            assert_eq!(user_type(e, w, n), want, "{e:?} x{w}");
        }
    }
}

/// Counts, float sums and maxima, with two indices.
type Grids = (Vec<Vec<u32>>, [[f64; 4]; 3], Vec<[i16; 2]>);

#[parfor(engine = engine, workers = workers)]
fn grids(engine: Engine, workers: usize, n: u64, rows: &mut [Vec<i64>]) -> Grids {
    let mut counts = vec![vec![0u32; 5], vec![], vec![1; 2], vec![0; 7]];
    let mut sums = [[-0.0f64; 4]; 3];
    let mut highs = vec![[i16::MIN; 2]; 6];
    #[parfor]
    for i in 0..n {
        let s = sample(i);
        let r = [0, 2, 3][(s % 3) as usize];
        counts[r][((s >> 8) % [5, 0, 2, 7][r]) as usize] += 1;
        sums[(s % 3) as usize][((s >> 12) % 3) as usize] += float_value(s);
        highs[(s % 6) as usize][(i % 2) as usize] =
            highs[(s % 6) as usize][(i % 2) as usize].max((s >> 48) as i16);
        rows[(s % 2) as usize][((s >> 20) % 3) as usize] -= (s % 100) as i64;
    }
    (counts, sums, highs)
}

#[test]
fn two_index_reductions_equal_the_plain_loop() {
    for n in [0, 1, 10_000] {
        let mut counts = vec![vec![0u32; 5], vec![], vec![1; 2], vec![0; 7]];
        let mut sums = [[-0.0f64; 4]; 3];
        let mut highs = vec![[i16::MIN; 2]; 6];
        let mut rows = vec![vec![7i64; 3], vec![0; 4]];
        for i in 0..n {
            let s = sample(i);
            let r = [0, 2, 3][(s % 3) as usize];
            counts[r][((s >> 8) % [5, 0, 2, 7][r]) as usize] += 1;
            sums[(s % 3) as usize][((s >> 12) % 3) as usize] += float_value(s);
            let h = &mut highs[(s % 6) as usize][(i % 2) as usize];
            *h = (*h).max((s >> 48) as i16);
            rows[(s % 2) as usize][((s >> 20) % 3) as usize] -= (s % 100) as i64;
        }
        let mut first = None;
        for &e in ENGINES {
            for &w in WORKERS {
                let mut got_rows = vec![vec![7i64; 3], vec![0; 4]];
                let (c, f, h) = grids(e, w, n, &mut got_rows);
                assert_eq!((&c, &h, &got_rows), (&counts, &highs, &rows), "{e:?} x{w} n={n}");
                let bits: Vec<u64> = f.iter().flatten().map(|x| x.to_bits()).collect();
                // Exact contributions: the plain loop's values; untouched `-0.0` elements
                // (column 3) keep their sign.
                for (got, want) in f.iter().flatten().zip(sums.iter().flatten()) {
                    assert!(got == want || (got.is_nan() && want.is_nan()), "{e:?} x{w} n={n}");
                }
                assert!(f.iter().all(|row| row[3].to_bits() == (-0.0f64).to_bits()));
                assert_eq!(bits, *first.get_or_insert_with(|| bits.clone()), "{e:?} x{w} n={n}");
            }
        }
    }
}

#[test]
fn a_row_index_out_of_bounds_panics_like_indexing() {
    for &e in ENGINES {
        let err = std::panic::catch_unwind(|| {
            let mut rows = vec![vec![0i64; 3]; 1];
            grids(e, 2, 10, &mut rows);
        })
        .expect_err("row 1 of 1");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("the len is 1 but the index is 1"), "{e:?}: {msg}");
    }
}

#[parfor(engine = engine, workers = workers)]
fn lazy_histogram(engine: Engine, workers: usize, n: u64) -> (Vec<u32>, Vec<f64>) {
    let mut counts = vec![0u32; 17];
    let mut sums = vec![-0.0f64; 17];
    #[parfor]
    for s in (0..n).map(sample) {
        counts[(s % 17) as usize] += 1;
        sums[(s % 13) as usize] += float_value(s);
    }
    (counts, sums)
}

#[test]
fn a_lazy_domain_feeds_array_reductions() {
    let n = 3_000;
    let mut counts = vec![0u32; 17];
    for i in 0..n {
        counts[(sample(i) % 17) as usize] += 1;
    }
    let (_, reference) = lazy_histogram(Engine::Serial, 1, n);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for &e in ENGINES {
        for &w in WORKERS {
            let (c, f) = lazy_histogram(e, w, n);
            assert_eq!(c, counts, "{e:?} x{w}");
            assert_eq!(bits(&f), bits(&reference), "{e:?} x{w}");
        }
    }
}
