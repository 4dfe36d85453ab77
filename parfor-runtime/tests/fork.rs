//! The fork engine, driven through the runtime's entry points with plain closures.
#![cfg(unix)]

use parfor_runtime::__private::{
    LoopCall, Options, Probe, Shape, SliceOut, Sliced, Wire, fold, map, try_map,
};
use parfor_runtime::{Cause, Engine, SharedVec};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// `fold` with a per-item body, run the way generated code runs it.
fn fold_items<S: Send>(
    n: usize,
    opts: &Options,
    wire: Option<Wire<S>>,
    outputs: &[&dyn Sliced],
    describe: &dyn Fn(usize) -> String,
    init: impl Fn() -> S + Sync,
    body: impl Fn(&mut S, usize) + Sync,
) -> Vec<S> {
    let call = LoopCall {
        opts,
        per_worker: false,
        wire,
        outputs,
        describe,
        ctx: (),
        init,
        local_init: || (),
    };
    fold(n, call, |s, _, (), range, cursor| {
        for i in range {
            cursor.at(i);
            body(s, i);
        }
    })
}

/// Fork tests count processes, descriptors and mappings of this process: one at a time.
static FORK_MTX: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    FORK_MTX.lock().unwrap_or_else(|e| e.into_inner())
}

fn fork(workers: usize) -> Options {
    Options::new().engine(Engine::Fork).workers(workers)
}

fn serial() -> Options {
    Options::new().engine(Engine::Serial)
}

/// The wire of a concrete type, as the macros pick it (autoref specialization needs the
/// concrete type, so this is a macro rather than a generic function).
macro_rules! wire {
    ($t:ty) => {
        parfor_runtime::__wire_of!(Probe::<$t>::new())
    };
}

/// Asserts that this process has no children left: workers that sent everything are
/// reaped in the background once the kernel has torn them down, so this waits for that, up
/// to a bound far above it (and fails with the children left after it).
fn assert_no_children() {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let kids = children();
        if kids.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "workers or zombies left: {kids:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Children of this process.
fn children() -> Vec<u32> {
    children_of(std::process::id())
}

/// Children of process `me`, from `/proc/*/stat` (field 4 is the parent's pid).
fn children_of(me: u32) -> Vec<u32> {
    let mut kids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // The command name may hold spaces: split after its closing parenthesis.
        let Some(rest) = stat.rsplit_once(')').map(|r| r.1) else { continue };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(me) {
            kids.push(pid);
        }
    }
    kids
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn maps_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

fn value(idx: &[usize]) -> f64 {
    idx.iter()
        .enumerate()
        .fold(0.5, |acc, (k, &i)| (acc + (i as f64 + 1.0).sqrt() * (k as f64 + 1.3)).sin())
}

#[test]
fn map_is_bit_identical_to_serial() {
    let _g = lock();
    fn check<const K: usize>(shape: Shape<K>) {
        let f = |idx: [usize; K]| value(&idx);
        let want = map(shape, &serial(), None, f);
        for chunk in [None, Some(1), Some(3), Some(100)] {
            for workers in [1, 2, 3] {
                let mut opts = fork(workers);
                if let Some(c) = chunk {
                    opts = opts.chunk(c);
                }
                let got = map(shape, &opts, wire!(f64), f);
                let same = got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same && got.len() == want.len(),
                    "{shape:?} chunk {chunk:?} workers {workers}"
                );
            }
        }
    }
    check(Shape::product([7]));
    check(Shape::product([3, 5]));
    check(Shape::product([4, 3, 2]));
    check(Shape::zip([10, 10]));
    check(Shape::product([0, 3]));
}

#[test]
fn map_ships_non_pod_results() {
    let _g = lock();
    let f = |[i, j]: [usize; 2]| format!("{i}:{j}").repeat(i % 3);
    let shape = Shape::product([9, 4]);
    let want = map(shape, &serial(), None, f);
    let got = map(shape, &fork(3).chunk(5), wire!(String), f);
    assert_eq!(got, want);
}

#[test]
fn large_results_do_not_deadlock() {
    let _g = lock();
    // Each block's frame is far bigger than a pipe buffer.
    let f = |[i]: [usize; 1]| vec![i as u64; 20_000];
    let got = map(Shape::product([64]), &fork(2).chunk(16), wire!(Vec<u64>), f);
    assert!(
        got.iter().enumerate().all(|(i, v)| v.len() == 20_000 && v.iter().all(|&x| x == i as u64))
    );
    let g = |[i]: [usize; 1]| i as f64;
    let got = map(Shape::product([3_000_000]), &fork(2), wire!(f64), g);
    assert!(got.iter().enumerate().all(|(i, &x)| x == i as f64));
}

