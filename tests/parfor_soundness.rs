//! Loop shapes from the soundness work: sliced outputs indexed by non-`usize` loop variables,
//! integer reductions whose block partials would overflow where the plain loop does not,
//! `String` concatenations, temporaries in the loop domain, expression macros on sliced
//! outputs, and broadcasts changed through `&self` (fine on threads, refused on fork). Every
//! result is compared with the plain loop on every engine and worker count.

mod common;

use common::{ENGINES, WORKERS};
use parfor::{Engine, parfor};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

fn each(mut f: impl FnMut(Engine, usize)) {
    for &e in ENGINES {
        for &w in WORKERS {
            f(e, w);
        }
    }
}

#[parfor(engine = engine, workers = workers)]
fn squares_u32(engine: Engine, workers: usize, out: &mut [u64]) {
    let n = out.len() as u32;
    #[parfor]
    for i in 0..n {
        out[i] = u64::from(i) * u64::from(i);
    }
}

#[parfor(engine = engine, workers = workers)]
fn from_i64(engine: Engine, workers: usize, start: i64, out: &mut [i64]) {
    let end = out.len() as i64;
    #[parfor(chunk = 3)]
    for i in start..end {
        out[i] = 10 * i;
    }
}

#[test]
fn sliced_outputs_take_any_integer_loop_variable() {
    each(|e, w| {
        let mut out = vec![0; 37];
        squares_u32(e, w, &mut out);
        let want: Vec<u64> = (0..37).map(|i| i * i).collect();
        assert_eq!(out, want, "{e:?} x{w}");

        let mut out = vec![0; 20];
        from_i64(e, w, 5, &mut out);
        let want: Vec<i64> = (0..20).map(|i| if i < 5 { 0 } else { 10 * i }).collect();
        assert_eq!(out, want, "{e:?} x{w}");
    });
}

#[test]
fn a_negative_index_panics_instead_of_wrapping() {
    for &e in ENGINES {
        let mut out = vec![0; 4];
        let err = catch_unwind(AssertUnwindSafe(|| from_i64(e, 2, -2, &mut out)))
            .expect_err("a negative index must fail");
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains("not a valid index"), "{e:?}: {msg}");
        // The engines that catch the panic name the iteration.
        if msg.contains("iteration") {
            assert!(msg.contains("i = -2"), "{e:?}: {msg}");
        }
    }
}

#[parfor(engine = engine, workers = workers)]
fn overflow_free(engine: Engine, workers: usize, terms: &[i32]) -> (i32, i32, i32) {
    let mut sum = -1i32;
    let mut diff = 0i32;
    let mut prod = -1i32;
    // One block: its partial starts from the first term.
    #[parfor(chunk = 8)]
    for t in terms.iter() {
        sum += *t;
        diff -= *t;
        prod *= if *t > 1 { 2 } else { 1 };
    }
    (sum, diff, prod)
}

#[test]
fn integer_reductions_equal_the_plain_loop_where_partials_would_overflow() {
    // The plain loop: -1 + MAX = MAX - 1, + 1 = MAX; 0 - MAX - 1 = MIN; -1 * 2^30 * 2 = MIN.
    // A block that starts from its first term overflows on MAX + 1 and 2^31 without
    // wrapping arithmetic (in a build with overflow checks, these tests' profile).
    let terms = [i32::MAX, 1];
    let pow = [1 << 30, 1, 2];
    let mut want_prod = -1i32;
    for t in pow.iter() {
        want_prod *= if *t > 1 { 2 } else { 1 };
    }
    each(|e, w| {
        let (sum, diff, _) = overflow_free(e, w, &terms);
        assert_eq!((sum, diff), (i32::MAX, i32::MIN), "{e:?} x{w}");
        let (_, _, prod) = overflow_free(e, w, &pow);
        assert_eq!(prod, want_prod, "{e:?} x{w}");
    });
}

#[parfor(engine = engine, workers = workers)]
fn letters(engine: Engine, workers: usize, words: &[&str]) -> (String, String) {
    let mut initials = String::new();
    let mut joined = String::from(">");
    #[parfor(chunk = 2)]
    for w in words.iter() {
        initials.push(w.chars().next().unwrap_or('-'));
        joined.push_str(w);
    }
    (initials, joined)
}

#[test]
fn string_concatenations_keep_iteration_order() {
    let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"];
    each(|e, w| {
        let (initials, joined) = letters(e, w, &words);
        assert_eq!(initials, "abgdeze", "{e:?} x{w}");
        assert_eq!(joined, format!(">{}", words.concat()), "{e:?} x{w}");
    });
}

#[parfor(engine = engine, workers = workers)]
fn doubled_copy(engine: Engine, workers: usize, v: &[u32]) -> u32 {
    let mut total = 0;
    #[parfor]
    for x in v.to_vec().iter() {
        total += 2 * x;
    }
    total
}

#[parfor(engine = engine, workers = workers)]
fn checked_fill(engine: Engine, workers: usize, out: &mut [usize]) {
    #[parfor]
    for i in 0..out.len() {
        assert_eq!(out[i], 0, "element {} written twice", i);
        out[i] = i + 1;
        debug_assert!(out[i] > i);
    }
}

#[test]
fn temporaries_in_the_domain_and_expression_macros() {
    let v: Vec<u32> = (1..=100).collect();
    each(|e, w| {
        assert_eq!(doubled_copy(e, w, &v), 10100, "{e:?} x{w}");
        let mut out = vec![0; 50];
        checked_fill(e, w, &mut out);
        assert_eq!(out, (1..=50).collect::<Vec<_>>(), "{e:?} x{w}");
    });
}

#[parfor(engine = engine)]
fn count_big(engine: Engine, v: &[f64]) -> usize {
    let hits = AtomicUsize::new(0);
    #[parfor]
    for x in v.iter() {
        if *x > 0.5 {
            hits.fetch_add(1, Ordering::Relaxed);
        }
    }
    hits.into_inner()
}

#[test]
fn interior_mutation_of_a_broadcast_runs_in_process_and_is_refused_on_fork() {
    let v: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
    assert_eq!(count_big(Engine::Serial, &v), 499);
    assert_eq!(count_big(Engine::Threads, &v), 499);
    #[cfg(unix)]
    {
        let err = catch_unwind(|| count_big(Engine::Fork, &v)).expect_err("fork must refuse");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("cannot run on the fork engine") && msg.contains("hits.fetch_add(..)"),
            "{msg}"
        );
    }
}
