//! `parmap_iter!`: ordered and unordered streams, windows, failures, flattening, lazy and
//! custom sources, early drops, on every engine.

mod common;

use common::ENGINES;
use parfor::{Engine, Source, TaskError, parmap, parmap_iter};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

fn f(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

/// Runs `body` on another thread and fails (instead of hanging) if it has not finished
/// after a generous deadline.
fn bounded<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("did not finish within 120 s: hung"),
    }
}

#[test]
fn ordered_streams_equal_parmap_on_every_engine_worker_count_and_window() {
    let want = parmap!(f, 0..3000u64);
    for &engine in ENGINES {
        for workers in [1, 2, 3, 8] {
            let windows: &[usize] =
                if engine == Engine::Fork { &[700, 100_000] } else { &[1, 7, 64, 100_000] };
            for &window in windows {
                let got: Vec<u64> = parmap_iter!(
                    f, 0..3000u64; engine = engine, workers = workers, window = window
                )
                .collect();
                assert_eq!(got, want, "{engine:?} workers={workers} window={window}");
            }
        }
        // The default window, and a fixed chunk.
        let got: Vec<u64> = parmap_iter!(f, 0..3000u64; engine = engine).collect();
        assert_eq!(got, want, "{engine:?}");
        let got: Vec<u64> =
            parmap_iter!(f, 0..3000u64; engine = engine, chunk = 5, workers = 3).collect();
        assert_eq!(got, want, "{engine:?} chunk");
    }
}

#[test]
fn floating_point_results_equal_parmap_bit_for_bit_over_products_and_zips() {
    let x: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.37 - 3.0).collect();
    let y: Vec<f64> = (0..25).map(|i| f64::from(i).sin()).collect();
    let g = |a: f64, b: f64| (a * b).exp().ln_1p() / (1.0 + a * a);
    let want = parmap!(g, x, y);
    let want_zip = parmap!(g, x, x; zip = true);
    for &engine in ENGINES {
        let (x, y) = (&x, &y);
        let (got, got_zip): (Vec<f64>, Vec<f64>) = parfor::scope(|s| {
            let a = parmap_iter!(g, x, y; engine = engine, workers = 3, scope = s).collect();
            let b = parmap_iter!(g, x, x; zip = true, engine = engine, scope = s).collect();
            (a, b)
        });
        let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "{engine:?}");
        assert_eq!(bits(&got_zip), bits(&want_zip), "{engine:?}");
    }
}

#[test]
fn unordered_streams_yield_every_item_once_with_its_index() {
    let want = parmap!(f, 0..2000u64);
    for &engine in ENGINES {
        let mut got: Vec<(usize, u64)> =
            parmap_iter!(f, 0..2000u64; ordered = false, engine = engine, workers = 4).collect();
        got.sort();
        assert_eq!(got.len(), want.len());
        for (k, (i, v)) in got.into_iter().enumerate() {
            assert_eq!((i, v), (k, want[k]), "{engine:?}");
        }
    }
}

#[test]
fn the_window_bounds_the_items_dispatched_and_not_consumed() {
    for window in [1usize, 3, 8, 50] {
        let started = AtomicUsize::new(0);
        let started = &started;
        parfor::scope(|s| {
            let it = parmap_iter!(
                |i: u32| {
                    started.fetch_add(1, Ordering::SeqCst);
                    i
                },
                0..2000u32;
                engine = "threads", workers = 4, window = window, scope = s
            );
            for (consumed, i) in it.enumerate() {
                assert_eq!(i as usize, consumed);
                // Items of the batch being consumed count as not consumed.
                let running = started.load(Ordering::SeqCst);
                assert!(
                    running <= consumed + window,
                    "window {window}: {running} items started after {consumed} were consumed"
                );
            }
        });
    }
}

