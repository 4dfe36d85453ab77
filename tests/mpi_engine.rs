//! The mpi engine outside `mpirun` (every build): `Engine::Mpi` and `PARFOR_ENGINE=mpi` name
//! it; without the `mpi` feature a call on it fails naming the feature; with the feature and
//! no launcher, a call runs as one rank and equals the serial engine. (Runs under `mpirun`
//! are in `tests/mpi_spmd.rs`.)

use parfor::{Engine, parmap};
use std::panic::catch_unwind;

fn message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// What a call on `engine` does here: its result, or its panic message.
fn call(engine: Option<Engine>) -> Result<Vec<f64>, String> {
    catch_unwind(|| match engine {
        Some(e) => parmap!(|i: u32| f64::from(i).sqrt(), 0..1000u32; engine = e, chunk = 7),
        None => parmap!(|i: u32| f64::from(i).sqrt(), 0..1000u32; chunk = 7),
    })
    .map_err(message)
}

fn check(engine: Option<Engine>, from: &str) {
    let want: Vec<f64> = (0..1000u32).map(|i| f64::from(i).sqrt()).collect();
    let feature = cfg!(feature = "mpi");
    match call(engine) {
        Ok(v) if feature => assert_eq!(v, want),
        Ok(_) => panic!("the mpi engine ran without the `mpi` feature"),
        Err(msg) if feature => panic!("the mpi engine failed: {msg}"),
        Err(msg) => assert!(msg.contains("`mpi` cargo feature") && msg.contains(from), "{msg}"),
    }
}

#[test]
fn engine_mpi_needs_the_feature_or_runs_as_one_rank() {
    assert_eq!("mpi".parse::<Engine>().unwrap(), Engine::Mpi);
    assert_eq!(Engine::Mpi.to_string(), "mpi");
    check(Some(Engine::Mpi), "its `engine` option");
}

#[test]
fn parfor_engine_mpi_selects_it() {
    if std::env::var_os("PARFOR_MPI_ENGINE_CHILD").is_some() {
        assert_eq!(parfor::default_engine().unwrap(), Engine::Mpi);
        check(None, "PARFOR_ENGINE");
        return;
    }
    // A child process, so the variable changes no other test's engine.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "parfor_engine_mpi_selects_it", "--test-threads=1"])
        .env("PARFOR_ENGINE", "mpi")
        .env("PARFOR_MPI_ENGINE_CHILD", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

#[cfg(feature = "mpi")]
#[test]
fn helpers_without_mpirun_see_one_rank() {
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        return;
    }
    assert_eq!((parfor::mpi::rank(), parfor::mpi::size(), parfor::mpi::is_root()), (0, 1, true));
    let mut v = vec![3u8, 4];
    parfor::mpi::broadcast(&mut v);
    parfor::mpi::barrier();
    assert_eq!(v, [3, 4]);
}
