//! Peak memory of this process and its children (fork workers): the sum of their proportional
//! set sizes (PSS, from `/proc/PID/smaps_rollup`), sampled every few milliseconds by a
//! background thread. PSS splits each shared page among the processes that map it, so pages
//! shared copy-on-write between the parent and its workers count once in the sum.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A `kB` field of `/proc/self/status` in MiB (`VmRSS:`, `VmHWM:`); 0 where it cannot be read
/// (off Linux).
pub fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The PSS of process `pid` in bytes, if it can be read.
pub fn pss_of(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The pids of this process's children (of every thread).
pub fn children() -> Vec<String> {
    let mut kids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return kids };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            kids.extend(list.split_whitespace().map(str::to_owned));
        }
    }
    kids
}

/// The PSS of this process plus its children, in bytes.
///
/// The children are listed before this process's PSS is read: a child forked between reading
/// the parent (while it still owned its pages alone) and reading the child (which by then
/// shares them) would count the shared pages twice. Listed first, every child read was
/// already sharing when the parent was read. A sample during which the set of children
/// changed is taken again (a few times at most), so exits do not lower the sum either.
pub fn total_pss() -> u64 {
    let mut total = 0;
    for _ in 0..4 {
        let kids = children();
        let own = pss_of("self").unwrap_or(0);
        total = own + kids.iter().filter_map(|pid| pss_of(pid)).sum::<u64>();
        if children() == kids {
            break;
        }
    }
    total
}

/// Samples [`total_pss`] until dropped or [`PeakPss::stop`]ped, keeping the peak.
pub struct PeakPss {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl PeakPss {
    pub fn start() -> PeakPss {
        let peak = Arc::new(AtomicU64::new(total_pss()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(total_pss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        PeakPss { peak, stop, handle: Some(handle) }
    }

    /// Stops sampling; the peak in bytes.
    pub fn stop(mut self) -> u64 {
        self.finish();
        self.peak.load(Ordering::Relaxed)
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.peak.fetch_max(total_pss(), Ordering::Relaxed);
    }
}

impl Drop for PeakPss {
    fn drop(&mut self) {
        self.finish();
    }
}
