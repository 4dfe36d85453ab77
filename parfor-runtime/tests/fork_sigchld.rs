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
}
