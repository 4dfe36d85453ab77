//! A user's `#[repr(C)]` struct of numbers, with `parfor::Pod` derived (bytemuck's), takes
//! the plain-old-data path: fork results are copied in place, without serde, and it fills a
//! `SharedVec` that fork workers write in place.
#![cfg(unix)]

mod common;

use parfor::{Engine, SharedVec, parfor, parmap};

/// No serde: on the fork engine only the plain-old-data path can carry it.
#[derive(Clone, Copy, Debug, PartialEq, parfor::Pod, parfor::Zeroable)]
#[bytemuck(crate = "parfor::bytemuck")]
#[repr(C)]
struct Particle {
    pos: [f64; 3],
    mass: f32,
    id: u32,
}

fn particle(i: u32) -> Particle {
    let x = f64::from(i);
    Particle { pos: [x, -x, x * 0.5], mass: 1.0 + i as f32, id: i }
}

#[test]
fn derived_pod_results_come_back_from_every_engine() {
    let expected: Vec<Particle> = (0..100).map(particle).collect();
    for &engine in common::ENGINES {
        for &workers in common::WORKERS {
            let got = parmap!(particle, 0..100u32; engine = engine, workers = workers);
            assert_eq!(got, expected, "{engine} with {workers} workers");
        }
    }
}

#[parfor]
fn fill(out: &mut [Particle], engine: Engine) {
    #[parfor(engine = engine, workers = 2, chunk = 9)]
    for i in 0..out.len() {
        out[i] = particle(i as u32);
    }
}

#[test]
fn derived_pod_fills_a_shared_vec_on_every_engine() {
    let expected: Vec<Particle> = (0..50).map(particle).collect();
    for &engine in common::ENGINES {
        let mut out = SharedVec::<Particle>::zeroed(expected.len());
        assert_eq!(out[3], Particle { pos: [0.0; 3], mass: 0.0, id: 0 });
        fill(&mut out, engine);
        assert_eq!(&out[..], &expected[..], "{engine}");
    }
}

/// Zero-sized results (`()` is bytemuck `Pod`) have no bytes to place in shared memory.
#[test]
fn unit_results_on_every_engine() {
    for &engine in common::ENGINES {
        let got: Vec<()> = parmap!(|i: u32| assert!(i < 10), 0..10u32; engine = engine);
        assert_eq!(got.len(), 10, "{engine}");
    }
}
