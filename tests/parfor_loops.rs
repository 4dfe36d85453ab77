//! Differential suite for `#[parfor]` loops: every loop shape is written once, expanded both
//! as a `#[parfor]` function (engine and workers as run-time options) and as the same plain
//! serial loop, and run on every engine of `common::ENGINES` with every worker count of
//! `common::WORKERS`. Integer results must equal the plain loop exactly; float reductions
//! must be bit-identical across engines and worker counts (and close to the plain loop).
// The shapes are written the way users write loops, including `x = x + e` reductions and
// index loops, which these lints would rewrite.
#![allow(clippy::assign_op_pattern, clippy::needless_range_loop, clippy::needless_borrow)]

mod common;

use parfor::{Engine, parfor};
use std::fmt::Debug;

/// Writes a loop shape once: `par` (the `#[parfor]` version) and `plain` (the serial loop).
macro_rules! case {
    (
        $name:ident ( $($param:ident : $ty:ty),* ) -> $ret:ty ;
        pre { $($pre:tt)* }
        for [ $($pat:tt)* ] in [ $($dom:tt)* ] ( $($opts:tt)* ) { $($body:tt)* }
        post { $($post:tt)* }
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[parfor(engine = engine, workers = workers)]
            pub(crate) fn par(engine: Engine, workers: usize, $($param: $ty),*) -> $ret {
                $($pre)*
                #[parfor($($opts)*)]
                for $($pat)* in $($dom)* { $($body)* }
                $($post)*
            }

            pub(crate) fn plain($($param: $ty),*) -> $ret {
                $($pre)*
                for $($pat)* in $($dom)* { $($body)* }
                $($post)*
            }
        }
    };
}

/// Runs `par` on every engine and worker count and compares with `expected` exactly.
fn exact<R: PartialEq + Debug>(expected: R, par: impl Fn(Engine, usize) -> R) {
    for &engine in common::ENGINES {
        for &workers in common::WORKERS {
            let got = par(engine, workers);
            assert_eq!(got, expected, "engine {engine}, {workers} workers");
        }
    }
}

/// Runs `par` everywhere: the same bits on every engine and worker count, and within
/// `tol` (relative) of the plain loop.
fn floats(expected: &[f64], tol: f64, par: impl Fn(Engine, usize) -> Vec<f64>) {
    let mut first: Option<Vec<u64>> = None;
    for &engine in common::ENGINES {
        for &workers in common::WORKERS {
            let got = par(engine, workers);
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(expected) {
                assert!((g - e).abs() <= tol * e.abs().max(1.0), "{g} vs {e} on {engine}");
            }
            let bits: Vec<u64> = got.iter().map(|x| x.to_bits()).collect();
            match &first {
                None => first = Some(bits),
                Some(f) => {
                    assert_eq!(&bits, f, "bits differ on engine {engine}, {workers} workers")
                }
            }
        }
    }
}

fn ints(n: usize, seed: u64) -> Vec<i64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 1000) as i64 - 300
        })
        .collect()
}

fn reals(n: usize, seed: u64) -> Vec<f64> {
    ints(n, seed).into_iter().map(|x| x as f64 / 7.0).collect()
}

case! {
    sum_ints(data: &[i64]) -> i64;
    pre { let mut s = 0; }
    for [i] in [0..data.len()] () { s += data[i]; }
    post { s }
}

case! {
    product(data: &[i64]) -> i64;
    pre { let mut p: i64 = 1; }
    for [x] in [data.iter()] () { p *= 1 + (x & 1); }
    post { p }
}

case! {
    min_max(data: &[i64]) -> (i64, i64);
    pre { let v = data.to_vec(); let mut lo = i64::MAX; let mut hi = i64::MIN; }
    for [x] in [&v] () { lo = lo.min(*x); hi = hi.max(*x); }
    post { (lo, hi) }
}

case! {
    cmp_functions(data: &[i64]) -> (i64, i64);
    pre { use std::cmp::min; let mut m = 0; let mut k = 0; }
    for [x] in [data.iter()] () { m = std::cmp::max(m, *x); k = min(*x, k); }
    post { (m, k) }
}

case! {
    count(data: &[i64]) -> usize;
    pre { let mut c = 0; }
    for [x] in [data.iter()] () { if x % 3 == 0 { c += 1; } }
    post { c }
}

case! {
    bit_ops(data: &[i64]) -> (i64, i64, i64);
    pre { let mut or = 0; let mut and = -1; let mut xor = 0; }
    for [x] in [data.iter()] () { or |= x; and &= *x | 1024; xor ^= x; }
    post { (or, and, xor) }
}