#[test]
fn fold_float_sums_are_bit_identical_to_serial() {
    let _g = lock();
    let describe = |i: usize| format!("i = {i}");
    let body = |s: &mut f64, i: usize| *s += (i as f64 * 0.37).sin() / (i as f64 + 1.0);
    for workers in [1, 2, 3] {
        for chunk in [None, Some(1000)] {
            let (mut opts, mut sopts) = (fork(workers), serial());
            if let Some(c) = chunk {
                opts = opts.chunk(c);
                sopts = sopts.chunk(c);
            }
            let want = fold_items(10_007, &sopts, None, &[], &describe, || 0.0f64, body);
            let got = fold_items(10_007, &opts, wire!(f64), &[], &describe, || 0.0f64, body);
            assert_eq!(got.len(), want.len());
            let sum = |v: &[f64]| v.iter().fold(0.0f64, |a, b| a + b).to_bits();
            assert_eq!(sum(&got), sum(&want), "workers {workers} chunk {chunk:?}");
        }
    }
}

/// `try_map` over 0..40 in blocks of 4 on 2 workers, where item 13 runs `crash`; checks that
/// exactly item 13 fails, with a cause that `check` accepts.
fn collect_one_crash(crash: fn(), check: impl Fn(&Cause) -> bool) {
    let _g = lock();
    let f = |[i]: [usize; 1]| {
        if i == 13 {
            crash();
        }
        i * 10
    };
    let out = try_map(Shape::product([40]), &fork(2).chunk(4), wire!(usize), f);
    assert_eq!(out.len(), 40);
    for (i, r) in out.iter().enumerate() {
        if i == 13 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.index(), 13);
            assert!(check(e.cause()), "unexpected cause {:?}", e.cause());
        } else {
            assert_eq!(r, &Ok(i * 10), "item {i}");
        }
    }
    assert_no_children();
}

#[test]
fn collect_panic() {
    collect_one_crash(|| panic!("boom 13"), |c| *c == Cause::Panic("boom 13".into()));
}

#[test]
fn collect_abort() {
    collect_one_crash(
        || std::process::abort(),
        |c| matches!(c, Cause::Signal { signo, name } if *signo == libc::SIGABRT && name == "SIGABRT"),
    );
}

#[test]
fn collect_segfault() {
    collect_one_crash(
        || {
            // SAFETY: restores the default action and raises the signal in this (worker)
            // process, which the signal kills.
            unsafe {
                libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                libc::raise(libc::SIGSEGV);
            }
        },
        |c| matches!(c, Cause::Signal { name, .. } if name == "SIGSEGV"),
    );
}

#[test]
#[cfg(any(target_os = "linux", target_os = "android"))]
fn collect_real_time_signal() {
    // nix has no name for real-time signals; the cause still says which one.
    collect_one_crash(
        || {
            // SAFETY: raises a real-time signal, whose default action ends this (worker)
            // process; no handler is installed for it.
            unsafe {
                libc::raise(libc::SIGRTMIN() + 3);
            }
        },
        |c| {
            matches!(c, Cause::Signal { signo, name }
                if *signo == libc::SIGRTMIN() + 3 && name == "SIGRTMIN+3")
        },
    );
}

#[test]
fn collect_exit() {
    collect_one_crash(|| std::process::exit(3), |c| *c == Cause::Exit(3));
}

