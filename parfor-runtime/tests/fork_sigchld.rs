//! A program that ignores `SIGCHLD` still gets the right cause for each failed item. The
//! signal's disposition is process-wide: this binary holds this one test only.
#![cfg(unix)]

use parfor_runtime::wire::Probe;
use parfor_runtime::{Cause, Engine, Options, Shape, try_map};
use std::time::Duration;

/// An item per way of dying, on workers that each run one item.
fn run_dying_items() {
    let opts =
        Options::new().engine(Engine::Fork).workers(2).chunk(1).timeout(Duration::from_millis(500));
    let f = |[i]: [usize; 1]| {
        match i {
            1 => std::process::exit(3),
            2 => std::process::abort(),
            // SAFETY: sends a signal to this (worker) process.
            3 => unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            },
            4 => panic!("four"),
            5 => std::thread::sleep(Duration::from_secs(60)),
            _ => {}
        }
        i
    };
    let out =
        try_map(Shape::product([8]), &opts, parfor_runtime::__wire_of!(Probe::<usize>::new()), f);
    for (i, r) in out.iter().enumerate() {
        let signal = |signo: i32, name: &str| Cause::Signal { signo, name: name.into() };
        let want = match i {
            1 => Cause::Exit(3),
            2 => signal(libc::SIGABRT, "SIGABRT"),
            3 => signal(libc::SIGKILL, "SIGKILL"),
            4 => Cause::Panic("four".into()),
            5 => Cause::Timeout(Duration::from_millis(500)),
            _ => {
                assert_eq!(r, &Ok(i), "item {i}");
                continue;
            }
        };
        assert_eq!(r.as_ref().map_err(|e| e.cause()), Err(&want), "item {i}");
    }
}

/// The current `SIGCHLD` action.
fn sigchld() -> libc::sigaction {
    // SAFETY: an all-zero `sigaction` is valid; the call only reads the current action.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old), 0);
        old
    }
}

#[test]
fn ignored_sigchld_keeps_the_causes() {
    // SAFETY: ignoring SIGCHLD installs no handler.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    run_dying_items();
    assert_eq!(sigchld().sa_sigaction, libc::SIG_IGN, "the program's disposition is back");

    // The same with the default action and SA_NOCLDWAIT, which also discards statuses.
    // SAFETY: the default action with a flag; no handler.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = libc::SIG_DFL;
        act.sa_flags = libc::SA_NOCLDWAIT;
        assert_eq!(libc::sigaction(libc::SIGCHLD, &act, std::ptr::null_mut()), 0);
    }
    run_dying_items();
    let after = sigchld();
    assert!(after.sa_sigaction == libc::SIG_DFL && after.sa_flags & libc::SA_NOCLDWAIT != 0);

    // The program starts ignoring SIGCHLD while a call runs: the worker's status is lost,
    // and its item fails saying so.
    // SAFETY: the default action; no handler.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    // 0: the item started; 1: the item may end. Shared with the worker.
    // SAFETY: a fresh anonymous shared mapping, zero filled (valid `AtomicU64`s).
    let flags = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            16,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(flags, libc::MAP_FAILED);
    // SAFETY: two aligned atomics inside the mapping, which outlives their use below.
    let (started, release) = unsafe {
        let p = flags.cast::<std::sync::atomic::AtomicU64>();
        (&*p, &*p.add(1))
    };
    let wait = |flag: &std::sync::atomic::AtomicU64| {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while flag.load(std::sync::atomic::Ordering::SeqCst) == 0
            && std::time::Instant::now() < until
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let out = std::thread::scope(|s| {
        let call = s.spawn(|| {
            let opts = Options::new().engine(Engine::Fork).workers(1);
            try_map(
                Shape::product([1]),
                &opts,
                parfor_runtime::__wire_of!(Probe::<usize>::new()),
                |[i]| {
                    started.store(1, std::sync::atomic::Ordering::SeqCst);
                    wait(release);
                    std::process::exit(3 + i as i32)
                },
            )
        });
        wait(started);
        // SAFETY: ignoring SIGCHLD installs no handler.
        unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        release.store(1, std::sync::atomic::Ordering::SeqCst);
        call.join().unwrap()
    });
    let cause = out[0].as_ref().unwrap_err().cause();
    assert!(matches!(cause, Cause::Engine(m) if m.contains("exit status was lost")), "{cause:?}");
    assert_eq!(sigchld().sa_sigaction, libc::SIG_IGN, "the program's own change stays");
    // SAFETY: unmaps the mapping above, no longer used.
    unsafe { libc::munmap(flags, 16) };
}