case! {
    match_reductions(data: &[i64]) -> (i64, i64, usize);
    pre { let mut a = 0; let mut b = 100; let mut other = 0; }
    for [x] in [data.iter()] () {
        match x.rem_euclid(4) {
            0 => a += x,
            1 => b -= x,
            _ => other += 1,
        }
    }
    post { (a, b, other) }
}

case! {
    binary_forms(data: &[i64]) -> (i64, i64);
    pre { let mut s = 0; let mut t = 1; }
    for [x] in [data.iter()] () { s = s + x; t = (x & 3) + t; }
    post { (s, t) }
}

case! {
    pushes(data: &[i64]) -> (Vec<i64>, Vec<usize>);
    pre { let mut evens = Vec::new(); let mut at: Vec<usize> = Vec::new(); }
    for [(k, x)] in [data.iter().enumerate()] () {
        if x % 2 == 0 { evens.push(*x); at.push(k); }
    }
    post { (evens, at) }
}

case! {
    extend(n: usize) -> Vec<usize>;
    pre { let mut v = vec![7]; }
    for [i] in [0..n] () { v.extend([i, i * 10]); if i % 5 == 0 { v.push(0); } }
    post { v }
}

case! {
    sliced_outputs(data: &[i64]) -> (Vec<i64>, Vec<i64>, Vec<i64>);
    pre {
        let mut sq = vec![0; data.len()];
        let mut cube = vec![0; data.len()];
        let mut acc = vec![5; data.len()];
    }
    for [i] in [0..data.len()] () {
        let x = data[i];
        sq[i] = x * x;
        cube[i] = x * x * x;
        acc[i] += x;
        acc[i] = acc[i] * 2;
    }
    post { (sq, cube, acc) }
}

case! {
    enumerate_slice(data: &[i64]) -> (Vec<i64>, i64);
    pre { let mut out = vec![0; data.len()]; let mut s = 0; }
    for [(k, x)] in [data.iter().enumerate()] () { out[k] = x * k as i64; s += *x; }
    post { (out, s) }
}

case! {
    iter_mut(data: &[i64]) -> Vec<i64>;
    pre { let mut v = data.to_vec(); }
    for [x] in [v.iter_mut()] () { *x = *x * 2 + 1; }
    post { v }
}

case! {
    ref_mut_enumerate(data: &[i64]) -> (Vec<i64>, i64);
    pre { let mut v = data.to_vec(); let mut s = 0; }
    for [(k, x)] in [(&mut v).iter_mut().enumerate()] () { *x -= k as i64; s += *x; }
    post { (v, s) }
}

case! {
    ref_mut(data: &[i64]) -> Vec<i64>;
    pre { let mut v = data.to_vec(); }
    for [x] in [&mut v] () { *x = -*x; }
    post { v }
}

fn merge(a: String, b: String) -> String {
    a + &b
}

case! {
    user_reduction(data: &[i64]) -> String;
    pre { let mut acc = String::from(">"); }
    for [x] in [data.iter()] (reduce(acc = merge)) {
        acc = merge(acc, format!("{},", x.rem_euclid(10)));
    }
    post { acc }
}

case! {
    grid_2d(rows: usize, cols: usize) -> (Vec<Vec<usize>>, Vec<usize>, usize);
    pre { let mut grid = vec![vec![0; cols]; rows]; let mut row_sums = vec![0; rows]; let mut total = 0; }
    for [i] in [0..rows] () {
        let mut s = 0;
        for j in 0..cols {
            grid[i][j] = i * j + 1;
            s += i * j + 1;
        }
        row_sums[i] = s;
        total += s;
    }
    post { (grid, row_sums, total) }
}

/// Read as a broadcast through its fields.
pub(crate) struct Params {
    scale: i64,
    offset: i64,
    table: Vec<i64>,
}

case! {
    struct_fields(p: &Params, data: &[i64]) -> Vec<i64>;
    pre { let mut out = vec![0; data.len()]; }
    for [i] in [0..data.len()] () {
        out[i] = p.scale * data[i] + p.offset + p.table[i % p.table.len()];
    }
    post { out }
}

case! {
    subtract(data: &[i64]) -> (i64, i64);
    pre { let mut s = 1000; let mut t = 0; }
    for [x] in [data.iter()] () { s -= x; t = t - x * 2; }
    post { (s, t) }
}

case! {
    inclusive(n: usize) -> (usize, Vec<usize>);
    pre { let mut s = 0; let mut out = vec![0; n + 1]; }
    for [i] in [1..=n] () { s += i * i; out[i] = 3 * i; }
    post { (s, out) }
}

case! {
    offset_range(n: usize) -> Vec<usize>;
    pre { let mut out = vec![1; n]; }
    for [i] in [n / 3..n] () { out[i] = i * 2; }
    post { out }
}