#[test]
fn collect_sigkill() {
    collect_one_crash(
        || {
            // SAFETY: sends a signal to this (worker) process.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        },
        |c| matches!(c, Cause::Signal { signo, name } if *signo == libc::SIGKILL && name == "SIGKILL"),
    );
}

#[test]
fn collect_several_crashes_in_one_block() {
    let _g = lock();
    let f = |[i]: [usize; 1]| {
        if i % 7 == 3 {
            std::process::exit(i as i32);
        }
        i as f64
    };
    let out = try_map(Shape::product([50]), &fork(3).chunk(10), wire!(f64), f);
    for (i, r) in out.iter().enumerate() {
        if i % 7 == 3 {
            assert_eq!(r.as_ref().unwrap_err().cause(), &Cause::Exit(i as i32), "item {i}");
        } else {
            assert_eq!(r, &Ok(i as f64), "item {i}");
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

#[test]
fn fail_mode_panics_naming_the_item() {
    let _g = lock();
    let f = |[i]: [usize; 1]| {
        if i == 17 {
            std::process::exit(3);
        }
        i
    };
    let err = catch_unwind(AssertUnwindSafe(|| {
        map(Shape::product([40]), &fork(2).chunk(4), wire!(usize), f)
    }))
    .unwrap_err();
    let msg = panic_message(err);
    assert!(msg.contains("item 17 failed: worker process exited with code 3"), "{msg}");
    let g = |[i]: [usize; 1]| {
        assert!(i != 5, "five is bad");
        i
    };
    let err = catch_unwind(AssertUnwindSafe(|| {
        map(Shape::product([40]), &fork(2).chunk(4), wire!(usize), g)
    }))
    .unwrap_err();
    let msg = panic_message(err);
    assert!(msg.contains("item 5 failed: panicked: five is bad"), "{msg}");
    let describe = |i: usize| format!("i = {i}");
    let err = catch_unwind(AssertUnwindSafe(|| {
        fold_items(
            40,
            &fork(2).chunk(4),
            wire!(u64),
            &[],
            &describe,
            || 0u64,
            |s, i| {
                if i == 22 {
                    std::process::abort();
                }
                *s += i as u64;
            },
        )
    }))
    .unwrap_err();
    let msg = panic_message(err);
    assert!(msg.contains("iteration i = 22 failed: killed by signal SIGABRT"), "{msg}");
    assert_no_children();
}

#[test]
fn timeout_kills_the_slow_item() {
    let _g = lock();
    let d = Duration::from_millis(300);
    let f = |[i]: [usize; 1]| {
        if i == 6 {
            std::thread::sleep(Duration::from_secs(60));
        }
        i
    };
    let out = try_map(Shape::product([12]), &fork(2).chunk(3).timeout(d), wire!(usize), f);
    for (i, r) in out.iter().enumerate() {
        if i == 6 {
            assert_eq!(r.as_ref().unwrap_err().cause(), &Cause::Timeout(d));
        } else {
            assert_eq!(r, &Ok(i));
        }
    }
    assert_no_children();
}

#[test]
fn results_without_serde_fail_naming_the_type() {
    let _g = lock();
    #[derive(Debug)]
    struct Opaque;
    let f = |[_i]: [usize; 1]| Opaque;
    let out = try_map(Shape::product([5]), &fork(2), wire!(Opaque), f);
    for r in &out {
        let e = r.as_ref().unwrap_err();
        assert!(matches!(e.cause(), Cause::Engine(m) if m.contains("Opaque")), "{e}");
    }
}

#[test]
fn workers_know_their_id_and_nested_calls_run_serially() {
    let _g = lock();
    let f = |[_i]: [usize; 1]| {
        let inner =
            map(Shape::product([4]), &Options::new().engine(Engine::Threads), None, |[j]| j);
        (parfor_runtime::worker_id(), inner.iter().sum::<usize>(), std::process::id())
    };
    let out = map(Shape::product([30]), &fork(3).chunk(1), wire!((Option<usize>, usize, u32)), f);
    for (w, s, pid) in out {
        assert!(matches!(w, Some(0..=2)));
        assert_eq!(s, 6);
        assert_ne!(pid, std::process::id());
    }
}

#[test]
fn no_leaks_of_processes_fds_or_mappings() {
    let _g = lock();
    let f = |[i]: [usize; 1]| i as f64;
    let call = || {
        let _ = map(Shape::product([1000]), &fork(2), wire!(f64), f);
        let _ = try_map(Shape::product([10]), &fork(2).chunk(2), wire!(String), |[i]| {
            if i == 3 {
                std::process::exit(1);
            }
            i.to_string()
        });
    };
    call();
    let (fds, maps) = (fd_count(), maps_count());
    for _ in 0..20 {
        call();
    }
    assert_no_children();
    assert_eq!(fd_count(), fds);
    // Two mappings may be the process's reaper thread (its stack and guard page), started
    // once, by the first call whose workers were still ending when it returned; a leak
    // would show as two or more per call.
    assert!(maps_count() <= maps + 2, "{} mappings, {maps} before", maps_count());
}

#[test]
fn stress_many_calls_beside_rayon_and_an_allocating_thread() {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    let _g = lock();
    // The global pool has run work (its threads exist and park), and another thread allocates
    // without pause while we fork.
    let s: u64 = (0..100_000u64).into_par_iter().map(|x| x % 7).sum();
    assert_eq!(s, (0..100_000u64).map(|x| x % 7).sum());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut keep: Vec<Vec<u8>> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                keep.push(vec![1u8; 1000]);
                if keep.len() > 1000 {
                    keep.clear();
                }
                let _ = format!("{}", keep.len());
            }
        });
        let (fds, maps) = (fd_count(), maps_count());
        for call in 0..1000usize {
            let f = |[i]: [usize; 1]| format!("{call}-{i}");
            let out = map(Shape::product([4]), &fork(2), wire!(String), f);
            assert_eq!(out[3], format!("{call}-3"));
        }
        stop.store(true, Ordering::Relaxed);
        assert_no_children();
        assert_eq!(fd_count(), fds);
        // The allocating thread's malloc arena may gain or lose a mapping or two meanwhile;
        // a leak would show as thousands (two per call).
        assert!(maps_count() <= maps + 8, "{} mappings, {maps} before", maps_count());
    });
}

