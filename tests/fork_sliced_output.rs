//! Sliced outputs of `#[parfor]` loops on the fork engine: workers write the caller's
//! elements themselves (`process_vm_writev` on Linux, else through the pipe), at any start
//! and end within pages, and the caller's memory stays its own afterwards.
#![cfg(unix)]

use parfor::{parfor, parmap};

#[parfor]
fn triple(x: &[f64], out: &mut [f64]) {
    #[parfor(engine = "fork", workers = 2, chunk = 1000)]
    for i in 0..x.len() {
        out[i] = 3.0 * x[i];
    }
}

/// Writes every third element only: the others keep what the caller had there.
#[parfor]
fn every_third(out: &mut [u8], stamp: u8) {
    #[parfor(engine = "fork", workers = 2, chunk = 777)]
    for i in 0..out.len() {
        if i % 3 == 0 {
            out[i] = stamp.wrapping_add(i as u8);
        }
    }
}

/// Writes all but the first and last element.
#[parfor]
fn rgb(out: &mut [[u8; 3]]) {
    #[parfor(engine = "fork", workers = 2, chunk = 500)]
    for i in 1..out.len() - 1 {
        out[i] = [i as u8, (i >> 8) as u8, 7];
    }
}

#[test]
fn outputs_at_unaligned_starts_and_ends() {
    let n = 300_000; // several pages, and partial pages at both ends of every sub-slice
    let x: Vec<f64> = (0..n).map(|i| i as f64 * 0.5 - 7.0).collect();
    for (start, end) in [(0, n), (1, n - 1), (3, n - 5), (511, n - 1000), (4096 / 8 + 1, n)] {
        let mut out = vec![-1.0; n];
        triple(&x[start..end], &mut out[start..end]);
        for (i, &o) in out.iter().enumerate() {
            let want = if (start..end).contains(&i) { 3.0 * x[i] } else { -1.0 };
            assert_eq!(o.to_bits(), want.to_bits(), "element {i} of {start}..{end}");
        }
    }
    for (start, end) in [(0, 200_001), (5, 200_000), (4093, 150_007)] {
        let mut bytes: Vec<u8> = (0..200_001u32).map(|i| (i * 7) as u8).collect();
        let before = bytes.clone();
        every_third(&mut bytes[start..end], 11);
        for (i, &b) in bytes.iter().enumerate() {
            let inside = (start..end).contains(&i) && (i - start) % 3 == 0;
            let want = if inside { 11u8.wrapping_add((i - start) as u8) } else { before[i] };
            assert_eq!(b, want, "byte {i} of {start}..{end}");
        }
    }
    // Elements of 3 bytes straddle page boundaries.
    let mut px = vec![[9u8; 3]; 100_000];
    rgb(&mut px);
    assert_eq!((px[0], px[99_999]), ([9; 3], [9; 3]));
    for (i, p) in px.iter().enumerate().take(99_999).skip(1) {
        assert_eq!(*p, [i as u8, (i >> 8) as u8, 7], "pixel {i}");
    }
}

/// After a fork call wrote a sliced output, that memory is the caller's own: a later fork
/// call's worker writing it changes only its copy.
#[test]
fn a_later_call_cannot_write_the_former_output() {
    let n = 200_000;
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let mut out = vec![0.0; n];
    triple(&x, &mut out);
    let want = out.clone();
    let at = out.as_mut_ptr() as usize;
    let wrote: Vec<usize> = parmap!(
        |k: usize| {
            // SAFETY: `at..at + n` is this worker's copy of `out` (the caller does not touch
            // it during the call, and a worker's writes to ordinary memory stay in the worker).
            unsafe {
                let p = at as *mut f64;
                for i in (k..n).step_by(512) {
                    *p.add(i) = -5.0;
                }
            }
            k
        },
        0..8usize;
        engine = "fork", workers = 2, chunk = 1
    );
    assert_eq!(wrote, (0..8).collect::<Vec<_>>());
    assert!(out == want, "a worker of a later call changed the caller's memory");
}

/// Each element takes a while (a range of 64, a few milliseconds), and item `fail_at` panics: the other worker is still writing
/// its ranges when the call fails.
#[parfor]
fn slow_fill(out: &mut [u64], fail_at: usize) {
    #[parfor(engine = "fork", workers = 2, chunk = 64)]
    for i in 0..out.len() {
        assert!(i != fail_at, "item {i} fails");
        let mut v = i as u64;
        for _ in 0..50_000 {
            v = std::hint::black_box(v.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        out[i] = v;
    }
}

/// A call that fails while another worker is between writing ranges into the caller's slice
/// returns only once no worker can write there any more: memory the caller reuses right after
/// the failure keeps what the caller put in it.
#[test]
fn a_failed_call_leaves_no_worker_writing_the_output() {
    for round in 0..5 {
        let mut out = vec![0u64; 20_000];
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            slow_fill(&mut out, 200 + round * 100);
        }));
        let msg = failed.expect_err("the call should fail");
        let msg = msg.downcast_ref::<String>().map(String::as_str).unwrap_or_default();
        assert!(msg.contains("fails"), "round {round}: {msg}");
        out.fill(u64::MAX);
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(out.iter().all(|&v| v == u64::MAX), "round {round}: a worker wrote after the call");
    }
}

/// Two threads call fork loops with sliced outputs at once, many times: each call's workers
/// write their own call's output, never the other's.
#[test]
fn concurrent_calls_write_only_their_own_outputs() {
    let n = 50_000;
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    std::thread::scope(|s| {
        for t in 0..2u32 {
            let x = &x;
            s.spawn(move || {
                for round in 0..10u32 {
                    let scale = f64::from(t * 100 + round);
                    let xs: Vec<f64> = x.iter().map(|v| v + scale).collect();
                    let mut out = vec![0.0; n];
                    triple(&xs, &mut out);
                    for (i, &o) in out.iter().enumerate() {
                        assert_eq!(o, 3.0 * xs[i], "thread {t} round {round} element {i}");
                    }
                }
            });
        }
    });
}
