//! Forking one worker process with its pipes: what every user of the fork engine (a
//! `parmap!` or `#[parfor]` call, a stream) does to start a worker, in one place.

use super::sys::{CallFd, Descriptors};
use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid, fork};
use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// The parent's ends of a new worker's pipes.
pub(super) struct Pipes {
    /// Where the worker's frames arrive.
    pub(super) results: CallFd,
    /// Where the parent writes the worker's tasks (workers that are fed tasks only).
    pub(super) tasks: Option<CallFd>,
}

/// The worker's ends of its pipes, and the inherited descriptors it must close.
pub(super) struct Ends {
    /// The write end of its results pipe.
    pub(super) results: RawFd,
    /// The read end of its tasks pipe (workers that are fed tasks only).
    pub(super) tasks: Option<RawFd>,
    /// Every descriptor of every fork-engine user of this process but the two above.
    pub(super) close: Vec<RawFd>,
}

/// Forks a worker process: a results pipe from it and, with `fed`, a tasks pipe to it. The
/// child runs `main`; the parent gets the child's pid and its ends of the pipes.
///
/// # Safety
/// `main` runs in the child, which has only the calling thread: it must never return nor
/// unwind into the caller's code (it leaves with `_exit`), and may run only the job (the
/// caller's per-item code, which the engine's contract lets run in a worker) and audited code
/// that takes no lock another thread could hold at the fork, except the allocator's (which
/// glibc and musl reinitialize in the child). It should allocate little before it runs the
/// job: build what it needs before the call.
// The child's arm ends in an uninhabited value: `main` never returns.
#[allow(unreachable_code)]
pub(super) unsafe fn fork_worker(
    fed: bool,
    main: impl FnOnce(Ends) -> Infallible,
) -> Result<(Pid, Pipes), Errno> {
    // What the caller's program printed but did not flush yet would be written again by
    // every worker whose item leaves through `exit` (which flushes the copy it inherited).
    // Flushed before taking any lock of ours: it may wait for another thread's print.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // Held until the child has its pipes and the parent closed the child's ends (see
    // `Descriptors`): no other call's worker can inherit them meanwhile.
    let mut fds = Descriptors::lock();
    let (r, w) = fds.pipe()?;
    let tasks: Option<(OwnedFd, OwnedFd)> = if fed {
        match fds.pipe() {
            Ok(p) => Some(p),
            Err(e) => {
                fds.close(r);
                fds.close(w);
                return Err(e);
            }
        }
    } else {
        None
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // Bigger pipe buffers mean fewer wake-ups for big results; best effort (the limit is
        // /proc/sys/fs/pipe-max-size).
        let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    }
    let mut keep = vec![w.as_raw_fd()];
    keep.extend(tasks.as_ref().map(|t| t.0.as_raw_fd()));
    let ends = Ends {
        results: w.as_raw_fd(),
        tasks: tasks.as_ref().map(|t| t.0.as_raw_fd()),
        close: fds.others(&keep),
    };
    // SAFETY: the child runs only `main`, which by this function's contract never returns
    // into the caller's code and runs only code allowed after a fork; everything it needs
    // was built above.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => match main(ends) {},
        Ok(ForkResult::Parent { child }) => {
            fds.close(w);
            let tasks = tasks.map(|(tr, tw)| {
                fds.close(tr);
                CallFd::new(tw)
            });
            drop(fds);
            Ok((child, Pipes { results: CallFd::new(r), tasks }))
        }
        Err(e) => {
            fds.close(w);
            fds.close(r);
            if let Some((tr, tw)) = tasks {
                fds.close(tr);
                fds.close(tw);
            }
            Err(e)
        }
    }
}