case! {
    signed_range(n: i32) -> i64;
    pre { let mut s: i64 = 0; }
    for [i] in [-n..n] () { s += i64::from(i) * i64::from(i.signum()); }
    post { s }
}

case! {
    continue_early(data: &[i64]) -> (i64, Vec<i64>);
    pre { let mut s = 0; let mut kept = vec![]; }
    for [x] in [data.iter()] () {
        if x % 3 == 0 {
            continue;
        }
        for j in 0..4 {
            if j == 2 { continue; }
            s += j;
        }
        s += x;
        kept.push(*x);
    }
    post { (s, kept) }
}

case! {
    labeled_inner(data: &[i64]) -> usize;
    pre { let mut c = 0; }
    for [x] in [data.iter()] () {
        'inner: for j in 0..10 {
            if j > x.rem_euclid(10) { break 'inner; }
            c += 1;
        }
    }
    post { c }
}

/// A marked loop inside a marked loop runs as a plain loop within each outer iteration.
mod nested_marked {
    use super::*;

    #[parfor(engine = engine, workers = workers)]
    pub(crate) fn par(engine: Engine, workers: usize, n: usize) -> usize {
        let mut c = 0;
        #[parfor]
        for i in 0..n {
            #[parfor]
            for j in 0..i {
                c += j;
            }
        }
        c
    }

    pub(crate) fn plain(n: usize) -> usize {
        let mut c = 0;
        for i in 0..n {
            for j in 0..i {
                c += j;
            }
        }
        c
    }
}

case! {
    closures_and_macros(data: &[i64]) -> (i64, String);
    pre { let mut s = 0; let mut log = Vec::new(); }
    for [i] in [0..data.len()] () {
        let x = data[i];
        assert!(x >= -300, "bad input {x} at {}", i);
        (0..3).for_each(|j| s += j * x);
        let sum = x * 2; // a temporary shadowing nothing outside, named like a reduction elsewhere
        log.push(format!("{sum}"));
    }
    post { (s, log.join(",")) }
}

case! {
    float_reductions(data: &[f64]) -> Vec<f64>;
    pre {
        let mut sum = 0.0;
        let mut prod = 1.0;
        let mut best = f64::MIN;
        let mut low = f64::MAX;
        let mut down = 10.0;
    }
    for [x] in [data.iter()] () {
        sum += x;
        prod *= 1.0 + x / 1e4;
        best = best.max(*x);
        low = f64::min(low, x * 1.5);
        down -= x;
    }
    post { vec![sum, prod, best, low, down] }
}

case! {
    float_sliced(data: &[f64]) -> Vec<f64>;
    pre { let mut out = vec![0.0; data.len()]; let mut s = 0.0f64; }
    for [i] in [0..data.len()] () {
        let y = data[i].abs().sqrt();
        out[i] = y;
        s += y;
    }
    post { out.push(s); out }
}

#[test]
fn integer_shapes_equal_the_plain_loop() {
    let data = ints(1000, 1);
    let small = ints(40, 2);
    exact(sum_ints::plain(&data), |e, w| sum_ints::par(e, w, &data));
    exact(product::plain(&small), |e, w| product::par(e, w, &small));
    exact(min_max::plain(&data), |e, w| min_max::par(e, w, &data));
    exact(cmp_functions::plain(&data), |e, w| cmp_functions::par(e, w, &data));
    exact(count::plain(&data), |e, w| count::par(e, w, &data));
    exact(bit_ops::plain(&data), |e, w| bit_ops::par(e, w, &data));
    exact(match_reductions::plain(&data), |e, w| match_reductions::par(e, w, &data));
    exact(binary_forms::plain(&data), |e, w| binary_forms::par(e, w, &data));
    exact(pushes::plain(&data), |e, w| pushes::par(e, w, &data));
    exact(extend::plain(300), |e, w| extend::par(e, w, 300));
    exact(sliced_outputs::plain(&data), |e, w| sliced_outputs::par(e, w, &data));
    exact(enumerate_slice::plain(&data), |e, w| enumerate_slice::par(e, w, &data));
    exact(iter_mut::plain(&data), |e, w| iter_mut::par(e, w, &data));
    exact(ref_mut_enumerate::plain(&data), |e, w| ref_mut_enumerate::par(e, w, &data));
    exact(ref_mut::plain(&data), |e, w| ref_mut::par(e, w, &data));
    exact(user_reduction::plain(&data), |e, w| user_reduction::par(e, w, &data));
    exact(grid_2d::plain(37, 11), |e, w| grid_2d::par(e, w, 37, 11));
    let p = Params { scale: 3, offset: -7, table: vec![1, 2, 3, 5, 8] };
    exact(struct_fields::plain(&p, &data), |e, w| struct_fields::par(e, w, &p, &data));
    exact(subtract::plain(&data), |e, w| subtract::par(e, w, &data));
    exact(inclusive::plain(500), |e, w| inclusive::par(e, w, 500));
    exact(offset_range::plain(300), |e, w| offset_range::par(e, w, 300));
    exact(signed_range::plain(400), |e, w| signed_range::par(e, w, 400));
    exact(continue_early::plain(&data), |e, w| continue_early::par(e, w, &data));
    exact(labeled_inner::plain(&data), |e, w| labeled_inner::par(e, w, &data));
    exact(nested_marked::plain(60), |e, w| nested_marked::par(e, w, 60));
    exact(closures_and_macros::plain(&data), |e, w| closures_and_macros::par(e, w, &data));
}