#[test]
fn crashes_with_encoded_and_array_results() {
    let _g = lock();
    let f = |[i]: [usize; 1]| {
        if i == 9 {
            std::process::exit(4);
        }
        i.to_string()
    };
    let out = try_map(Shape::product([20]), &fork(2).chunk(5), wire!(String), f);
    for (i, r) in out.iter().enumerate() {
        match r {
            Ok(s) => assert_eq!(*s, i.to_string()),
            Err(e) => assert!(i == 9 && *e.cause() == Cause::Exit(4), "{e}"),
        }
    }
    let g = |[i, j]: [usize; 2]| {
        if (i, j) == (2, 1) {
            std::process::abort();
        }
        [i as f32, j as f32, (i * j) as f32]
    };
    let out = try_map(Shape::product([5, 3]), &fork(3).chunk(4), wire!([f32; 3]), g);
    for (k, r) in out.iter().enumerate() {
        let (i, j) = (k / 3, k % 3);
        match r {
            Ok(v) => assert_eq!(*v, [i as f32, j as f32, (i * j) as f32]),
            Err(e) => assert!(k == 7 && e.indices() == [2, 1], "{e}"),
        }
    }
}

#[test]
fn shared_vec_is_written_in_place_by_fork_workers() {
    let _g = lock();
    let describe = |i: usize| format!("i = {i}");
    let n = 10_000;
    let mut sv = SharedVec::<f64>::zeroed(n);
    {
        // No wire: an output that had to be shipped back would fail the call; a shared one
        // ships nothing.
        let out = SliceOut::new(&mut sv[..], 0, None);
        assert!(out.is_shared());
        let outputs: [&dyn Sliced; 1] = [&out];
        let states = fold_items(
            n,
            &fork(2).chunk(512),
            wire!(u32),
            &outputs,
            &describe,
            || 0u32,
            |s, i| {
                // SAFETY: iteration `i` alone writes element `i`.
                unsafe { *out.slot(i) = (i as f64).sqrt() };
                *s += 1;
            },
        );
        assert_eq!(states.iter().sum::<u32>(), n as u32);
    }
    assert!(sv.iter().enumerate().all(|(i, &x)| x == (i as f64).sqrt()));

    // The explicit constructor, with an offset.
    let mut sv = SharedVec::<u64>::zeroed(20);
    {
        let out = SliceOut::shared(&mut sv, 10);
        let outputs: [&dyn Sliced; 1] = [&out];
        fold_items(
            10,
            &fork(3).chunk(2),
            wire!(()),
            &outputs,
            &describe,
            || (),
            |_, i| {
                // SAFETY: iteration `i` alone writes element `10 + i`.
                unsafe { *out.slot(10 + i) = i as u64 + 1 };
            },
        );
    }
    assert_eq!(&sv[..10], &[0; 10]);
    assert_eq!(&sv[10..], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn ordinary_sliced_outputs_are_shipped_back() {
    let _g = lock();
    let describe = |i: usize| format!("i = {i}");
    let mut v = vec![String::new(); 300];
    {
        let out = SliceOut::new(&mut v, 0, wire!(String));
        assert!(!out.is_shared());
        let outputs: [&dyn Sliced; 1] = [&out];
        fold_items(
            300,
            &fork(2).chunk(7),
            wire!(()),
            &outputs,
            &describe,
            || (),
            |_, i| {
                // SAFETY: iteration `i` alone writes element `i`.
                unsafe { *out.slot(i) = format!("<{i}>") };
            },
        );
    }
    assert!(v.iter().enumerate().all(|(i, s)| *s == format!("<{i}>")));
}

/// Ctrl-C reaches the whole foreground process group: the caller and its workers must all go.
/// Runs itself again as a helper in a process group of its own, and interrupts that group.
#[test]
fn sigint_ends_the_caller_and_its_workers() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    if std::env::var_os("PARFOR_SIGINT_HELPER").is_some() {
        // The helper: a call whose items never end.
        let f = |[i]: [usize; 1]| {
            std::thread::sleep(Duration::from_secs(600));
            i
        };
        let _ = map(Shape::product([8]), &fork(2).chunk(1), wire!(usize), f);
        return;
    }
    let _g = lock();
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigint_ends_the_caller_and_its_workers", "--test-threads=1"])
        .env("PARFOR_SIGINT_HELPER", "1")
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = helper.id();
    // Wait (bounded) for the helper's two workers.
    let mut workers = Vec::new();
    for _ in 0..2000 {
        workers = children_of(pid);
        if workers.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(workers.len(), 2, "the helper did not start its workers");
    // SAFETY: sends SIGINT to the helper's process group (its pid), which holds only the
    // helper and its workers.
    assert_eq!(unsafe { libc::kill(-(pid as i32), libc::SIGINT) }, 0);
    let status = helper.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    // The workers die of the same SIGINT (or of the death signal once the helper is gone);
    // they are no longer our children, so look them up by pid (bounded wait for the kernel).
    let alive = |w: &u32| {
        std::fs::read_to_string(format!("/proc/{w}/stat"))
            .is_ok_and(|st| st.rsplit_once(')').is_some_and(|r| !r.1.trim_start().starts_with('Z')))
    };
    for _ in 0..2000 {
        if !workers.iter().any(alive) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!workers.iter().any(alive), "workers {workers:?} outlived the interrupt");
}

/// An item that panics in a worker while another thread of the parent is panicking (and so
/// holds the standard panic hook's locks at the moment of the fork) must fail on its own, not
/// wait for those locks forever; the time-out turns a would-be hang into a test failure.
#[test]
fn items_panic_while_another_thread_panics() {
    let _g = lock();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = catch_unwind(|| panic!("noise from another thread"));
            }
        })
    };
    let opts = fork(2).chunk(1).timeout(Duration::from_secs(5));
    for _ in 0..40 {
        let r = try_map(Shape::product([8]), &opts, wire!(usize), |[i]: [usize; 1]| {
            assert!(i % 2 == 1, "even item {i}");
            i
        });
        for (i, x) in r.iter().enumerate() {
            match x {
                Ok(v) => assert_eq!(*v, i),
                Err(e) => {
                    assert_eq!(i % 2, 0);
                    assert_eq!(e.cause(), &Cause::Panic(format!("even item {i}")), "item {i}");
                }
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().unwrap();
}

/// Counters in shared memory, which a call's workers and the test see alike.
struct SharedFlags {
    ptr: *mut std::sync::atomic::AtomicU64,
    len: usize,
}

// SAFETY: the counters are atomics in a mapping this value owns.
unsafe impl Sync for SharedFlags {}
// SAFETY: as above.
unsafe impl Send for SharedFlags {}

impl SharedFlags {
    fn new(len: usize) -> SharedFlags {
        let bytes = len * size_of::<u64>();
        // SAFETY: a fresh anonymous shared mapping, zero filled (zero is a valid `AtomicU64`).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        SharedFlags { ptr: ptr.cast(), len }
    }

    fn at(&self, k: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(k < self.len);
        // SAFETY: in bounds of the live mapping, aligned (page aligned base), only ever
        // accessed through atomics.
        unsafe { &*self.ptr.add(k) }
    }

    /// Waits (bounded) until counter `k` reaches `v`; whether it did.
    fn wait_for(&self, k: usize, v: u64, limit: Duration) -> bool {
        let until = std::time::Instant::now() + limit;
        while self.at(k).load(std::sync::atomic::Ordering::SeqCst) < v {
            if std::time::Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

impl Drop for SharedFlags {
    fn drop(&mut self) {
        // SAFETY: the mapping this value owns, no longer referenced.
        unsafe { libc::munmap(self.ptr.cast(), self.len * size_of::<u64>()) };
    }
}

/// The process's descriptors and what they refer to.
fn descriptors() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            v.push((e.file_name().to_string_lossy().into_owned(), target.display().to_string()));
        }
    }
    v
}

/// In a worker: the pipes it holds that the test process did not hold before (`before`).
fn new_pipes(before: &[(String, String)]) -> Vec<String> {
    descriptors()
        .into_iter()
        .filter(|d| d.1.starts_with("pipe:") && !before.contains(d))
        .map(|d| d.1)
        .collect()
}

/// Two threads make fork calls at once: a worker holds no descriptor of the other call (only
/// its own pipe), and quick calls complete while a slow call started meanwhile still runs. A
/// worker holding another call's pipe would also keep that call waiting until it ends.
#[test]
fn concurrent_calls_hold_none_of_each_others_descriptors() {
    use std::sync::atomic::Ordering::SeqCst;
    let _g = lock();
    // 0: release the slow items; 1: slow items started; 2: slow items done.
    let flags = SharedFlags::new(3);
    let before = descriptors();
    let stop_quick = std::sync::atomic::AtomicBool::new(false);
    let rounds = std::sync::atomic::AtomicUsize::new(0);
    /// Releases the slow items however the test ends, so it never waits for their deadline.
    struct Release<'a>(&'a SharedFlags);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.at(0).store(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    std::thread::scope(|s| {
        let _release = Release(&flags);
        // Quick calls, one after the other, each replacing a worker once (item 3 exits).
        let quick = s.spawn(|| {
            let mut worst = Vec::new();
            while !stop_quick.load(SeqCst) {
                let out =
                    try_map(Shape::product([8]), &fork(2).chunk(1), wire!(Vec<String>), |[i]| {
                        if i == 3 {
                            std::process::exit(0);
                        }
                        new_pipes(&before)
                    });
                for (i, r) in out.into_iter().enumerate() {
                    match r {
                        Ok(p) if p.len() != 1 => worst = p,
                        Ok(_) => {}
                        Err(e) => assert!(i == 3 && *e.cause() == Cause::Exit(0), "{e}"),
                    }
                }
                rounds.fetch_add(1, SeqCst);
            }
            worst
        });
        assert!(
            (0..2000).any(|_| {
                std::thread::sleep(Duration::from_millis(1));
                rounds.load(SeqCst) >= 2
            }),
            "the quick calls did not start"
        );
        // A slow call starts while quick calls run; its items wait to be released.
        let slow = s.spawn(|| {
            try_map(Shape::product([2]), &fork(2).chunk(1), wire!(Vec<String>), |[_i]| {
                flags.at(1).fetch_add(1, SeqCst);
                flags.wait_for(0, 1, Duration::from_secs(30));
                let pipes = new_pipes(&before);
                flags.at(2).fetch_add(1, SeqCst);
                pipes
            })
        });
        assert!(flags.wait_for(1, 2, Duration::from_secs(30)), "the slow items did not start");
        // Quick calls keep completing while the slow call runs.
        let r0 = rounds.load(SeqCst);
        let progressed = (0..30_000).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            rounds.load(SeqCst) >= r0 + 20 || flags.at(2).load(SeqCst) > 0
        });
        let done_early = flags.at(2).load(SeqCst);
        stop_quick.store(true, SeqCst);
        flags.at(0).store(1, SeqCst);
        let slow = slow.join().unwrap();
        let worst = quick.join().unwrap();
        assert!(progressed && done_early == 0, "quick calls waited for the slow one");
        assert!(worst.is_empty(), "a quick worker held more than its own pipe: {worst:?}");
        for r in slow {
            let pipes = r.unwrap();
            assert_eq!(pipes.len(), 1, "a slow worker held more than its own pipe: {pipes:?}");
        }
    });
    assert_no_children();
}