#[test]
fn a_lazy_source_is_pulled_only_as_the_window_allows() {
    for &engine in &[Engine::Serial, Engine::Threads] {
        let pulled = AtomicUsize::new(0);
        let pulled = &pulled;
        let source = (0..1_000_000u64).inspect(|_| {
            pulled.fetch_add(1, Ordering::SeqCst);
        });
        // A block moves the iterator in (a variable alone would be borrowed).
        let first: Vec<u64> = parfor::scope(|s| {
            parmap_iter!(f, { source }; window = 8, engine = engine, workers = 4, scope = s)
                .take(5)
                .collect()
        });
        assert_eq!(first, (0..5).map(f).collect::<Vec<_>>());
        let n = pulled.load(Ordering::SeqCst);
        assert!(n <= 5 + 8, "{engine:?}: {n} items pulled for 5 results with window = 8");
    }
}

#[test]
fn lazy_sources_give_the_same_results_as_collected_ones_on_every_engine() {
    let text: String = (0..3000).map(|i| format!("line {i} {}\n", "x".repeat(i % 17))).collect();
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let want = parmap!(|l: &String| l.len() * 3, lines);
    for &engine in ENGINES {
        let got: Vec<usize> = parmap_iter!(
            |l: String| l.len() * 3, text.lines().map(str::to_owned); engine = engine, workers = 3
        )
        .collect();
        assert_eq!(got, want, "{engine:?} parmap_iter!");
        let got: Vec<usize> =
            parmap!(|l: String| l.len() * 3, text.lines().map(str::to_owned); engine = engine);
        assert_eq!(got, want, "{engine:?} parmap!");
        // A channel is a lazy source too.
        let (tx, rx) = mpsc::channel();
        for l in &lines {
            tx.send(l.clone()).unwrap();
        }
        drop(tx);
        let got = parmap!(|l: String| l.len() * 3, rx.into_iter(); engine = engine);
        assert_eq!(got, want, "{engine:?} channel");
    }
}

#[test]
fn closures_with_unannotated_parameters_get_lazy_items_as_they_come() {
    let words = ["a", "bb", "ccc"];
    let got = parmap!(|w| w.len(), words.iter().copied());
    assert_eq!(got, [1, 2, 3]);
    let got: Vec<usize> =
        parmap_iter!(|s| s.len(), vec!["xy".to_string(), "z".into()].into_iter()).collect();
    assert_eq!(got, [2, 1]);
}

fn risky(i: u32) -> u32 {
    assert!(i % 10 != 7, "bad item {i}");
    i * 2
}

#[test]
fn collected_failures_arrive_in_place() {
    for &engine in ENGINES {
        let got: Vec<Result<u32, TaskError>> =
            parmap_iter!(risky, 0..40u32; on_error = "collect", engine = engine, workers = 3)
                .collect();
        assert_eq!(got.len(), 40);
        for (i, r) in got.iter().enumerate() {
            match r {
                Ok(v) => assert_eq!(*v, i as u32 * 2),
                Err(e) => {
                    assert_eq!(i % 10, 7, "{engine:?}");
                    assert_eq!(e.index(), i);
                    assert!(e.to_string().contains(&format!("bad item {i}")), "{e}");
                }
            }
        }
        let mut tagged: Vec<(usize, Result<u32, TaskError>)> = parmap_iter!(
            risky, 0..40u32; on_error = "collect", ordered = false, engine = engine
        )
        .collect();
        tagged.sort_by_key(|t| t.0);
        let plain: Vec<_> = tagged.into_iter().map(|t| t.1).collect();
        assert_eq!(plain, got, "{engine:?}");
    }
}

/// Fails at the edges of the 256-item runs a batch is written in, and inside them; yields a
/// `String` so that a value lost or written twice shows (and is dropped under the test).
fn risky_text(i: usize) -> String {
    assert!(![0, 255, 256, 511, 700, 1023, 1024, 2999].contains(&i), "bad item {i}");
    format!("v{i}")
}

#[test]
fn collected_failures_inside_large_batches_name_their_items() {
    for &engine in ENGINES {
        for chunk in [1000, 3000] {
            let got: Vec<Result<String, TaskError>> = parmap_iter!(
                risky_text, 0..3000usize; on_error = "collect", chunk = chunk, engine = engine
            )
            .collect();
            assert_eq!(got.len(), 3000, "{engine:?}");
            for (i, r) in got.iter().enumerate() {
                match r {
                    Ok(v) => assert_eq!(*v, format!("v{i}"), "{engine:?}, chunk {chunk}"),
                    Err(e) => {
                        assert_eq!(e.index(), i, "{engine:?}, chunk {chunk}");
                        assert!(e.to_string().contains(&format!("bad item {i}")), "{e}");
                    }
                }
            }
            let failed: Vec<usize> =
                got.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
            assert_eq!(failed, [0, 255, 256, 511, 700, 1023, 1024, 2999], "{engine:?}");
        }
    }
}

