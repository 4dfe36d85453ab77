//! What a forked worker pays to read its parent's memory on this machine, without parfor in
//! the way: the numbers that bound the fork engine on big inputs in 4 KiB pages.
//!
//! `cargo run --release -p parfor-bench --bin fork_pages -- [--quick] [--mib N]`
//!
//! For one input of `N` MiB (1024 by default, 64 with `--quick`) it prints:
//! - the parent's own scan of the input (its page-table entries are "young": recently used);
//! - `fork()` of the parent (the kernel copies one page-table entry per 4 KiB page);
//! - the child's first and second scan of the same input: the kernel marks every entry it
//!   copies into the child "old", and the first touch of each page through an old entry sets
//!   its accessed bit; the difference is that cost, per page;
//! - two workers as two children, one half each, against one child running two threads
//!   (one copy of the page tables instead of two), until every child has ended;
//! - the same first touch without any fork: the parent's scan after `MADV_COLD` (which makes
//!   its own entries old), to show the cost comes from the old entries and not from `fork()`;
//! - the input in `MAP_SHARED` memory: `fork()` copies no entries, and the child maps each
//!   page on its first touch (a minor fault) instead;
//! - the input in transparent huge pages (`MADV_HUGEPAGE` on a 2 MiB-aligned mapping, what
//!   `parfor::HugePages` and numpy do): one entry per 2 MiB.
//!
//! Linux only (it prints nothing elsewhere).

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::time::Instant;

    /// The scan every measurement times: count and sum, as the lomp workloads do.
    fn scan(x: &[f64]) -> f64 {
        let mut c = 0usize;
        let mut s = 0.0;
        for &v in x {
            c += usize::from(v > 0.5);
            s += v;
        }
        std::hint::black_box(c);
        std::hint::black_box(s)
    }

    fn fill(x: &mut [f64]) {
        let mut st = 0x9E37_79B9_7F4A_7C15u64;
        for v in x {
            st = st.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            *v = (st >> 11) as f64 / (1u64 << 53) as f64;
        }
    }

    fn ms(t: Instant) -> f64 {
        t.elapsed().as_secs_f64() * 1e3
    }

    /// Memory for the input, unmapped on drop.
    struct Map {
        ptr: *mut f64,
        bytes: usize,
    }

    impl Map {
        /// `len` zeroed `f64`s, `MAP_SHARED` or private, with their start aligned to `align`
        /// bytes (a power of two, at least the page size).
        fn new(len: usize, shared: bool, align: usize) -> Map {
            let bytes = len * size_of::<f64>();
            let flags =
                libc::MAP_ANONYMOUS | if shared { libc::MAP_SHARED } else { libc::MAP_PRIVATE };
            // SAFETY: a fresh anonymous mapping at an address the kernel picks; nothing else
            // refers to it.
            let raw = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes + align,
                    libc::PROT_READ | libc::PROT_WRITE,
                    flags,
                    -1,
                    0,
                )
            };
            assert!(raw != libc::MAP_FAILED, "mmap of {bytes} bytes failed");
            let start = (raw as usize).next_multiple_of(align);
            let (head, tail) = (start - raw as usize, align - (start - raw as usize));
            // SAFETY: unmaps the unaligned head and the tail beyond `bytes`, both inside the
            // mapping made above and never referred to.
            unsafe {
                if head > 0 {
                    libc::munmap(raw, head);
                }
                if tail > 0 {
                    libc::munmap((start + bytes) as *mut libc::c_void, tail);
                }
            }
            Map { ptr: start as *mut f64, bytes }
        }

        fn advise(&self, advice: libc::c_int) -> bool {
            // SAFETY: advice on this mapping's own, page-aligned range.
            unsafe { libc::madvise(self.ptr.cast(), self.bytes, advice) == 0 }
        }

        fn slice_mut(&mut self) -> &mut [f64] {
            // SAFETY: the mapping holds `bytes / 8` zero-initialised `f64`s, aligned, borrowed
            // mutably through `self` alone.
            unsafe { std::slice::from_raw_parts_mut(self.ptr, self.bytes / size_of::<f64>()) }
        }

        fn slice(&self) -> &[f64] {
            // SAFETY: as in `slice_mut`, borrowed shared through `self`.
            unsafe { std::slice::from_raw_parts(self.ptr, self.bytes / size_of::<f64>()) }
        }
    }

    impl Drop for Map {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`, no longer borrowed.
            unsafe { libc::munmap(self.ptr.cast(), self.bytes) };
        }
    }

    /// Forks a child that scans `x` twice and reports both times; returns the fork's time and
    /// the child's two scan times, in ms.
    fn fork_and_scan(x: &[f64]) -> (f64, f64, f64) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe failed");
        let t = Instant::now();
        // SAFETY: this program runs one thread here (no lock can be held by another), and the
        // child only scans memory, writes to its pipe and calls `_exit`.
        let pid = unsafe { libc::fork() };
        let fork_ms = ms(t);
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let t1 = Instant::now();
            let a = scan(x);
            let first = ms(t1);
            let t2 = Instant::now();
            let b = scan(x);
            let second = ms(t2);
            let mut msg = [0u8; 24];
            msg[..8].copy_from_slice(&first.to_le_bytes());
            msg[8..16].copy_from_slice(&second.to_le_bytes());
            msg[16..].copy_from_slice(&(a - b).to_le_bytes());
            // SAFETY: writes the 24 bytes of `msg` to the pipe's write end, then ends the
            // child without running the parent's exit handlers.
            unsafe {
                libc::write(fds[1], msg.as_ptr().cast(), msg.len());
                libc::_exit(0);
            }
        }
        // SAFETY: the parent's ends: the write end is closed, the read end owned by `File`.
        let mut reader = unsafe {
            libc::close(fds[1]);
            std::fs::File::from_raw_fd(fds[0])
        };
        let mut msg = [0u8; 24];
        reader.read_exact(&mut msg).expect("the child's report");
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let f = |k: usize| f64::from_le_bytes(msg[k * 8..k * 8 + 8].try_into().unwrap());
        assert_eq!(f(2), 0.0, "the child's two scans differ");
        (fork_ms, f(0), f(1))
    }

    /// Scans `x` in two halves in forked children and returns the time until both are done,
    /// in ms: two children forked one after the other, one half each (`one_child` false), or
    /// one child scanning both halves on two threads (one copy of the page tables).
    fn two_workers(x: &[f64], one_child: bool) -> f64 {
        let halves = x.split_at(x.len() / 2);
        let t = Instant::now();
        let children: Vec<_> = if one_child {
            // SAFETY: as in `fork_and_scan`; the child starts its own threads after the fork.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                std::thread::scope(|s| {
                    s.spawn(|| scan(halves.0));
                    scan(halves.1);
                });
                // SAFETY: ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(0) };
            }
            vec![pid]
        } else {
            [halves.0, halves.1]
                .into_iter()
                .map(|half| {
                    // SAFETY: as in `fork_and_scan`.
                    let pid = unsafe { libc::fork() };
                    if pid == 0 {
                        scan(half);
                        // SAFETY: ends the child without running the parent's exit handlers.
                        unsafe { libc::_exit(0) };
                    }
                    pid
                })
                .collect()
        };
        for pid in children {
            assert!(pid > 0, "fork failed");
            let mut status = 0;
            // SAFETY: waits for a child forked above.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        ms(t)
    }

    fn row(what: &str, ms: f64) {
        println!("{what:<64} {ms:>9.1} ms");
    }

    pub(crate) fn main() {
        let mut args = std::env::args().skip(1);
        let mut mib = 1024usize;
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => mib = 64,
                "--mib" => mib = args.next().and_then(|n| n.parse().ok()).expect("--mib N"),
                other => panic!("unknown argument {other} (try --quick or --mib N)"),
            }
        }
        let len = mib << 17;
        let pages = (mib << 20) / 4096;
        println!("fork_pages: one {mib} MiB input ({pages} pages of 4 KiB), one child");
        std::io::stdout().flush().ok();

        let mut private = Map::new(len, false, 4096);
        fill(private.slice_mut());
        let x = private.slice();
        let t = Instant::now();
        scan(x);
        let young = ms(t);
        row("parent scan (young entries)", young);
        let (fork_ms, first, second) = fork_and_scan(x);
        row("fork() of the parent", fork_ms);
        row("child: first scan", first);
        row("child: second scan", second);
        let per_page = (first - second) * 1e6 / pages as f64;
        println!("{:<64} {per_page:>9.0} ns", "child: first touch of a page, extra");
        let median = |one_child: bool| {
            let mut t: Vec<f64> = (0..3).map(|_| two_workers(x, one_child)).collect();
            t.sort_by(f64::total_cmp);
            t[1]
        };
        row("two children, one half each, until both ended (median of 3)", median(false));
        row("one child, both halves on two threads, until it ended", median(true));
        private.advise(libc::MADV_COLD);
        let t = Instant::now();
        scan(x);
        let cold = ms(t);
        row("parent scan after MADV_COLD (its entries made old, no fork)", cold);
        let per_page = (cold - young) * 1e6 / pages as f64;
        println!("{:<64} {per_page:>9.0} ns", "parent: first touch through an old entry, extra");
        drop(private);

        let mut shared = Map::new(len, true, 4096);
        fill(shared.slice_mut());
        let (fork_ms, first, second) = fork_and_scan(shared.slice());
        row("MAP_SHARED input: fork()", fork_ms);
        row("MAP_SHARED input: child's first scan (minor faults)", first);
        row("MAP_SHARED input: child's second scan", second);
        drop(shared);

        let mut huge = Map::new(len, false, 2 << 20);
        let advised = huge.advise(libc::MADV_HUGEPAGE);
        fill(huge.slice_mut());
        let (fork_ms, first, second) = fork_and_scan(huge.slice());
        let tag = if advised { "MADV_HUGEPAGE input" } else { "MADV_HUGEPAGE refused" };
        row(&format!("{tag}: fork()"), fork_ms);
        row(&format!("{tag}: child's first scan"), first);
        row(&format!("{tag}: child's second scan"), second);
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
}