/// A result type whose `Serialize` fails for 7 and panics for 9.
#[derive(Debug, PartialEq)]
struct Picky(u32);

impl serde::Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            7 => Err(serde::ser::Error::custom("seven cannot be written")),
            9 => panic!("nine blows up the serializer"),
            v => s.serialize_u32(v),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Picky, D::Error> {
        <u32 as serde::Deserialize>::deserialize(d).map(Picky)
    }
}

#[test]
fn a_failing_serializer_fails_its_item_with_its_message() {
    let _g = lock();
    let f = |[i]: [usize; 1]| Picky(i as u32);
    let out = try_map(Shape::product([12]), &fork(2).chunk(4), wire!(Picky), f);
    for (i, r) in out.iter().enumerate() {
        match i {
            7 | 9 => {
                let e = r.as_ref().unwrap_err();
                let Cause::Engine(m) = e.cause() else { panic!("item {i}: {e}") };
                let want = if i == 7 { "seven cannot be written" } else { "nine blows up" };
                assert!(m.contains(want) && m.contains("Picky"), "item {i}: {m}");
            }
            _ => assert_eq!(r, &Ok(Picky(i as u32)), "item {i}"),
        }
    }
    // `fail` mode: the call fails naming the first such item and the message.
    let err = catch_unwind(AssertUnwindSafe(|| {
        map(Shape::product([12]), &fork(2).chunk(4), wire!(Picky), f)
    }))
    .unwrap_err();
    let msg = panic_message(err);
    assert!(msg.contains("item 7 failed") && msg.contains("seven cannot be written"), "{msg}");
    // A loop whose state cannot be written fails naming the message too.
    let describe = |i: usize| format!("i = {i}");
    let err = catch_unwind(AssertUnwindSafe(|| {
        fold_items(
            8,
            &fork(2).chunk(4),
            wire!(Picky),
            &[],
            &describe,
            || Picky(0),
            |s, i| {
                if i == 5 {
                    s.0 = 7;
                }
            },
        )
    }))
    .unwrap_err();
    let msg = panic_message(err);
    assert!(msg.contains("i = 4 failed") && msg.contains("seven cannot be written"), "{msg}");
    assert_no_children();
}

