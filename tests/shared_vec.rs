//! File-backed `SharedVec`s on every engine: a `#[parfor]` loop writes a buffer made by the
//! (unsafe) `SharedVec::create`, and `SharedVec::open_readonly` reads back exactly what was
//! written, also as the read-only input of a fork call.
#![cfg(unix)]

mod common;

use parfor::{Engine, ReadOnlySharedVec, SharedVec, parfor, parmap};
use std::path::PathBuf;

/// A path in the temporary directory that no other test (or test process) uses.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("parfor-it-{name}-{}.bin", std::process::id()))
}

#[parfor]
fn cubes(out: &mut [i64], engine: Engine) {
    #[parfor(engine = engine, workers = 2, chunk = 7)]
    for i in 0..out.len() {
        let x = i as i64 - 50;
        out[i] = x * x * x;
    }
}

#[test]
fn read_only_open_reads_what_a_loop_wrote_through_create() {
    let expected: Vec<i64> = (0..200).map(|i| (i - 50) * (i - 50) * (i - 50)).collect();
    for &engine in common::ENGINES {
        let path = temp_path(&format!("cubes-{engine}"));
        {
            // SAFETY: the file is private to this test: nothing else maps, writes or truncates
            // it while `out` lives.
            let mut out = unsafe { SharedVec::<i64>::create(&path, expected.len()) }.unwrap();
            cubes(&mut out, engine);
            assert_eq!(&out[..], &expected[..], "{engine}: the buffer");
        }
        // SAFETY: as above; the writable buffer is gone, and only this reader remains.
        let back: ReadOnlySharedVec<i64> = unsafe { SharedVec::open_readonly(&path) }.unwrap();
        assert_eq!(&back[..], &expected[..], "{engine}: the file, read back read-only");
        drop(back);
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw.len(), expected.len() * 8);
        assert_eq!(raw[8..16], expected[1].to_ne_bytes(), "{engine}: the bytes on disk");
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn read_only_buffer_is_an_input_on_every_engine() {
    let path = temp_path("input");
    let values: Vec<f64> = (0..1000).map(|i| f64::from(i).sqrt()).collect();
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_ne_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    // SAFETY: the file is private to this test, and nothing writes or truncates it while
    // `input` lives.
    let input: ReadOnlySharedVec<f64> = unsafe { SharedVec::open_readonly(&path) }.unwrap();
    let data: &[f64] = &input;
    for &engine in common::ENGINES {
        let got = parmap!(|i: usize| data[i] * 2.0, 0..data.len(); engine = engine, workers = 2);
        let want: Vec<f64> = values.iter().map(|x| x * 2.0).collect();
        assert_eq!(got, want, "{engine}");
    }
    drop(input);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn reopened_writable_buffer_keeps_the_values() {
    let path = temp_path("reopen");
    {
        // SAFETY: the file is private to this test: nothing else maps, writes or truncates it
        // while `v` lives.
        let mut v = unsafe { SharedVec::<u32>::create(&path, 64) }.unwrap();
        cubes_u32(&mut v);
    }
    {
        // SAFETY: as above; the buffer made by `create` is gone.
        let mut v = unsafe { SharedVec::<u32>::open(&path) }.unwrap();
        assert_eq!(v.len(), 64);
        assert_eq!(v[3], 27);
        v[3] = 1;
    }
    // SAFETY: as above; no writable buffer of the file is alive.
    let r = unsafe { SharedVec::<u32>::open_readonly(&path) }.unwrap();
    assert_eq!((r[2], r[3], r[4]), (8, 1, 64));
    drop(r);
    std::fs::remove_file(&path).unwrap();
}

#[parfor(engine = "fork")]
fn cubes_u32(out: &mut [u32]) {
    #[parfor]
    for i in 0..out.len() {
        out[i] = (i * i * i) as u32;
    }
}