#[test]
fn fail_mode_yields_the_items_before_the_failure_then_panics_naming_it() {
    for &engine in ENGINES {
        let seen = std::sync::Mutex::new(Vec::new());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for v in parmap_iter!(risky, 0..40u32; engine = engine, workers = 3) {
                seen.lock().unwrap().push(v);
            }
        }));
        let err = r.expect_err("the stream fails at item 7");
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(msg.contains("bad item 7"), "{engine:?}: {msg}");
        assert_eq!(*seen.lock().unwrap(), [0, 2, 4, 6, 8, 10, 12], "{engine:?}");
    }
}

#[test]
fn folding_a_stream_yields_what_next_yields_and_fails_as_it_does() {
    let want = parmap!(f, 0..5000u64);
    for &engine in ENGINES {
        // `fold` after some `next()`s: the buffered rest of the batch first, then every batch
        // (several split points, so that some fall inside a batch).
        for k in [1, 2, 5, 6, 100, 1001] {
            let mut it = parmap_iter!(f, 0..5000u64; engine = engine, workers = 2, window = 300);
            let mut got: Vec<u64> = (0..k).map_while(|_| it.next()).collect();
            got = it.fold(got, |mut v, x| {
                v.push(x);
                v
            });
            // Not `assert_eq!`: the values are thousands of numbers.
            let first_wrong = got.iter().zip(&want).position(|(a, b)| a != b);
            assert!(
                got.len() == want.len() && first_wrong.is_none(),
                "{engine:?} after {k}: {} values, first wrong at {first_wrong:?}",
                got.len()
            );
        }
        let sum = parmap_iter!(f, 0..5000u64; engine = engine).fold(0u64, u64::wrapping_add);
        assert_eq!(sum, want.iter().fold(0u64, |s, x| s.wrapping_add(*x)), "{engine:?}");

        // Fail mode through `for_each` (which folds): the items before the failure, then the
        // panic naming it.
        let seen = std::sync::Mutex::new(Vec::new());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parmap_iter!(risky, 0..40u32; engine = engine, workers = 3)
                .for_each(|v| seen.lock().unwrap().push(v));
        }));
        let err = r.expect_err("the stream fails at item 7");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("bad item 7"), "{engine:?}: {msg}");
        assert_eq!(*seen.lock().unwrap(), [0, 2, 4, 6, 8, 10, 12], "{engine:?}");
    }
}

#[test]
fn flattened_streams_yield_every_element_in_item_order() {
    let want: Vec<u32> = (0..60u32).flat_map(|i| (0..i % 5).map(move |k| i * 10 + k)).collect();
    for &engine in ENGINES {
        let got: Vec<u32> = parmap_iter!(
            |i: u32| (0..i % 5).map(move |k| i * 10 + k).collect::<Vec<u32>>(),
            0..60u32;
            flatten = true, engine = engine, workers = 3, window = 9
        )
        .collect();
        assert_eq!(got, want, "{engine:?}");
        let mut tagged: Vec<(usize, u32)> = parmap_iter!(
            |i: u32| vec![i; (i % 3) as usize],
            0..60u32;
            flatten = true, ordered = false, engine = engine
        )
        .collect();
        tagged.sort();
        let want: Vec<(usize, u32)> =
            (0..60u32).flat_map(|i| vec![(i as usize, i); (i % 3) as usize]).collect();
        assert_eq!(tagged, want, "{engine:?}");
    }
}

#[test]
fn a_failed_flattened_item_yields_one_error_and_none_of_its_elements() {
    let got: Vec<Result<u32, TaskError>> = parmap_iter!(
        |i: u32| (0..3).map(move |k| {
            assert!(!(i == 2 && k == 1), "half way");
            i * 10 + k
        }),
        0..4u32;
        flatten = true, on_error = "collect", engine = "threads", workers = 2
    )
    .collect();
    let oks: Vec<u32> = got.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(oks, [0, 1, 2, 10, 11, 12, 30, 31, 32]);
    assert_eq!(got.len(), 10);
    assert_eq!(got[6].as_ref().unwrap_err().index(), 2);
}

