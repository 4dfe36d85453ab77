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
