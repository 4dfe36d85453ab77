//! The threads that run detached streams' workers, kept for the next stream.
//!
//! Starting a thread costs tens of microseconds (45-80 us for two here), more than a short
//! stream's whole work. A worker thread that finishes its job waits [`IDLE`] for another
//! one before it ends, so streams started one after the other reuse the same threads; at
//! most [`MAX_IDLE`] wait at a time.
//!
//! Handing a job over is race-free: an idle thread is listed with the sender of its own
//! channel. [`run`] takes a thread off the list before sending to it; a thread whose wait
//! timed out ends only if it can take itself off the list, under the same lock; if it is no
//! longer listed, a job is on its way and it waits for it.
//!
//! The process that first used the pool owns it; any other process starts a thread per job.
//! So a forked child (a fork worker, or any child of a program that forks without `exec`)
//! never touches its copy of the parent's list, which names threads that do not exist in the
//! child (a job sent to one would never run), under a lock that a thread of the parent may
//! have held at the fork. A child of a process that never used the pool owns a fresh one.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A job for a worker thread.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long a thread waits for another job before it ends.
pub(crate) const IDLE: Duration = Duration::from_secs(5);

/// The most threads that wait for a job at once.
pub(crate) const MAX_IDLE: usize = 64;

/// An idle thread: its id and where to send its next job.
struct Idle {
    id: u64,
    jobs: Sender<Job>,
}

static IDLE_THREADS: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

fn idle() -> MutexGuard<'static, Vec<Idle>> {
    // The list stays consistent whatever panicked while holding it (pushes and removals).
    IDLE_THREADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process that owns the list (0 until the first job): set before the list's lock is
/// first taken, so a child forked at any moment sees its parent's id here, not its own.
static OWNER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Whether this process owns the list (see the module docs).
fn owned_here() -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    let me = std::process::id();
    match OWNER.compare_exchange(0, me, SeqCst, SeqCst) {
        Ok(_) => true,
        Err(owner) => owner == me,
    }
}

/// Runs `job` on a waiting thread, or on a new one; the error of starting a thread.
pub(crate) fn run(job: Job) -> std::io::Result<()> {
    if !owned_here() {
        return std::thread::Builder::new().name("parfor-stream".into()).spawn(job).map(drop);
    }
    let mut job = job;
    loop {
        let Some(thread) = idle().pop() else { break };
        // A listed thread waits on its channel until it is taken off the list (by us, just
        // now), so the send fails only if that thread died, and then gives the job back.
        match thread.jobs.send(job) {
            Ok(()) => return Ok(()),
            Err(back) => job = back.0,
        }
    }
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::thread::Builder::new().name("parfor-stream".into()).spawn(move || serve(id, job)).map(drop)
}

/// A pool thread: runs `job`, then each job sent to it while it is listed as idle.
fn serve(id: u64, job: Job) {
    let (tx, rx): (Sender<Job>, Receiver<Job>) = channel();
    let mut job = job;
    loop {
        job();
        {
            let mut list = idle();
            if list.len() >= MAX_IDLE {
                return;
            }
            list.push(Idle { id, jobs: tx.clone() });
        }
        job = loop {
            match rx.recv_timeout(IDLE) {
                Ok(next) => break next,
                Err(RecvTimeoutError::Timeout) => {
                    let mut list = idle();
                    if let Some(k) = list.iter().position(|t| t.id == id) {
                        list.swap_remove(k);
                        return;
                    }
                    // Taken off the list by `run`: its job is on the way.
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn thread_id_of(job_runs: &Arc<AtomicUsize>) -> std::thread::ThreadId {
        let (tx, rx) = channel();
        let runs = Arc::clone(job_runs);
        run(Box::new(move || {
            runs.fetch_add(1, Ordering::SeqCst);
            tx.send(std::thread::current().id()).unwrap();
        }))
        .unwrap();
        rx.recv_timeout(Duration::from_secs(60)).expect("the job ran")
    }

    #[test]
    fn jobs_run_once_each_and_reuse_idle_threads() {
        let runs = Arc::new(AtomicUsize::new(0));
        let first = thread_id_of(&runs);
        // The first job's thread lists itself as idle once the job returned; give it the
        // moment that takes, then the next job runs there.
        let mut reused = false;
        for _ in 0..200 {
            std::thread::sleep(Duration::from_millis(5));
            if thread_id_of(&runs) == first {
                reused = true;
                break;
            }
        }
        assert!(reused, "no job ran on the first job's thread again");
        // Many jobs at once from several threads: each runs exactly once.
        let before = runs.load(Ordering::SeqCst);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..25 {
                        thread_id_of(&runs);
                    }
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), before + 200);
    }

    /// A child forked while the pool has idle threads (listed, but absent from the child)
    /// still runs its jobs.
    #[cfg(unix)]
    #[test]
    fn a_forked_child_runs_its_jobs_on_threads_of_its_own() {
        let runs = Arc::new(AtomicUsize::new(0));
        // A thread waits for a job (other tests may take waiting threads meanwhile).
        let waiting = (0..400).any(|_| {
            thread_id_of(&runs);
            std::thread::sleep(Duration::from_millis(5));
            !idle().is_empty()
        });
        assert!(waiting, "no thread waits for a job");
        // SAFETY: the child only starts a thread through `run`, waits for it on a channel and
        // leaves with `_exit` (glibc makes the allocator usable in a child of a threaded
        // parent).
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let (tx, rx) = channel::<()>();
            let code = match run(Box::new(move || tx.send(()).unwrap())) {
                Ok(()) => match rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(()) => 0,
                    Err(_) => 1,
                },
                Err(_) => 2,
            };
            // SAFETY: ends the child at once, without the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "the child did not exit: status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "1: the job never ran; 2: no thread");
    }

    #[test]
    fn a_panicking_job_ends_its_thread_only() {
        let (tx, rx) = channel::<()>();
        run(Box::new(move || {
            let _tx = tx;
            panic!("a job that panics");
        }))
        .unwrap();
        // The job's sender is dropped when it unwinds.
        assert!(rx.recv_timeout(Duration::from_secs(60)).is_err());
        let runs = Arc::new(AtomicUsize::new(0));
        thread_id_of(&runs);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