#[test]
fn dropping_the_iterator_early_stops_every_worker() {
    for &engine in &[Engine::Serial, Engine::Threads] {
        let ran = bounded(move || {
            static RAN: AtomicUsize = AtomicUsize::new(0);
            RAN.store(0, Ordering::SeqCst);
            let mut it = parmap_iter!(
                |i: u64| {
                    RAN.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_micros(50));
                    i
                },
                0..1_000_000u64;
                engine = engine, workers = 4, window = 16
            );
            assert_eq!(it.by_ref().take(3).collect::<Vec<_>>(), [0, 1, 2]);
            drop(it);
            // The drop returned: every worker has ended, so nothing runs any more.
            let after_drop = RAN.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            assert_eq!(RAN.load(Ordering::SeqCst), after_drop, "{engine:?}: items ran after drop");
            after_drop
        });
        assert!(ran <= 3 + 16, "{engine:?}: {ran} items ran for 3 results with window = 16");
    }
}

#[test]
fn dropping_the_iterator_stops_workers_inside_a_long_batch() {
    // Batches of 1000 items of 100 us: a worker must stop after its current item, not at the
    // end of its batch or of some run of items inside it.
    let (before, after) = bounded(move || {
        static RAN: AtomicUsize = AtomicUsize::new(0);
        RAN.store(0, Ordering::SeqCst);
        let mut it = parmap_iter!(
            |i: u64| {
                RAN.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(100));
                i
            },
            0..100_000u64;
            engine = "threads", workers = 2, chunk = 1000
        );
        assert_eq!(it.next(), Some(0));
        let before = RAN.load(Ordering::SeqCst);
        drop(it);
        (before, RAN.load(Ordering::SeqCst))
    });
    // Each of the 2 workers finishes the item it runs (a few more if this thread is
    // descheduled between the count and the drop).
    assert!(after - before <= 10, "{} items ran after the drop began", after - before);
}

#[test]
fn a_leaked_stream_in_a_scope_is_stopped_when_the_scope_ends() {
    let data: Vec<u64> = (0..100_000).collect();
    let ran = bounded(move || {
        let ran = AtomicUsize::new(0);
        parfor::scope(|s| {
            let mut it = parmap_iter!(
                |x: &u64| {
                    ran.fetch_add(1, Ordering::SeqCst);
                    *x
                },
                data;
                engine = "threads", workers = 3, window = 32, scope = s
            );
            assert_eq!(it.next(), Some(0));
            std::mem::forget(it);
        });
        ran.load(Ordering::SeqCst)
    });
    assert!(ran <= 1 + 32, "{ran} items ran");
}

#[test]
fn dropping_a_lazy_stream_stops_pulling() {
    let pulled = bounded(|| {
        let pulled = AtomicUsize::new(0);
        let p = &pulled;
        parfor::scope(|s| {
            let it = parmap_iter!(
                |x: u64| x + 1,
                (0..).inspect(|_| {
                    p.fetch_add(1, Ordering::SeqCst);
                });
                window = 10, workers = 2, engine = "threads", scope = s
            );
            assert_eq!(it.take(3).collect::<Vec<u64>>(), [1, 2, 3]);
        });
        pulled.load(Ordering::SeqCst)
    });
    assert!(pulled <= 3 + 10, "{pulled} pulled from an endless source");
}

/// A user collection: every other element of a vector.
struct Evens(Vec<f64>);

impl Source for Evens {
    type Item = f64;
    fn len(&self) -> usize {
        self.0.len().div_ceil(2)
    }
    fn get(&self, i: usize) -> &f64 {
        &self.0[2 * i]
    }
}

