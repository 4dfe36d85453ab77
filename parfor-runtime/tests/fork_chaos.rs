//! Chaos: fork calls whose workers are killed from outside at random moments (while they start,
//! claim a block, run an item or send results). Every item must come back `Ok` with its value
//! or fail naming SIGKILL; no call may hang or report an internal error; no process or
//! descriptor may be left behind. A binary of its own: the killer kills every child of this
//! process.
#![cfg(target_os = "linux")]

use parfor_runtime::__private::{
    Dense, DenseAddSub, DensePart, LoopCall, Options, Shape, fold, map, try_map,
};
use parfor_runtime::wire::Probe;
use parfor_runtime::{Cause, Engine};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Calls made (split among the shapes below).
const CALLS: usize = 300;

macro_rules! wire {
    ($t:ty) => {
        parfor_runtime::__wire_of!(Probe::<$t>::new())
    };
}

/// xorshift64: the kill schedule (seeded from the clock, printed for replay).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Children of this process, from every thread's `children` list (or a scan of /proc when
/// the kernel has no such list).
fn children() -> Vec<i32> {
    let me = std::process::id();
    let mut kids = Vec::new();
    let mut listed = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                listed = true;
                kids.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    if !listed {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            if parent_of(pid) == Some(me) {
                kids.push(pid);
            }
        }
    }
    kids
}

/// The parent of process `pid`, from its stat line (field 4).
fn parent_of(pid: i32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// Sends SIGKILL to `pid` if it is still a child of this process: the pid is pinned with a
/// pidfd, then checked, so a pid reused by another process is never hit.
fn kill_child(pid: i32) -> bool {
    // SAFETY: opens a pidfd (a new descriptor this function owns and closes) for `pid`.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return false;
    }
    let pidfd = pidfd as i32;
    let mut sent = false;
    if parent_of(pid) == Some(std::process::id()) {
        // SAFETY: signals the process the pidfd pins, which is a child of this process.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd,
                libc::SIGKILL,
                std::ptr::null::<u8>(),
                0,
            )
        };
        sent = r == 0;
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(pidfd) };
    sent
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn fork(workers: usize, chunk: usize) -> Options {
    Options::new().engine(Engine::Fork).workers(workers).chunk(chunk)
}

