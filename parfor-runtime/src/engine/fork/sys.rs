//! Process-wide state that concurrent fork calls share: the descriptors they own (so that no
//! worker keeps another call's pipe open) and the disposition of `SIGCHLD` (so that every
//! worker can be waited for).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

/// Every descriptor that a fork call of this process owns. A worker inherits all of them at
/// `fork()`, and a worker that kept another call's pipe open would hold that call up: its
/// parent sees the end of a pipe only once every copy of the write end is closed. So each
/// worker closes all of them but its own right after the fork.
///
/// The lock is held while a call creates a pipe, forks and closes the write end it gave the
/// child, and while a call closes a descriptor: the list a child closes is then exactly the
/// set of fork-engine descriptors it inherited (none is created or reused by another thread
/// between the listing and the fork). Forks of one process serialize in the kernel anyway
/// (they copy one address space), so holding it across `fork()` costs concurrent calls
/// nothing. The child never touches the lock (it never forks, and never unlocks its copy).
static DESCRIPTORS: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());

/// The descriptor registry, locked; see [`DESCRIPTORS`].
pub(super) struct Descriptors(MutexGuard<'static, Vec<RawFd>>);

impl Descriptors {
    pub(super) fn lock() -> Descriptors {
        Descriptors(DESCRIPTORS.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A new close-on-exec pipe (read end, write end), registered.
    pub(super) fn pipe(&mut self) -> nix::Result<(OwnedFd, OwnedFd)> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        self.0.push(r.as_raw_fd());
        self.0.push(w.as_raw_fd());
        Ok((r, w))
    }

    /// Every registered descriptor but those in `keep`: what a new worker must close.
    pub(super) fn others(&self, keep: &[RawFd]) -> Vec<RawFd> {
        self.0.iter().copied().filter(|fd| !keep.contains(fd)).collect()
    }

    /// Unregisters and closes `fd`.
    pub(super) fn close(&mut self, fd: OwnedFd) {
        let raw = fd.as_raw_fd();
        self.0.retain(|&d| d != raw);
        drop(fd);
    }
}

/// A registered descriptor, unregistered and closed on drop.
#[derive(Debug)]
pub(super) struct CallFd(Option<OwnedFd>);

impl CallFd {
    /// Takes `fd`, which [`Descriptors::pipe`] registered.
    pub(super) fn new(fd: OwnedFd) -> CallFd {
        CallFd(Some(fd))
    }

    pub(super) fn raw(&self) -> RawFd {
        self.0.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    pub(super) fn borrow(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.0.as_ref().expect("a live descriptor").as_fd()
    }
}

/// Waits until one of `fds` is readable (or its writer closed it) or `timeout` passes, and
/// says which are: one flag per descriptor, in order. A signal that interrupts the wait
/// counts as the time-out (nothing ready); any other failure of `poll` panics.
pub(super) fn readable<'a>(
    fds: impl IntoIterator<Item = &'a CallFd>,
    timeout: nix::poll::PollTimeout,
) -> Vec<bool> {
    use nix::poll::{PollFd, PollFlags, poll};
    let mut fds: Vec<PollFd<'_>> =
        fds.into_iter().map(|fd| PollFd::new(fd.borrow(), PollFlags::POLLIN)).collect();
    match poll(&mut fds, timeout) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => panic!("parfor: fork engine: poll failed: {e}"),
    }
    fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect()
}

impl Drop for CallFd {
    fn drop(&mut self) {
        if let Some(fd) = self.0.take() {
            Descriptors::lock().close(fd);
        }
    }
}

/// The `SIGCHLD` disposition the program had when the first of the running fork calls
/// started, if it had to be changed; and how many fork calls run.
struct ChildSignal {
    calls: usize,
    saved: Option<libc::sigaction>,
}

static CHILD_SIGNAL: Mutex<ChildSignal> = Mutex::new(ChildSignal { calls: 0, saved: None });

/// Keeps `SIGCHLD` waitable while fork calls run.
///
/// A program that sets `SIGCHLD` to `SIG_IGN` (or sets `SA_NOCLDWAIT`) tells the kernel to
/// discard its children's exit statuses: a call could then not tell how a worker ended. The
/// first call that starts restores the default disposition (keeping a handler the program
/// installed), and the last one that ends puts the program's back. Children of the program
/// that end meanwhile stay zombies until it waits for them (or for good, if it never does).
/// A disposition changed by another thread during a call is noticed when a worker's status
/// is missing, and reported as such.
pub(super) struct WaitableChildren(());

impl WaitableChildren {
    pub(super) fn enter() -> WaitableChildren {
        let mut st = CHILD_SIGNAL.lock().unwrap_or_else(|e| e.into_inner());
        if st.calls == 0 {
            // SAFETY: an all-zero `sigaction` is a valid value (no handler, empty mask).
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: reads the current disposition into a live local; changes nothing.
            let read = unsafe { libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) };
            let ignored = old.sa_sigaction == libc::SIG_IGN;
            if read == 0 && (ignored || old.sa_flags & libc::SA_NOCLDWAIT != 0) {
                let mut waitable = old;
                waitable.sa_flags &= !libc::SA_NOCLDWAIT;
                if ignored {
                    waitable.sa_sigaction = libc::SIG_DFL;
                }
                // SAFETY: installs the default disposition, or the program's own handler
                // without `SA_NOCLDWAIT`: no new code runs on the signal.
                if unsafe { libc::sigaction(libc::SIGCHLD, &waitable, std::ptr::null_mut()) } == 0 {
                    st.saved = Some(old);
                }
            }
        }
        st.calls += 1;
        WaitableChildren(())
    }
}

impl Drop for WaitableChildren {
    fn drop(&mut self) {
        let mut st = CHILD_SIGNAL.lock().unwrap_or_else(|e| e.into_inner());
        st.calls -= 1;
        if st.calls == 0
            && let Some(old) = st.saved.take()
        {
            // SAFETY: puts back the disposition the program had before the calls.
            unsafe { libc::sigaction(libc::SIGCHLD, &old, std::ptr::null_mut()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipes_are_registered_until_closed() {
        let mut d = Descriptors::lock();
        let (r, w) = d.pipe().unwrap();
        let (rr, wr) = (r.as_raw_fd(), w.as_raw_fd());
        assert!(d.others(&[wr]).contains(&rr) && !d.others(&[wr]).contains(&wr));
        d.close(w);
        assert!(!d.others(&[]).contains(&wr));
        drop(d);
        drop(CallFd::new(r));
        assert!(!Descriptors::lock().others(&[]).contains(&rr));
    }
}
