//! `parmap!` against plain serial loops: source kinds, shapes, argument passing, options,
//! engines and failures.

mod common;

use common::{ENGINES, WORKERS};
use parfor::{Cause, Engine, TaskError, parmap, worker_id};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

fn hypot(a: f64, b: f64) -> f64 {
    a.hypot(b)
}

fn floats(n: usize, seed: f64) -> Vec<f64> {
    (0..n).map(|i| (i as f64 * 0.37 + seed).sin() * 10.0).collect()
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        panic!("non-string panic payload")
    }
}

#[test]
fn one_source() {
    let x = floats(1000, 0.5);
    let got = parmap!(|a: f64| a.abs().sqrt().sin(), x);
    let want: Vec<f64> = x.iter().map(|a| a.abs().sqrt().sin()).collect();
    assert_eq!(got, want);
    // The source is borrowed, not consumed.
    assert_eq!(x.len(), 1000);
}

#[test]
fn two_sources_are_a_cartesian_product_first_source_outermost() {
    let x = floats(13, 0.1);
    let y = floats(7, 2.0);
    let got = parmap!(hypot, x, y);
    let mut want = Vec::new();
    for a in &x {
        for b in &y {
            want.push(hypot(*a, *b));
        }
    }
    assert_eq!(got, want);
    // The same source twice.
    let got = parmap!(hypot, x, x);
    assert_eq!(got.len(), 13 * 13);
    assert_eq!(got[13 + 2], hypot(x[1], x[2]));
}

#[test]
fn three_sources_in_row_major_order() {
    let xs = vec![-2i64, 7, 11];
    let ys = [3u8, 5];
    let got = parmap!(|a: i64, b: u8, c: usize| (a, b, c), xs, ys, 0..4usize);
    let mut want = Vec::new();
    for &a in &xs {
        for &b in &ys {
            for c in 0..4usize {
                want.push((a, b, c));
            }
        }
    }
    assert_eq!(got, want);
}

#[test]
fn zip_pairs_elements() {
    let x = floats(50, 0.0);
    let y = floats(50, 1.0);
    let got = parmap!(|a: f64, b: f64| a - b, x, y; zip = true);
    let want: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
    assert_eq!(got, want);
    let z = floats(50, 3.0);
    let got = parmap!(|a: f64, b: f64, c: f64| a * b + c, x, y, z; zip = true);
    let want: Vec<f64> = (0..50).map(|i| x[i] * y[i] + z[i]).collect();
    assert_eq!(got, want);
    // Decided at run time.
    for zipped in [false, true] {
        let got = parmap!(|a: f64, b: f64| a - b, x, y; zip = zipped);
        assert_eq!(got.len(), if zipped { 50 } else { 2500 });
    }
    let got = parmap!(|a: f64, b: f64| a - b, x, y; zip = false);
    assert_eq!(got.len(), 2500);
}

#[test]
fn zip_of_unequal_lengths_panics_clearly() {
    let x = [1.0, 2.0, 3.0];
    let y = [1.0, 2.0];
    let msg = panic_message(|| {
        let _ = parmap!(hypot, x, y; zip = true);
    });
    assert!(
        msg.contains("`zip = true` needs sources of equal length, got lengths [3, 2]"),
        "{msg}"
    );
}

#[derive(Debug, PartialEq)]
struct Offset(f64);

fn scaled(a: f64, k: f64, off: &Offset) -> f64 {
    a * k + off.0
}

#[test]
fn args_are_trailing_arguments() {
    let x = floats(20, 0.0);
    let off = Offset(0.25);
    let k = 3.0;
    let got = parmap!(scaled, x; args = (k, off));
    let want: Vec<f64> = x.iter().map(|&a| scaled(a, k, &off)).collect();
    assert_eq!(got, want);
    // `off` was borrowed, not moved.
    assert_eq!(off, Offset(0.25));
    // One argument, with and without the trailing comma.
    let got = parmap!(|a: f64, k: f64| a * k, x; args = (2.0,));
    assert_eq!(got[3], x[3] * 2.0);
    let got = parmap!(|a: f64, k: f64| a * k, x; args = (2.0));
    assert_eq!(got[3], x[3] * 2.0);
    // Unannotated closure parameters receive references.
    let got = parmap!(|a, k, off: &Offset| a * k + off.0, x; args = (k, off));
    assert_eq!(got, want);
    // Evaluated once.
    let calls = AtomicUsize::new(0);
    let next = || calls.fetch_add(1, Ordering::SeqCst) as f64;
    let got = parmap!(|a: f64, b: f64, c: f64| a + b + c, x, x; args = (next()));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(got[21], x[1] + x[1]);
    assert_eq!(got[0], x[0] + x[0]);
}