fn is_sigkill(c: &Cause) -> bool {
    match c {
        Cause::Signal { signo, name } => *signo == libc::SIGKILL && name == "SIGKILL",
        // The workers that were to run it all died before they could.
        Cause::Engine(m) => m.contains("SIGKILL"),
        _ => false,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p.downcast::<&str>().map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// Asserts that call `call` failed because a worker was killed (its message names SIGKILL and
/// no internal error).
fn assert_killed(payload: Box<dyn std::any::Any + Send>, call: usize) {
    let msg = panic_message(payload);
    assert!(msg.contains("SIGKILL") && !msg.contains("internal"), "call {call}: {msg}");
}

/// A little work per item, so that kills land inside items too.
fn work(i: usize) -> u64 {
    let mut x = i as u64 + 1;
    for _ in 0..2000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
    std::hint::black_box(x) & 0xff
}

/// One call of shape `call % 5`; panics on a wrong outcome. How many items failed.
fn one_call(call: usize) -> usize {
    let chunk = 1 + call % 4;
    let workers = 2 + call % 2;
    let n = 24;
    let mut failed = 0;
    let mut check = |i: usize, r: Result<bool, &Cause>| match r {
        Ok(true) => {}
        Ok(false) => panic!("call {call}: item {i} has a wrong value"),
        Err(c) if is_sigkill(c) => failed += 1,
        Err(c) => panic!("call {call}: item {i} failed with {c:?}"),
    };
    match call % 5 {
        0 => {
            // Plain-old-data results through the pipe.
            let out =
                try_map(Shape::product([n]), &fork(workers, chunk), wire!(u64), |[i]| work(i));
            for (i, r) in out.iter().enumerate() {
                check(i, r.as_ref().map(|v| *v == work(i)).map_err(|e| e.cause()));
            }
        }
        1 => {
            // Encoded results.
            let out = try_map(Shape::product([n]), &fork(workers, chunk), wire!(String), |[i]| {
                format!("{i}:{}", work(i))
            });
            for (i, r) in out.iter().enumerate() {
                check(
                    i,
                    r.as_ref().map(|v| *v == format!("{i}:{}", work(i))).map_err(|e| e.cause()),
                );
            }
        }
        2 => {
            // Frames bigger than a pipe's buffer (1 MiB; 400 kB per item, each value taking
            // 10 bytes): workers die while sending.
            let out =
                try_map(Shape::product([8]), &fork(workers, chunk), wire!(Vec<u64>), |[i]| {
                    vec![u64::MAX - i as u64; 40_000]
                });
            for (i, r) in out.iter().enumerate() {
                check(
                    i,
                    r.as_ref()
                        .map(|v| v.len() == 40_000 && v.iter().all(|&x| x == u64::MAX - i as u64))
                        .map_err(|e| e.cause()),
                );
            }
        }
        3 => {
            // `fail` mode, results written in place: all values, or a failure naming SIGKILL.
            let got = catch_unwind(AssertUnwindSafe(|| {
                map(Shape::product([n]), &fork(workers, chunk), wire!(u64), |[i]| work(i))
            }));
            match got {
                Ok(v) => assert!(v.iter().enumerate().all(|(i, &x)| x == work(i)), "call {call}"),
                Err(p) => {
                    assert_killed(p, call);
                    failed += 1;
                }
            }
        }
        _ if call / 5 % 4 == 3 => {
            // An array reduction (`hist[work(i) % 16] += 1`), one dense partial array per
            // worker process, which its parent reads from the worker's memory: the exact
            // histogram, or a failure naming SIGKILL.
            let describe = |i: usize| format!("i = {i}");
            let got = catch_unwind(AssertUnwindSafe(|| {
                let opts = fork(workers, chunk);
                let lc = LoopCall {
                    opts: &opts,
                    per_worker: true,
                    wire: wire!(DensePart<u64>),
                    outputs: &[],
                    describe: &describe,
                    ctx: (),
                    init: || Dense::part((&&Probe::<u64>::new()).__parfor_array_add()),
                    local_init: || (),
                };
                fold(n, lc, |s, _, (), range, cursor| {
                    for i in range {
                        cursor.at(i);
                        let bin = (work(i) % 16) as usize;
                        s.update(16, bin, 1u64, u64::wrapping_add, |_, _| unreachable!());
                    }
                })
            }));
            match got {
                Ok(states) => {
                    let mut hist = [0u64; 16];
                    for s in states {
                        s.merge_into(&mut hist, u64::wrapping_add, |_, _| unreachable!());
                    }
                    let mut want = [0u64; 16];
                    (0..n).for_each(|i| want[(work(i) % 16) as usize] += 1);
                    assert_eq!(hist, want, "call {call}");
                }
                Err(p) => {
                    assert_killed(p, call);
                    failed += 1;
                }
            }
        }
        _ => {
            // A reduction: the exact sum, or a failure naming SIGKILL. Every other such call
            // keeps one state per worker process, sent at its end: a worker killed between
            // ranges takes ranges it had folded with it, which a replacement runs again.
            let describe = |i: usize| format!("i = {i}");
            let got = catch_unwind(AssertUnwindSafe(|| {
                let opts = fork(workers, chunk);
                let lc = LoopCall {
                    opts: &opts,
                    per_worker: call / 5 % 2 == 1,
                    wire: wire!(u64),
                    outputs: &[],
                    describe: &describe,
                    ctx: (),
                    init: || 0u64,
                    local_init: || (),
                };
                fold(n, lc, |s, _, (), range, cursor| {
                    for i in range {
                        cursor.at(i);
                        *s += work(i);
                    }
                })
            }));
            match got {
                Ok(states) => {
                    assert_eq!(
                        states.iter().sum::<u64>(),
                        (0..n).map(work).sum::<u64>(),
                        "call {call}"
                    )
                }
                Err(p) => {
                    assert_killed(p, call);
                    failed += 1;
                }
            }
        }
    }
    failed
}

#[test]
fn random_external_kills_lose_no_item() {
    // Calls in `fail` mode panic when a worker is killed in an item, as they should: keep
    // those expected reports out of the output (installed before the first fork call, so
    // the fork engine's hook hands them here).
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg =
            p.downcast_ref::<String>().map(String::as_str).or(p.downcast_ref::<&str>().copied());
        let msg = msg.unwrap_or_default();
        if !(msg.starts_with("parfor:") && msg.contains("SIGKILL")) {
            report(info);
        }
    }));
    // Turns a hang into a failure.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(120)).is_err() {
            eprintln!("chaos test: no progress for two minutes; aborting");
            std::process::abort();
        }
    });
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("chaos seed {seed:#x}");
    let fds = fd_count();
    let stop = AtomicBool::new(false);
    let kills = AtomicUsize::new(0);
    let start = Instant::now();
    let failed = std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng(seed);
            while !stop.load(Ordering::Relaxed) {
                // Mostly short pauses, to hit workers in their first microseconds too.
                let pause = match rng.next() % 4 {
                    0 => 0,
                    1 => rng.next() % 200,
                    _ => rng.next() % 3000,
                };
                std::thread::sleep(Duration::from_micros(pause));
                let kids = children();
                if !kids.is_empty() {
                    let pid = kids[(rng.next() % kids.len() as u64) as usize];
                    if kill_child(pid) {
                        kills.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        let failed: usize = (0..CALLS).map(one_call).sum();
        stop.store(true, Ordering::Relaxed);
        failed
    });
    let _ = done_tx.send(());
    let kills = kills.into_inner();
    eprintln!("{CALLS} calls in {:?}: {kills} workers killed, {failed} failures", start.elapsed());
    assert!(kills >= CALLS / 10, "too few kills ({kills}) to test anything");
    // Workers that sent everything are reaped in the background once the kernel has torn
    // them down: wait for that, up to a bound far above it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !children().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(children().is_empty(), "workers or zombies left: {:?}", children());
    assert_eq!(fd_count(), fds, "descriptors leaked");
}