/// A result that takes long to ship: its `Serialize` is slow.
#[derive(Debug, PartialEq)]
struct SlowToShip(u32);

impl serde::Serialize for SlowToShip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        std::thread::sleep(Duration::from_millis(600));
        s.serialize_u32(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SlowToShip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SlowToShip, D::Error> {
        <u32 as serde::Deserialize>::deserialize(d).map(SlowToShip)
    }
}

/// The time-out bounds an item's own run: shipping its result (here, serializing it for 0.6 s
/// against a 0.2 s time-out) is not part of it.
#[test]
fn timeout_does_not_bound_shipping_the_result() {
    let _g = lock();
    let d = Duration::from_millis(200);
    let out =
        try_map(Shape::product([3]), &fork(2).chunk(1).timeout(d), wire!(SlowToShip), |[i]| {
            SlowToShip(i as u32)
        });
    for (i, r) in out.iter().enumerate() {
        assert_eq!(r, &Ok(SlowToShip(i as u32)), "item {i}");
    }
    // The same loop state, shipped once per block.
    let describe = |i: usize| format!("i = {i}");
    let states = fold_items(
        4,
        &fork(2).chunk(2).timeout(d),
        wire!(SlowToShip),
        &[],
        &describe,
        || SlowToShip(0),
        |s, i| s.0 += i as u32,
    );
    assert_eq!(states, [SlowToShip(1), SlowToShip(5)]);
}