#[test]
fn empty_and_single_domains() {
    exact(sum_ints::plain(&[]), |e, w| sum_ints::par(e, w, &[]));
    exact(min_max::plain(&[]), |e, w| min_max::par(e, w, &[]));
    exact(pushes::plain(&[4]), |e, w| pushes::par(e, w, &[4]));
    exact(inclusive::plain(0), |e, w| inclusive::par(e, w, 0));
    exact(user_reduction::plain(&[]), |e, w| user_reduction::par(e, w, &[]));
}

#[test]
fn float_reductions_are_bit_identical() {
    let data = reals(3000, 3);
    floats(&float_reductions::plain(&data), 1e-9, |e, w| float_reductions::par(e, w, &data));
    floats(&float_sliced::plain(&data), 1e-9, |e, w| float_sliced::par(e, w, &data));
}

struct Model {
    weights: Vec<f64>,
    bias: f64,
}

impl Model {
    #[parfor(engine = engine, workers = workers)]
    fn score(&self, engine: Engine, workers: usize, xs: &[f64]) -> (Vec<f64>, f64) {
        let mut out = vec![0.0; xs.len()];
        let mut total = 0.0;
        #[parfor]
        for i in 0..xs.len() {
            let y = self.weights[i % self.weights.len()] * xs[i] + self.bias;
            out[i] = y;
            total += y;
        }
        (out, total)
    }
}

#[test]
fn method_with_self() {
    let m = Model { weights: vec![0.5, -1.0, 2.0], bias: 0.25 };
    let xs = reals(777, 4);
    let mut expected = Vec::new();
    let mut total = 0.0;
    for (i, x) in xs.iter().enumerate() {
        let y = m.weights[i % 3] * x + m.bias;
        expected.push(y);
        total += y;
    }
    expected.push(total);
    floats(&expected, 1e-9, |e, w| {
        let (mut out, t) = m.score(e, w, &xs);
        out.push(t);
        out
    });
}

#[parfor]
fn failing(n: usize) -> usize {
    let mut s = 0;
    #[parfor(engine = "threads", workers = 2)]
    for i in 0..n {
        assert!(i != 13, "unlucky");
        s += i;
    }
    s
}

#[test]
fn a_failed_iteration_names_the_loop_variable() {
    assert_eq!(failing(13), 78);
    let err = std::panic::catch_unwind(|| failing(20)).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(msg.contains("i = 13") && msg.contains("unlucky"), "{msg}");
}

#[parfor]
fn fill_too_far(out: &mut [u32], n: usize, engine: Engine) {
    #[parfor(engine = engine, workers = 2)]
    for i in 0..n {
        out[i] = 1;
    }
}

#[test]
fn a_sliced_output_out_of_bounds_panics_like_indexing() {
    for &engine in common::ENGINES {
        let mut out = vec![0u32; 3];
        fill_too_far(&mut out, 3, engine);
        assert_eq!(out, [1, 1, 1]);
        let err = std::panic::catch_unwind(move || fill_too_far(&mut out, 5, engine)).unwrap_err();
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        assert!(
            msg.contains("index out of bounds: the len is 3 but the index is 3"),
            "{engine}: {msg}"
        );
    }
}

#[parfor]
fn one_block_sum(xs: &[f64], engine: Engine) -> f64 {
    let mut s = 0.0;
    #[parfor(engine = engine, chunk = xs.len().max(1))]
    for i in 0..xs.len() {
        s += xs[i];
    }
    s
}

#[test]
fn one_block_equals_the_left_to_right_loop() {
    let xs = reals(5000, 9);
    let mut plain = 0.0;
    for x in &xs {
        plain += x;
    }
    for &engine in common::ENGINES {
        assert_eq!(one_block_sum(&xs, engine).to_bits(), plain.to_bits(), "{engine}");
    }
}