#[test]
fn integer_ranges() {
    assert_eq!(parmap!(|i: i32| i * 2, 1..=5), [2, 4, 6, 8, 10]);
    assert_eq!(parmap!(|i: i64| i, -5i64..5), (-5i64..5).collect::<Vec<_>>());
    assert_eq!(parmap!(|i: u8| i, 250u8..=255), [250, 251, 252, 253, 254, 255]);
    assert_eq!(parmap!(|i: i8| i, i8::MIN..=i8::MAX), (i8::MIN..=i8::MAX).collect::<Vec<_>>());
    let n = 4usize;
    assert_eq!(
        parmap!(|i: usize, j: usize| i * 10 + j, 0..n, 1..3),
        [1, 2, 11, 12, 21, 22, 31, 32]
    );
    // Unannotated: the integer by value, its type inferred as usual.
    assert_eq!(parmap!(|i| i * 2, 0..10), (0..10).map(|i| i * 2).collect::<Vec<i32>>());
    assert_eq!(parmap!(|i| u64::from(i) << 40, 0u32..3), [0, 1 << 40, 2 << 40]);
    // A literal range takes the type the function asks for.
    fn wide(i: u64) -> u64 {
        i << 40
    }
    assert_eq!(parmap!(wide, 0..3), [0, 1 << 40, 2 << 40]);
    #[allow(clippy::reversed_empty_ranges)]
    let empty = parmap!(|i: i32| i, 5..0);
    assert!(empty.is_empty());
}

#[test]
fn slices_arrays_and_sub_slices() {
    let x = floats(10, 0.0);
    assert_eq!(parmap!(|a: f64| a, &x[2..]), x[2..].to_vec());
    assert_eq!(parmap!(|a: f64| a, x[..3]), x[..3].to_vec());
    assert_eq!(parmap!(|a: i32| a + 1, [1, 2, 3]), [2, 3, 4]);
    let arr = [1u16, 2];
    assert_eq!(parmap!(|a: u16, b: u16| a * b, arr, &arr[1..]), [2, 4]);
    let boxed: Box<[i32]> = vec![5, 6].into_boxed_slice();
    assert_eq!(parmap!(|a: &i32| *a, boxed), [5, 6]);
    let slice: &[i32] = &boxed;
    assert_eq!(parmap!(|a: i32| a, slice), [5, 6]);
    let mut v = vec![1, 2];
    let m: &mut [i32] = &mut v;
    assert_eq!(parmap!(|a: i32| a, m), [1, 2]);
}

#[test]
fn empty_sources_in_every_position_give_an_empty_vec() {
    let calls = AtomicUsize::new(0);
    let f = |a: i32, b: i32, c: i32| {
        calls.fetch_add(1, Ordering::SeqCst);
        a + b + c
    };
    let full = [1, 2];
    let none: [i32; 0] = [];
    assert!(parmap!(f, none, full, full).is_empty());
    assert!(parmap!(f, full, none, full).is_empty());
    assert!(parmap!(f, full, full, none).is_empty());
    assert!(parmap!(f, full, full, &full[2..]).is_empty());
    assert!(parmap!(|i: usize| i, 0..0usize).is_empty());
    let v: Vec<i32> = Vec::new();
    assert!(parmap!(|a: i32| a, v; zip = true).is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(parmap!(f, full, full, full).len(), 8);
}

/// A large element that must never be copied: no `Clone`, and it counts clones if it had one.
struct Image {
    pixels: Vec<u8>,
}

impl Image {
    fn pixels(&self) -> usize {
        self.pixels.len()
    }
}

fn analyze(img: &Image) -> usize {
    img.pixels.iter().map(|&p| usize::from(p)).sum()
}

static CLONES: AtomicUsize = AtomicUsize::new(0);

struct Counted(u64);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.fetch_add(1, Ordering::SeqCst);
        Counted(self.0)
    }
}

#[test]
fn non_copy_elements_are_passed_by_reference_without_a_copy() {
    let images: Vec<Image> = (0..5).map(|i| Image { pixels: vec![i; 100] }).collect();
    assert_eq!(parmap!(analyze, images), [0, 100, 200, 300, 400]);
    assert_eq!(parmap!(Image::pixels, images), [100; 5]);
    let addrs = parmap!(|img: &Image| img as *const Image as usize, images);
    let want: Vec<usize> = images.iter().map(|i| i as *const Image as usize).collect();
    assert_eq!(addrs, want);
    // Unannotated parameters get the reference too.
    let addrs = parmap!(|img| std::ptr::from_ref::<Image>(img) as usize, images);
    assert_eq!(addrs, want);

    let counted: Vec<Counted> = (0..10).map(Counted).collect();
    let before = CLONES.load(Ordering::SeqCst);
    let got = parmap!(|c: &Counted, d: &Counted| c.0 * d.0, counted, counted; engine = "threads");
    assert_eq!(got.len(), 100);
    let arg = Counted(7);
    let got = parmap!(|c: &Counted, k: &Counted| c.0 + k.0, counted; args = (arg));
    assert_eq!(got[3], 10);
    assert_eq!(CLONES.load(Ordering::SeqCst), before);
}