/// A time-out too long to represent in nanoseconds means "never", not a wrapped short one.
#[test]
fn huge_timeouts_are_honoured() {
    let _g = lock();
    for d in [Duration::MAX, Duration::from_secs(u64::MAX), Duration::from_nanos(u64::MAX)] {
        let out =
            try_map(Shape::product([2]), &fork(2).chunk(1).timeout(d), wire!(usize), |[i]| {
                std::thread::sleep(Duration::from_millis(400));
                i
            });
        assert_eq!(out, [Ok(0), Ok(1)], "timeout {d:?}");
    }
}

/// Runs this test binary again as a helper running test `name` with `env` set, output
/// uncaptured; its exit status and standard output, within a time limit.
fn run_helper(name: &str, env: &str) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(env, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = helper.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = helper.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > until {
            let _ = helper.kill();
            let _ = helper.wait();
            panic!("helper {name} did not end within a minute");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, reader.join().unwrap())
}

/// An item that leaves its worker through `exit` (which flushes the standard output it
/// inherited) does not print again what the caller had printed but not flushed.
#[test]
fn exit_in_an_item_does_not_repeat_buffered_output() {
    const MARK: &str = "<printed once, before the call>";
    if std::env::var_os("PARFOR_STDOUT_HELPER").is_some() {
        // No newline: the text stays in the standard library's buffer.
        print!("{MARK}");
        let out = try_map(Shape::product([6]), &fork(2).chunk(1), wire!(usize), |[i]| {
            if i % 2 == 0 {
                std::process::exit(0);
            }
            i
        });
        println!("\nexits: {}", out.iter().filter(|r| r.is_err()).count());
        return;
    }
    let _g = lock();
    let (status, out) =
        run_helper("exit_in_an_item_does_not_repeat_buffered_output", "PARFOR_STDOUT_HELPER");
    assert!(status.success(), "{status:?}\n{out}");
    assert!(out.contains("exits: 3"), "{out}");
    assert_eq!(out.matches(MARK).count(), 1, "{out}");
}