#[test]
fn custom_sources_work_alone_in_products_and_streamed_on_every_engine() {
    let e = Evens((0..21).map(f64::from).collect());
    let want: Vec<f64> = (0..21).step_by(2).map(|i| f64::from(i) * 1.5).collect();
    for &engine in ENGINES {
        assert_eq!(parmap!(|x: f64| x * 1.5, e; engine = engine), want, "{engine:?}");
        let by_ref = parmap!(|x: &f64| *x * 1.5, e; engine = engine);
        assert_eq!(by_ref, want);
        let grid = parmap!(|x: f64, k: u32| x + f64::from(k), e, 0..3u32; engine = engine);
        assert_eq!(grid.len(), 33);
        assert_eq!(grid[4], 2.0 + 1.0);
        let e = &e;
        let got: Vec<f64> = parfor::scope(|s| {
            parmap_iter!(|x: f64| x * 1.5, e; engine = engine, scope = s).collect()
        });
        assert_eq!(got, want, "{engine:?} stream");
    }
}

#[test]
fn args_and_progress_work_as_in_parmap() {
    let k = 3u64;
    let want = parmap!(|i: u64, k: u64| i * k, 0..100u64; args = (k,));
    let got: Vec<u64> =
        parmap_iter!(|i: u64, k: u64| i * k, 0..100u64; args = (k,), progress = true).collect();
    assert_eq!(got, want);
}

#[test]
fn empty_sources_give_empty_streams() {
    for &engine in ENGINES {
        assert_eq!(parmap_iter!(f, 0..0u64; engine = engine).count(), 0);
        assert_eq!(parmap_iter!(f, std::iter::empty::<u64>(); engine = engine).count(), 0);
        let none: Vec<u64> = parmap!(f, std::iter::empty::<u64>(); engine = engine);
        assert!(none.is_empty());
    }
}

#[test]
fn the_stream_type_can_be_named_and_stored() {
    struct Holder {
        it: parfor::ParIter<'static, u64>,
    }
    let mut h = Holder { it: parmap_iter!(f, 0..10u64; workers = 2) };
    assert_eq!(h.it.next(), Some(f(0)));
    assert_eq!(h.it.count(), 9);
}

#[cfg(unix)]
#[test]
fn a_fork_worker_that_dies_fails_its_item_and_the_stream_goes_on() {
    let got: Vec<Result<u32, TaskError>> = parmap_iter!(
        |i: u32| {
            if i == 5 {
                std::process::abort();
            }
            i + 1
        },
        0..12u32;
        engine = "fork", workers = 2, on_error = "collect"
    )
    .collect();
    assert_eq!(got.len(), 12);
    for (i, r) in got.iter().enumerate() {
        if i == 5 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.index(), 5);
            assert!(matches!(e.cause(), parfor::Cause::Signal { .. }), "{e}");
        } else {
            assert_eq!(r, &Ok(i as u32 + 1));
        }
    }
}

#[cfg(unix)]
#[test]
fn a_fork_stream_enforces_its_timeout() {
    let got: Vec<Result<u32, TaskError>> = parmap_iter!(
        |i: u32| {
            if i == 2 {
                // Far longer than the timeout: the worker is killed long before.
                std::thread::sleep(Duration::from_secs(600));
            }
            i
        },
        0..6u32;
        engine = "fork", workers = 2, on_error = "collect", timeout = "200ms"
    )
    .collect();
    assert!(matches!(got[2].as_ref().unwrap_err().cause(), parfor::Cause::Timeout(_)));
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 5);
}

#[test]
fn a_timeout_on_the_threads_engine_is_refused_not_ignored() {
    let r = std::panic::catch_unwind(|| {
        parmap_iter!(|i: u32| i, 0..4u32; engine = Engine::Threads, timeout = "1s").count()
    });
    assert!(r.is_err());
}

#[test]
fn a_slice_iterator_keeps_random_access() {
    let v: Vec<u64> = (0..500).collect();
    let want = parmap!(|x: &u64| f(*x), v);
    assert_eq!(parmap!(|x: &u64| f(*x), v.iter()), want);
    let grid = parmap!(|x: &u64, k: u64| f(*x) ^ k, v.iter(), 0..3u64);
    assert_eq!(grid.len(), 1500);
    assert_eq!(grid[4], f(1) ^ 1);
    let got: Vec<u64> =
        parfor::scope(|s| parmap_iter!(|x: &u64| f(*x), v.iter(); scope = s).collect());
    assert_eq!(got, want);
}