#[test]
fn elements_convert_to_str_and_slices() {
    let names = vec!["ab".to_owned(), "cde".to_owned()];
    fn len(s: &str) -> usize {
        s.len()
    }
    assert_eq!(parmap!(len, names), [2, 3]);
    let rows = vec![vec![1.0, 2.0], vec![3.0]];
    fn sum(r: &[f64]) -> f64 {
        r.iter().sum()
    }
    assert_eq!(parmap!(sum, rows), [3.0, 3.0]);
}

#[test]
fn every_kind_of_function() {
    let x = floats(6, 0.3);
    let y = floats(4, 1.3);
    let want: Vec<f64> = x.iter().flat_map(|a| y.iter().map(move |b| a.hypot(*b))).collect();
    // Paths.
    assert_eq!(parmap!(hypot, x, y), want);
    assert_eq!(parmap!(f64::hypot, x, y), want);
    // Closures: annotated, unannotated, partly annotated, capturing, `move`, in a variable.
    assert_eq!(parmap!(|a: f64, b: f64| a.hypot(b), x, y), want);
    assert_eq!(parmap!(|a, b| f64::hypot(*a, *b), x, y), want);
    assert_eq!(parmap!(|a: f64, b| a.hypot(*b), x, y), want);
    let scale = 2.0;
    let got = parmap!(|a, b| a * b * scale, x, y);
    assert_eq!(got[5], x[1] * y[1] * scale);
    let owned = String::from("ab");
    let got = parmap!(move |i: usize| owned.len() as f64 * scale + i as f64, 0..2usize);
    assert_eq!(got, [4.0, 5.0]);
    let f = |a: f64, b: f64| a.hypot(b);
    assert_eq!(parmap!(f, x, y), want);
    assert_eq!(parmap!(f, x, y), want, "a closure variable can be used twice");
    let boxed: Box<dyn Fn(f64) -> f64 + Sync> = Box::new(|a| a * 3.0);
    assert_eq!(parmap!(boxed, x)[1], x[1] * 3.0);
    // Evaluated once.
    let calls = AtomicUsize::new(0);
    let make = || {
        calls.fetch_add(1, Ordering::SeqCst);
        hypot
    };
    assert_eq!(parmap!(make(), x, y), want);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn unannotated_closures_with_arithmetic() {
    let x = vec![1.5, 2.0];
    let y = vec![3.0, 4.0];
    assert_eq!(parmap!(|a, b| a * b, x, y), [4.5, 6.0, 6.0, 8.0]);
    assert_eq!(parmap!(|i| i * 2, 0..10).iter().sum::<i32>(), 90);
}

/// A float computation sensitive to evaluation order.
fn mix(a: f64, b: f64, i: u32) -> f64 {
    (a.sqrt() * b).sin() + a / (b.abs() + 1.0) + f64::from(i).ln_1p()
}

#[test]
fn every_engine_worker_count_and_chunk_gives_bit_identical_results() {
    let x: Vec<f64> = floats(37, 0.0).iter().map(|a| a.abs()).collect();
    let y = floats(11, 0.7);
    let serial = parmap!(mix, x, y, 0..5u32; engine = "serial");
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<u64>>();
    for &engine in ENGINES {
        for &workers in WORKERS {
            for chunk in [1usize, 7, 64, 10_000] {
                let got =
                    parmap!(mix, x, y, 0..5u32; engine = engine, workers = workers, chunk = chunk);
                assert_eq!(bits(&got), bits(&serial), "{engine} workers={workers} chunk={chunk}");
                let zipped = parmap!(
                    |a: f64, b: f64| mix(a, b, 1), x, &x[..];
                    engine = engine, workers = workers, chunk = chunk, zip = true
                );
                let want: Vec<f64> = x.iter().map(|&a| mix(a, a, 1)).collect();
                assert_eq!(bits(&zipped), bits(&want));
            }
        }
    }
}

fn fragile(a: i32, b: i32) -> i32 {
    assert!(!(a == 2 && b == 1), "boom at {a} {b}");
    a * 10 + b
}

#[test]
fn collect_returns_one_result_per_item() {
    let xs = [0, 1, 2, 3];
    let ys = [0, 1, 2];
    for &engine in ENGINES {
        for &workers in WORKERS {
            let got: Vec<Result<i32, TaskError>> =
                parmap!(fragile, xs, ys; on_error = "collect", engine = engine, workers = workers);
            assert_eq!(got.len(), 12);
            for (i, r) in got.iter().enumerate() {
                let (a, b) = (xs[i / 3], ys[i % 3]);
                if (a, b) == (2, 1) {
                    let e = r.as_ref().unwrap_err();
                    assert_eq!(e.index(), 7);
                    assert_eq!(e.indices(), [2, 1]);
                    assert_eq!(e.cause(), &Cause::Panic("boom at 2 1".into()));
                    let text = e.to_string();
                    assert!(text.contains("boom at 2 1"), "{text}");
                    assert!(text.contains("item 7 (source 0 index 2, source 1 index 1)"), "{text}");
                } else {
                    assert_eq!(r, &Ok(a * 10 + b));
                }
            }
        }
    }
}

#[test]
fn fail_names_the_item_and_carries_the_message() {
    let xs = [0, 1, 2, 3];
    let ys = [0, 1, 2];
    let msg = panic_message(|| {
        let _ = parmap!(fragile, xs, ys; engine = "threads", workers = 2);
    });
    assert!(msg.contains("item 7 (source 0 index 2, source 1 index 1)"), "{msg}");
    assert!(msg.contains("boom at 2 1"), "{msg}");
    let msg = panic_message(|| {
        let _ = parmap!(fragile, xs, ys; engine = "threads", workers = 2, on_error = "fail");
    });
    assert!(msg.contains("boom at 2 1"), "{msg}");
    // The serial engine re-raises the item's own panic.
    let msg = panic_message(|| {
        let _ = parmap!(fragile, xs, ys; engine = "serial");
    });
    assert_eq!(msg, "boom at 2 1");
}

#[test]
fn worker_id_is_set_inside_only() {
    assert_eq!(worker_id(), None);
    for &engine in ENGINES {
        for &workers in WORKERS {
            let ids =
                parmap!(|_i: usize| worker_id(), 0..200usize; engine = engine, workers = workers);
            assert!(
                ids.iter().all(|w| matches!(w, Some(w) if *w < workers)),
                "{engine} {workers}: {ids:?}"
            );
        }
    }
    assert_eq!(worker_id(), None);
    let ids = parmap!(|_i: usize| worker_id(), 0..10usize; engine = Engine::Serial);
    assert!(ids.iter().all(|w| *w == Some(0)));
}

#[test]
fn runtime_options_are_expressions() {
    let x = floats(100, 0.0);
    let engine = Engine::Fork;
    let workers = 3;
    let got = parmap!(|a: f64| a * 2.0, x; engine = engine, workers = workers, chunk = x.len() / 7,
                      timeout = std::time::Duration::from_secs(60), progress = false);
    assert_eq!(got[99], x[99] * 2.0);
    let got = parmap!(|a: f64| a * 2.0, x; engine = Engine::Threads, workers = workers,
                      chunk = x.len() / 7, progress = false);
    assert_eq!(got[99], x[99] * 2.0);
    let got = parmap!(|a: f64| a * 2.0, x; timeout = "1h", progress = false, crate = ::parfor,
                      engine = "fork");
    assert_eq!(got[0], x[0] * 2.0);
}

#[test]
fn nested_calls() {
    let got =
        parmap!(|i: usize| parmap!(|j: usize| i * j, 0..3usize).iter().sum::<usize>(), 0..4usize);
    assert_eq!(got, [0, 3, 6, 9]);
}

#[test]
fn patterns_and_nested_references() {
    let pairs = vec![(1.0, 2.0), (3.0, 4.0)];
    assert_eq!(parmap!(|(a, b): (f64, f64)| a + b, pairs), [3.0, 7.0]);
    assert_eq!(parmap!(|&(a, b)| a * b, pairs), [2.0, 12.0]);
    let words = vec!["ab", "c"];
    fn len(s: &str) -> usize {
        s.len()
    }
    assert_eq!(parmap!(len, words), [2, 1]);
    assert_eq!(parmap!(|w: &str, i: usize| w.len() * i, words, 1..3usize), [2, 4, 1, 2]);
}

#[test]
fn user_names_like_the_temporaries_are_the_users() {
    #![allow(clippy::used_underscore_binding)]
    let __parfor_f = 100.0;
    let __parfor_s0 = [1.0, 2.0];
    let __parfor_i0 = 7.0;
    let got = parmap!(|a: f64| a + __parfor_f + __parfor_i0, __parfor_s0);
    assert_eq!(got, [108.0, 109.0]);
}