/// The first fork call of a program, made from a `Drop` while a panic unwinds, runs (the
/// panic hook cannot be installed then); an item that panics in it fails on its own.
#[test]
fn first_call_from_a_drop_while_unwinding() {
    if std::env::var_os("PARFOR_UNWIND_HELPER").is_some() {
        struct CallOnDrop;
        impl Drop for CallOnDrop {
            fn drop(&mut self) {
                assert!(std::thread::panicking());
                let out = try_map(Shape::product([4]), &fork(2).chunk(1), wire!(usize), |[i]| {
                    assert!(i != 1, "item one panics");
                    i * 10
                });
                for (i, r) in out.iter().enumerate() {
                    match r {
                        Ok(v) => println!("item {i}: ok {v}"),
                        Err(e) => println!("item {i}: {:?}", e.cause()),
                    }
                }
            }
        }
        let r = catch_unwind(|| {
            let _d = CallOnDrop;
            panic!("outer panic");
        });
        println!("survived: {}", r.is_err());
        return;
    }
    let _g = lock();
    let (status, out) =
        run_helper("first_call_from_a_drop_while_unwinding", "PARFOR_UNWIND_HELPER");
    assert!(status.success(), "{status:?}\n{out}");
    for line in ["item 0: ok 0", "item 2: ok 20", "item 3: ok 30", "survived: true"] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    // A panic while the worker's thread unwinds is caught like any other (current standard
    // libraries), or aborts the worker (older ones, which abort on a nested panic).
    assert!(
        out.contains(r#"item 1: Panic("item one panics")"#)
            || out.contains(r#"item 1: Signal { signo: 6, name: "SIGABRT" }"#),
        "{out}"
    );
}

/// The workers a call leaves to be reaped in the background are reaped by pid: a child the
/// program started itself, ended before and during the calls, keeps its exit status for the
/// program's own `wait`.
#[test]
fn the_programs_own_children_are_not_reaped() {
    let _g = lock();
    let mut own = std::process::Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
    let own_pid = own.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for round in 0..5 {
        let out = map(Shape::product([8]), &fork(2).chunk(1), wire!(usize), |[i]| i + round);
        assert_eq!(out, (round..8 + round).collect::<Vec<_>>());
    }
    // Only the program's child is left once the workers are reaped.
    while children() != [own_pid] {
        assert!(std::time::Instant::now() < deadline, "children left: {:?}", children());
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(own.wait().unwrap().code(), Some(7));
}

/// A process forked from one whose fork calls left workers to the background reaper (which
/// the child does not inherit: only the forking thread exists there) reaps its own.
#[test]
fn a_forked_program_reaps_its_own_workers() {
    let _g = lock();
    let big = vec![1u8; 64 << 20]; // slows the workers' teardown: they outlive the calls
    let call = || map(Shape::product([4]), &fork(2).chunk(1), wire!(u8), |[i]| big[i] + 1);
    assert_eq!(call(), [2; 4]);
    // SAFETY: the child runs only the code below and leaves with `_exit`; this test holds the
    // lock that serializes the parfor calls of this binary, so no other thread is inside one.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let ok = std::panic::catch_unwind(AssertUnwindSafe(|| {
            for _ in 0..3 {
                assert_eq!(call(), [2; 4]);
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !children().is_empty() {
                assert!(std::time::Instant::now() < deadline, "left: {:?}", children());
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
        // SAFETY: ends the forked child at once, running nothing of the test harness.
        unsafe { libc::_exit(if ok.is_ok() { 0 } else { 1 }) };
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut status = 0;
    loop {
        // SAFETY: polls our own child, writing its status to a live local.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("the forked program did not end");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status:#x}");
    assert_no_children();
}
