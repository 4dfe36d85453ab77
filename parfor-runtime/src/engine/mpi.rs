//! The mpi engine: the ranks of an MPI job (`mpirun -n N`, `srun`) share a call's blocks.
//!
//! SPMD: every rank runs the program and makes the same call with the same inputs. A call
//! runs in three steps, the same on every rank:
//!
//! 1. **Check.** The ranks all-gather what they see of the call (its sequence number, call
//!    site, number of items, block size, schedule, error mode); when the views differ, every
//!    rank panics with a message listing each rank's view.
//! 2. **Run.** Each rank runs blocks on `workers` threads. With the dynamic schedule a thread
//!    claims the next block with `MPI_Fetch_and_op` on a counter in a window on rank 0; with
//!    the static schedule rank `r` runs the `r`-th contiguous run of blocks. A block's outcome
//!    is encoded the way the fork engine's workers encode it (the job's [`Remote::encode`], raw
//!    bytes for plain-old-data results; [`crate::protocol`]), stored in this rank at once,
//!    and appended to the rank's outgoing records. A failure in `fail` mode adds a large
//!    number to the counter, so no rank claims another block.
//! 3. **Exchange.** The ranks all-gather their records, and each rank stores the records of
//!    the others. Every rank then holds every block's outcome, and returns the same result as
//!    the serial engine (reductions are combined in block order by the caller, failures keep
//!    the lowest index).
//!
//! Records are 64-byte aligned (so raw plain-old-data results can be read in place) and the
//! exchange counts in 64-byte units, so a call may exchange up to 128 GiB per rank.
//!
//! MPI is initialised on the first call (or helper) in a process launched by `mpirun` or
//! `srun`; a process not launched that way runs every call as one rank, on the threads engine.
//! At exit, a hook finalizes MPI when no call is running, and calls `MPI_Abort` when the
//! process exits from inside a call (a rank that calls `exit` in an item): a finalize there
//! would wait forever for ranks still in the call. Fork workers never run the hook.
//!
//! Asynchronous progress: on one node Open MPI performs the counter's atomics in shared
//! memory; between nodes (TCP) a rank 0 busy in an item could stall the others' claims, so
//! when the job spans nodes rank 0 runs a progress thread during the run step (set
//! `PARFOR_MPI_PROGRESS=1` or `0` to force it on or off).

use super::Backend;
use super::ItemHook;
use crate::config::WorkersFrom;
use crate::error::Cause;
use crate::job::{Job, Remote, Run, fail_range};
use crate::options::Schedule;
use crate::plan::Plan;
use crate::protocol::{self, Decoder, Encoder, HEADER, Header, Kind};
use crate::worker::as_worker;
use mpi::ffi;
use std::ffi::{c_int, c_void};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

pub(crate) struct Mpi;

/// The unit of every buffer the ranks exchange.
const LINE: usize = 64;

/// 64 bytes, aligned to 64: any plain-old-data result of alignment up to 64 can be read in
/// place from a buffer of lines.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; LINE]);

/// Added to the block counter to stop every rank's claims (far above any block count).
const STOP: u64 = 1 << 48;

/// The MPI state of this process, set up on first use.
pub(crate) struct World {
    /// parfor's own duplicate of `MPI_COMM_WORLD`, so the user's messages never match ours.
    comm: ffi::MPI_Comm,
    rank: usize,
    size: usize,
    /// Ranks on this node.
    local: usize,
    /// Whether several threads may call MPI at once (`MPI_THREAD_MULTIPLE`).
    multiple: bool,
    /// Whether threads other than the main one may call MPI (one at a time).
    serialized: bool,
    /// Whether rank 0 runs a progress thread during the run step.
    progress: bool,
    /// The block counter: a `u64` on rank 0 (nothing elsewhere).
    win: ffi::MPI_Win,
    /// A 64-byte contiguous datatype, the unit of the exchange.
    line_type: ffi::MPI_Datatype,
    /// Serialises parfor's MPI calls from several threads.
    lock: Mutex<()>,
    /// Whether parfor initialised MPI (and so finalizes it at exit).
    owns: bool,
    pid: u32,
}

// SAFETY: the handles are opaque identifiers that MPI lets any thread use (parfor asks for
// `MPI_THREAD_MULTIPLE`, and serialises its calls through `lock` when it gets less); they are
// never freed while the process may still use them (only by the exit hook).
unsafe impl Send for World {}
// SAFETY: as above; the other fields are plain data or synchronised.
unsafe impl Sync for World {}

/// `None`: the process was not launched by `mpirun`/`srun` and runs as one rank without MPI.
static WORLD: OnceLock<Option<World>> = OnceLock::new();
/// Calls of this process running on the mpi engine.
static IN_CALL: AtomicUsize = AtomicUsize::new(0);
/// Calls made on the mpi engine so far, for the check that ranks make the same calls.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Whether an mpi call is running in this process (a call made now comes from one of its
/// items).
pub(crate) fn in_call() -> bool {
    IN_CALL.load(Ordering::Relaxed) > 0
}

/// Whether this process was started by an MPI launcher.
pub(crate) fn launched() -> bool {
    crate::mpi_api::launched_size().is_some()
}

/// Aborts the job after an MPI call failed (the default handler aborts before this).
fn check(rc: c_int, what: &str) {
    if rc != 0 {
        eprintln!("parfor: {what} failed with MPI error {rc}; aborting the MPI job");
        // SAFETY: MPI is initialised (the failed call needed it); aborting is always allowed.
        unsafe { ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, 1) };
        std::process::abort();
    }
}

/// This process's MPI state, set up on first use; `None` when not launched by MPI.
pub(crate) fn world() -> Option<&'static World> {
    WORLD.get_or_init(|| launched().then(init)).as_ref()
}

fn init() -> World {
    let mut flag: c_int = 0;
    // SAFETY: `MPI_Initialized` may be called at any time and writes one int.
    check(unsafe { ffi::MPI_Initialized(&mut flag) }, "MPI_Initialized");
    let owns = flag == 0;
    let mut provided: c_int = 0;
    if owns {
        // SAFETY: MPI is not initialised yet (checked above); null argc/argv are allowed.
        let rc = unsafe {
            ffi::MPI_Init_thread(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                ffi::RSMPI_THREAD_MULTIPLE,
                &mut provided,
            )
        };
        check(rc, "MPI_Init_thread");
        // SAFETY: `at_exit` is an `extern "C" fn()` that never unwinds.
        unsafe { libc::atexit(at_exit) };
    } else {
        // SAFETY: MPI is initialised (the user did it); writes one int.
        check(unsafe { ffi::MPI_Query_thread(&mut provided) }, "MPI_Query_thread");
    }
    // SAFETY: reading MPI's constant null handles, initialised by the library.
    let (mut comm, mut local_comm, mut win, mut line_type) = unsafe {
        (ffi::RSMPI_COMM_NULL, ffi::RSMPI_COMM_NULL, ffi::RSMPI_WIN_NULL, ffi::RSMPI_DATATYPE_NULL)
    };
    let (mut rank, mut size): (c_int, c_int) = (0, 0);
    let mut local: c_int = 1;
    let mut base: *mut u64 = std::ptr::null_mut();
    // SAFETY: MPI is initialised; every pointer passed is to a live local of the right type,
    // and every rank makes these collective calls in this order (on its first use of MPI
    // through parfor).
    unsafe {
        check(ffi::MPI_Comm_dup(ffi::RSMPI_COMM_WORLD, &mut comm), "MPI_Comm_dup");
        check(ffi::MPI_Comm_rank(comm, &mut rank), "MPI_Comm_rank");
        check(ffi::MPI_Comm_size(comm, &mut size), "MPI_Comm_size");
        let rc = ffi::MPI_Comm_split_type(
            comm,
            ffi::RSMPI_COMM_TYPE_SHARED,
            0,
            ffi::RSMPI_INFO_NULL,
            &mut local_comm,
        );
        check(rc, "MPI_Comm_split_type");
        check(ffi::MPI_Comm_size(local_comm, &mut local), "MPI_Comm_size");
        check(ffi::MPI_Comm_free(&mut local_comm), "MPI_Comm_free");
        let bytes: ffi::MPI_Aint = if rank == 0 { 8 } else { 0 };
        let rc = ffi::MPI_Win_allocate(
            bytes,
            8,
            ffi::RSMPI_INFO_NULL,
            comm,
            (&raw mut base).cast::<c_void>(),
            &mut win,
        );
        check(rc, "MPI_Win_allocate");
        if rank == 0 {
            base.write(0);
        }
        check(ffi::MPI_Win_lock_all(0, win), "MPI_Win_lock_all");
        check(
            ffi::MPI_Type_contiguous(LINE as c_int, ffi::RSMPI_UINT8_T, &mut line_type),
            "MPI_Type_contiguous",
        );
        check(ffi::MPI_Type_commit(&mut line_type), "MPI_Type_commit");
        check(ffi::MPI_Barrier(comm), "MPI_Barrier");
    }
    // SAFETY: reading MPI's constant thread levels, initialised by the library.
    let (level_multiple, level_serialized) =
        unsafe { (ffi::RSMPI_THREAD_MULTIPLE, ffi::RSMPI_THREAD_SERIALIZED) };
    let multiple = provided >= level_multiple;
    let multi_node = local < size;
    let progress = match std::env::var("PARFOR_MPI_PROGRESS").as_deref().map(str::trim) {
        Ok("1") => true,
        Ok("0") => false,
        _ => multi_node,
    } && multiple
        && rank == 0;
    World {
        comm,
        rank: rank as usize,
        size: size.max(1) as usize,
        local: local.max(1) as usize,
        multiple,
        serialized: provided >= level_serialized,
        progress,
        win,
        line_type,
        lock: Mutex::new(()),
        owns,
        pid: std::process::id(),
    }
}

/// Finalizes MPI at exit, or aborts the job when the process exits inside a call.
extern "C" fn at_exit() {
    let Some(Some(w)) = WORLD.get() else { return };
    if std::process::id() != w.pid || !w.owns {
        // A fork worker, or MPI belongs to the user.
        return;
    }
    if in_call() {
        eprintln!(
            "parfor: rank {} exits inside a call on the mpi engine; aborting the MPI job (the \
             other ranks would wait for it forever)",
            w.rank
        );
        // SAFETY: MPI is initialised and not finalized (the hook runs once, at exit).
        unsafe { ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, 1) };
        return;
    }
    let mut win = w.win;
    let mut comm = w.comm;
    let mut line_type = w.line_type;
    // SAFETY: no call is running, so nothing uses the window, the datatype or the
    // communicator any more; every rank that returns normally from `main` frees them in this
    // order, then finalizes (all collective).
    unsafe {
        ffi::MPI_Win_unlock_all(win);
        ffi::MPI_Win_free(&mut win);
        ffi::MPI_Type_free(&mut line_type);
        ffi::MPI_Comm_free(&mut comm);
        ffi::MPI_Finalize();
    }
}

impl World {
    /// This rank.
    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    fn lock(&self) -> Option<MutexGuard<'_, ()>> {
        (!self.multiple).then(|| self.lock.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Adds `v` to the block counter on rank 0; returns its previous value.
    fn fetch_add(&self, v: u64) -> u64 {
        let _g = self.lock();
        let mut old = 0u64;
        // SAFETY: the window holds one `u64` at displacement 0 on rank 0 and stays alive
        // (freed only at exit); the shared lock on every target was taken at creation;
        // `v` and `old` are live locals of the datatype's size.
        unsafe {
            let rc = ffi::MPI_Fetch_and_op(
                (&raw const v).cast::<c_void>(),
                (&raw mut old).cast::<c_void>(),
                ffi::RSMPI_UINT64_T,
                0,
                0,
                ffi::RSMPI_SUM,
                self.win,
            );
            check(rc, "MPI_Fetch_and_op");
            check(ffi::MPI_Win_flush(0, self.win), "MPI_Win_flush");
        }
        old
    }

    /// Every rank's `mine`, in rank order (`mine` has the same length on every rank).
    pub(crate) fn all_gather_u64(&self, mine: &[u64]) -> Vec<u64> {
        let mut all = vec![0u64; mine.len() * self.size];
        let _g = self.lock();
        // SAFETY: `mine` holds `mine.len()` u64 and `all` room for that many per rank; every
        // rank passes the same count (the caller's contract, true of every use here).
        let rc = unsafe {
            ffi::MPI_Allgather(
                mine.as_ptr().cast::<c_void>(),
                mine.len() as c_int,
                ffi::RSMPI_UINT64_T,
                all.as_mut_ptr().cast::<c_void>(),
                mine.len() as c_int,
                ffi::RSMPI_UINT64_T,
                self.comm,
            )
        };
        check(rc, "MPI_Allgather");
        all
    }

    /// Every rank's lines, concatenated in rank order, with each rank's number of lines.
    fn all_gather_lines(&self, mine: &[Line]) -> (Vec<Line>, Vec<usize>) {
        let counts: Vec<usize> =
            self.all_gather_u64(&[mine.len() as u64]).into_iter().map(|c| c as usize).collect();
        let total: usize = counts.iter().sum();
        let too_big = || -> ! {
            panic!(
                "parfor: an mpi call's results are too large to exchange ({total} x 64 bytes; \
                 at most {} per rank and in all)",
                c_int::MAX
            )
        };
        if c_int::try_from(total).is_err() {
            too_big();
        }
        let recv_counts: Vec<c_int> = counts.iter().map(|&c| c as c_int).collect();
        let mut displs = Vec::with_capacity(self.size);
        let mut at = 0usize;
        for &c in &counts {
            displs.push(at as c_int);
            at += c;
        }
        let mut all = take_buffer(total);
        // Bytes count in bytes when they fit a C int (MPI's fastest path), else in lines.
        let (unit, scale) = if c_int::try_from(total * LINE).is_ok() {
            // SAFETY: reading MPI's constant datatype handle.
            (unsafe { ffi::RSMPI_UINT8_T }, LINE)
        } else {
            (self.line_type, 1)
        };
        let recv_counts: Vec<c_int> = recv_counts.iter().map(|&c| c * scale as c_int).collect();
        let displs: Vec<c_int> = displs.iter().map(|&d| d * scale as c_int).collect();
        let _g = self.lock();
        // SAFETY: `mine` holds `mine.len()` lines (this rank's entry of `counts`); `all` has
        // capacity for the sum of `counts` lines, and `displs` are the prefix sums, so every
        // rank's lines land inside it; counts fit a C int (checked above, and the byte counts
        // are used only when the total fits).
        let rc = unsafe {
            ffi::MPI_Allgatherv(
                mine.as_ptr().cast::<c_void>(),
                (mine.len() * scale) as c_int,
                unit,
                all.as_mut_ptr().cast::<c_void>(),
                recv_counts.as_ptr(),
                displs.as_ptr(),
                unit,
                self.comm,
            )
        };
        check(rc, "MPI_Allgatherv");
        // SAFETY: the all-gather wrote every byte of the `total` lines (the counts add up to
        // `total`), and any bytes are a valid `Line`.
        unsafe { all.set_len(total) };
        (all, counts)
    }

    /// Every rank's bytes, in rank order.
    pub(crate) fn all_gather_bytes(&self, mine: &[u8]) -> Vec<Vec<u8>> {
        let mut lines = Lines::default();
        let len = mine.len() as u64;
        lines.push(&len.to_le_bytes());
        lines.push(mine);
        let (all, counts) = self.all_gather_lines(&lines.0);
        let mut out = Vec::with_capacity(self.size);
        let mut at = 0;
        for c in counts {
            let bytes = as_bytes(&all[at..at + c]);
            let len = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) as usize;
            out.push(bytes[LINE..LINE + len].to_vec());
            at += c;
        }
        out
    }

    /// Broadcasts `bytes` from rank 0 (its `bytes` wins on every rank).
    pub(crate) fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let mut len = [bytes.len() as u64];
        let _g = self.lock();
        // SAFETY: `len` is one live u64 on every rank.
        let rc = unsafe {
            ffi::MPI_Bcast(len.as_mut_ptr().cast::<c_void>(), 1, ffi::RSMPI_UINT64_T, 0, self.comm)
        };
        check(rc, "MPI_Bcast");
        bytes.resize(len[0] as usize, 0);
        for chunk in bytes.chunks_mut(1 << 30) {
            // SAFETY: `chunk` is live and holds `chunk.len()` (< 2^31) bytes, the same count
            // on every rank (the lengths were broadcast).
            let rc = unsafe {
                ffi::MPI_Bcast(
                    chunk.as_mut_ptr().cast::<c_void>(),
                    chunk.len() as c_int,
                    ffi::RSMPI_UINT8_T,
                    0,
                    self.comm,
                )
            };
            check(rc, "MPI_Bcast");
        }
    }

    /// Waits until every rank gets here.
    pub(crate) fn barrier(&self) {
        let _g = self.lock();
        // SAFETY: the communicator is live.
        check(unsafe { ffi::MPI_Barrier(self.comm) }, "MPI_Barrier");
    }
}

/// Buffers of earlier calls, kept so a call's buffers are already mapped (a fresh 32 MB
/// buffer costs thousands of page faults, as much as exchanging it).
static SPARE: Mutex<Vec<Vec<Line>>> = Mutex::new(Vec::new());

/// The most buffers [`SPARE`] keeps, and the largest it keeps.
const SPARE_BUFFERS: usize = 3;
const SPARE_MAX_BYTES: usize = 1 << 30;

/// An empty buffer with room for `lines` lines: a kept one if one is big enough.
fn take_buffer(lines: usize) -> Vec<Line> {
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    let fit = spare.iter().position(|b| b.capacity() >= lines);
    let mut buf = match fit {
        Some(i) => spare.swap_remove(i),
        None => Vec::new(),
    };
    drop(spare);
    buf.clear();
    buf.reserve(lines);
    buf
}

/// Keeps `buf` for a later call (the largest few, up to [`SPARE_MAX_BYTES`] each).
fn give_back(buf: Vec<Line>) {
    if buf.capacity() == 0 || buf.capacity() * LINE > SPARE_MAX_BYTES {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(|e| e.into_inner());
    spare.push(buf);
    if spare.len() > SPARE_BUFFERS {
        let smallest = (0..spare.len()).min_by_key(|&i| spare[i].capacity()).unwrap_or(0);
        spare.swap_remove(smallest);
    }
}

/// Lines viewed as bytes.
fn as_bytes(lines: &[Line]) -> &[u8] {
    // SAFETY: a `Line` is 64 initialised bytes without padding.
    unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u8>(), size_of_val(lines)) }
}

/// A growing buffer of whole lines.
#[derive(Default)]
struct Lines(Vec<Line>);

impl Lines {
    fn bytes(&self) -> &[u8] {
        as_bytes(&self.0)
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = size_of_val(&self.0[..]);
        // SAFETY: a `Line` is 64 initialised bytes without padding, and any bytes are a valid
        // `Line`; the slice borrows `self` mutably.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }

    /// Appends `len` zero bytes, padded to whole lines; returns where they start.
    fn grow(&mut self, len: usize) -> usize {
        let at = size_of_val(&self.0[..]);
        self.0.resize(self.0.len() + len.div_ceil(LINE), Line([0; LINE]));
        at
    }

    /// Appends `data`, padded to whole lines; returns where it starts.
    fn push(&mut self, data: &[u8]) -> usize {
        let at = self.grow(data.len());
        self.bytes_mut()[at..at + data.len()].copy_from_slice(data);
        at
    }
}

/// One block's outcome as it travels: a line holding its [`Header`] (the rest of the line is
/// zero), the raw plain-old-data results padded to lines, then the encoded bytes padded to
/// lines.
struct Record<'a> {
    header: Header,
    pod: &'a [u8],
    bytes: &'a [u8],
}

/// The records in `bytes` (one rank's share of the exchange).
fn records(mut bytes: &[u8]) -> Result<Vec<Record<'_>>, Cause> {
    let corrupt = || Cause::Engine("corrupt results from another mpi rank".into());
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (head, rest) = bytes.split_at_checked(LINE).ok_or_else(corrupt)?;
        let head: &[u8; HEADER] = head[..HEADER].try_into().map_err(|_| corrupt())?;
        let header = Header::parse(head).ok_or_else(corrupt)?;
        let (pod_len, bytes_len) = (header.raw, header.encoded);
        let pod_lines = pod_len.div_ceil(LINE) * LINE;
        let byte_lines = bytes_len.div_ceil(LINE) * LINE;
        if rest.len() < pod_lines.saturating_add(byte_lines) {
            return Err(corrupt());
        }
        out.push(Record {
            header,
            pod: &rest[..pod_len],
            bytes: &rest[pod_lines..pod_lines + bytes_len],
        });
        bytes = &rest[pod_lines + byte_lines..];
    }
    Ok(out)
}

/// Stores one record's outcome in this rank.
fn store(job: &dyn Job, remote: &dyn Remote, r: &Record<'_>) {
    let (block, range) = (r.header.block, r.header.range.clone());
    let outcome = match r.header.kind {
        Kind::Results | Kind::Placed => {
            remote.store(block, range.clone(), r.pod, Decoder::new(r.bytes))
        }
        Kind::Error => Err(protocol::decode_error(r.bytes)),
        Kind::Task => Err(Cause::Engine("a task record among results".into())),
        // Ranks send one state per block; only fork workers fold theirs.
        Kind::Folded => Err(Cause::Engine("a folded record among results".into())),
    };
    if let Err(cause) = outcome {
        fail_range(job, range, &cause);
    }
}

/// Runs block `block` in this thread, stores its outcome here and appends its record to `buf`.
fn run_block(
    job: &dyn Job,
    remote: &dyn Remote,
    block: usize,
    range: Range<usize>,
    buf: &mut Lines,
    scratch: &mut Vec<u8>,
) {
    scratch.clear();
    let head = buf.grow(LINE);
    let mut pod_len = remote.raw_size().map_or(0, |size| range.len() * size);
    let at = buf.grow(pod_len);
    let raw = &mut buf.bytes_mut()[at..at + pod_len];
    let outcome =
        remote.encode(block, range.clone(), ItemHook::NONE, raw, &mut Encoder::new(scratch));
    let mut kind = Kind::Results;
    if let Err(cause) = outcome {
        // The whole range failed: drop any raw results, keep the cause.
        kind = Kind::Error;
        pod_len = 0;
        buf.0.truncate(head / LINE + 1);
        scratch.clear();
        protocol::encode_error(&cause, scratch);
    }
    buf.push(scratch);
    let header = Header { kind, worker: 0, block, range, raw: pod_len, encoded: scratch.len() };
    buf.bytes_mut()[head..head + HEADER].copy_from_slice(&header.to_bytes());
    let pod_at = head + LINE;
    let record = Record { header, pod: &buf.bytes()[pod_at..pod_at + pod_len], bytes: scratch };
    store(job, remote, &record);
}

/// How a rank's threads find their next block.
struct Claims<'a> {
    world: &'a World,
    /// The counter's value when the call started.
    base: u64,
    blocks: usize,
    schedule: Schedule,
    /// Static: this rank's blocks, claimed locally.
    mine: Range<usize>,
    next: AtomicUsize,
    /// Whether this rank already told the others to stop.
    stopped: AtomicBool,
    /// Whether a stop by another rank can happen (not when failures are collected).
    can_stop: bool,
}

impl Claims<'_> {
    fn next(&self, job: &dyn Job) -> Option<usize> {
        if job.failures().stopped() {
            self.stop();
            return None;
        }
        match self.schedule {
            Schedule::Static => {
                let b = self.mine.start + self.next.fetch_add(1, Ordering::Relaxed);
                if b >= self.mine.end {
                    return None;
                }
                if self.can_stop && self.world.fetch_add(0).wrapping_sub(self.base) >= STOP {
                    return None;
                }
                Some(b)
            }
            _ => {
                let b = self.world.fetch_add(1).wrapping_sub(self.base);
                (b < self.blocks as u64).then_some(b as usize)
            }
        }
    }

    /// Stops every rank's claims (once per rank).
    fn stop(&self) {
        if self.can_stop && !self.stopped.swap(true, Ordering::Relaxed) {
            self.world.fetch_add(STOP);
        }
    }
}

/// Marks this process as inside an mpi call until dropped.
struct InCall;

impl InCall {
    fn enter() -> InCall {
        IN_CALL.fetch_add(1, Ordering::SeqCst);
        InCall
    }
}

impl Drop for InCall {
    fn drop(&mut self) {
        IN_CALL.fetch_sub(1, Ordering::SeqCst);
    }
}

/// FNV-1a of the call site, so ranks compare it as a number.
fn site_hash(site: &std::panic::Location<'_>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let line = site.line().to_le_bytes();
    let col = site.column().to_le_bytes();
    for b in site.file().bytes().chain(line).chain(col) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Words of a call's view that every rank must share (the base counter follows them).
const VIEW: usize = 6;

/// Checks that every rank makes the same call; returns the counter's base (read by rank 0).
fn check_same_call(
    w: &World,
    job: &dyn Job,
    remote: &dyn Remote,
    plan: &Plan,
    run: &Run,
    seq: u64,
) -> u64 {
    let base = if w.rank == 0 { w.fetch_add(0) } else { 0 };
    let flags = u64::from(run.schedule == Schedule::Static)
        | u64::from(job.failures().collect()) << 1
        | (remote.raw_size().map_or(0, |s| s as u64 + 1) << 8);
    let view = [
        seq,
        site_hash(run.site),
        plan.len() as u64,
        plan.block_size() as u64,
        flags,
        w.size as u64,
        base,
    ];
    let all = w.all_gather_u64(&view);
    let per = view.len();
    let same = all.chunks(per).all(|v| v[..VIEW] == view[..VIEW]);
    if !same {
        let mine = format!(
            "call #{} at {}, {} items in blocks of {}, schedule {:?}, on_error {}",
            seq + 1,
            run.site,
            plan.len(),
            plan.block_size(),
            run.schedule,
            if job.failures().collect() { "collect" } else { "fail" }
        );
        let views = w.all_gather_bytes(mine.as_bytes());
        let lines: Vec<String> = views
            .iter()
            .enumerate()
            .map(|(r, v)| format!("\n  rank {r}: {}", String::from_utf8_lossy(v)))
            .collect();
        panic!(
            "parfor: the mpi ranks reached different calls (every rank must make the same \
             parfor calls with the same inputs; use `parfor::mpi::broadcast` for inputs that \
             differ):{}",
            lines.concat()
        );
    }
    all[VIEW]
}

/// Threads per rank: the `workers` option or `PARFOR_WORKERS`, else the cores of this node
/// divided by the ranks on it.
fn threads_per_rank(w: &World, run: &Run) -> usize {
    match run.workers.from {
        WorkersFrom::Default => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / w.local).max(1)
        }
        _ => run.workers.count.max(1),
    }
}

/// parfor's pool for a rank's threads, kept between calls.
static POOL: Mutex<Option<Arc<rayon::ThreadPool>>> = Mutex::new(None);

fn pool(threads: usize) -> Arc<rayon::ThreadPool> {
    let mut slot = POOL.lock().unwrap_or_else(|e| e.into_inner());
    match &*slot {
        Some(p) if p.current_num_threads() == threads => Arc::clone(p),
        _ => {
            let p = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("parfor-mpi-{i}"))
                .build()
                .unwrap_or_else(|e| panic!("parfor: cannot start {threads} threads: {e}"));
            let p = Arc::new(p);
            *slot = Some(Arc::clone(&p));
            p
        }
    }
}

/// One thread's share of the run step: claims and runs blocks until none is left.
fn work(
    job: &dyn Job,
    remote: &dyn Remote,
    plan: &Plan,
    claims: &Claims<'_>,
    id: usize,
    share: usize,
) -> Lines {
    // Room for this thread's expected share of raw results, so the buffer rarely moves.
    let mut buf = Lines(take_buffer(match remote.raw_size() {
        Some(size) => (share * size).div_ceil(LINE) + 2 * plan.blocks() / claims.world.size + 2,
        None => 0,
    }));
    let mut scratch = Vec::new();
    as_worker(id, || {
        while let Some(b) = claims.next(job) {
            run_block(job, remote, b, plan.range(b), &mut buf, &mut scratch);
        }
    });
    if job.failures().stopped() {
        claims.stop();
    }
    buf
}

impl Backend for Mpi {
    fn execute(&self, job: &dyn Job, plan: &Plan, run: &Run) {
        let Some(w) = world() else {
            // Not launched by MPI: one rank, on this machine's threads.
            return super::threads::Threads.execute(job, plan, run);
        };
        let _in_call = InCall::enter();
        let seq = CALLS.fetch_add(1, Ordering::Relaxed);
        if w.size == 1 {
            // One rank: nothing to share, so nothing to encode; the threads engine runs it.
            return super::threads::Threads.execute(job, plan, run);
        }
        let Some(remote) = job.remote() else {
            let cause = Cause::Engine("this call cannot run on several mpi ranks".into());
            return fail_range(job, 0..plan.len(), &cause);
        };
        let base = check_same_call(w, job, remote, plan, run, seq);
        let blocks = plan.blocks();
        let mine = match run.schedule {
            Schedule::Static => (w.rank * blocks / w.size)..((w.rank + 1) * blocks / w.size),
            _ => 0..blocks,
        };
        let claims = Claims {
            world: w,
            base,
            blocks,
            schedule: run.schedule,
            mine: mine.clone(),
            next: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            can_stop: !job.failures().collect() && w.size > 1,
        };
        let threads =
            if w.serialized { threads_per_rank(w, run).min(mine.len()).max(1) } else { 1 };
        // Items a thread can expect to run (a little more, for dynamic imbalance).
        let share = (plan.len() / (w.size * threads)).saturating_mul(9) / 8;
        let done = AtomicBool::new(false);
        let mut bufs: Vec<Lines> = std::thread::scope(|s| {
            if w.progress {
                s.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        let mut flag: c_int = 0;
                        // SAFETY: MPI_THREAD_MULTIPLE (`progress` needs it); the probe only
                        // drives MPI's progress engine (parfor sends no point-to-point message
                        // on its communicator, so it never matches).
                        unsafe {
                            ffi::MPI_Iprobe(
                                ffi::RSMPI_ANY_SOURCE,
                                ffi::RSMPI_ANY_TAG,
                                w.comm,
                                &mut flag,
                                ffi::RSMPI_STATUS_IGNORE,
                            );
                        }
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                });
            }
            let bufs = if threads <= 1 {
                vec![work(job, remote, plan, &claims, 0, share)]
            } else {
                let out = Mutex::new(Vec::with_capacity(threads));
                pool(threads).scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|_| {
                            let id = rayon::current_thread_index().unwrap_or(0);
                            let buf = work(job, remote, plan, &claims, id, share);
                            out.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
                        });
                    }
                });
                out.into_inner().unwrap_or_else(|e| e.into_inner())
            };
            done.store(true, Ordering::Relaxed);
            bufs
        });
        let mut mine = bufs.swap_remove(0);
        for b in bufs {
            mine.0.extend_from_slice(&b.0);
            give_back(b.0);
        }
        let (all, counts) = w.all_gather_lines(&mine.0);
        give_back(mine.0);
        let mut at = 0;
        for (r, &c) in counts.iter().enumerate() {
            let part = as_bytes(&all[at..at + c]);
            at += c;
            if r == w.rank {
                continue;
            }
            match records(part) {
                Ok(recs) => recs.iter().for_each(|rec| store(job, remote, rec)),
                Err(cause) => fail_range(job, 0..plan.len(), &cause),
            }
        }
        give_back(all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_records_aligned() {
        let mut buf = Lines::default();
        assert_eq!(buf.push(b"abc"), 0);
        assert_eq!(buf.grow(65), LINE);
        assert_eq!(buf.push(b"x"), 3 * LINE);
        assert_eq!(buf.bytes().len(), 4 * LINE);
        assert_eq!(&buf.bytes()[..4], b"abc\0");
        assert!(buf.0.as_ptr().cast::<u8>().align_offset(64) == 0);
    }

    #[test]
    fn records_round_trip_and_refuse_corrupt_input() {
        let mut buf = Lines::default();
        for (kind, block, range, pod, bytes) in [
            (Kind::Results, 3usize, 30..40usize, vec![7u8; 80], vec![1u8, 2]),
            (Kind::Results, 4, 40..41, vec![], vec![9u8; 130]),
            (Kind::Error, 5, 41..50, vec![], vec![]),
        ] {
            let head = buf.grow(LINE);
            buf.push(&pod);
            buf.push(&bytes);
            let header =
                Header { kind, worker: 0, block, range, raw: pod.len(), encoded: bytes.len() };
            buf.bytes_mut()[head..head + HEADER].copy_from_slice(&header.to_bytes());
        }
        let recs = records(buf.bytes()).unwrap();
        assert_eq!(recs.len(), 3);
        let h = &recs[0].header;
        assert_eq!((h.kind, h.block, h.range.clone()), (Kind::Results, 3, 30..40));
        assert_eq!((recs[0].pod, recs[0].bytes), (&[7u8; 80][..], &[1u8, 2][..]));
        assert!(recs[0].pod.as_ptr().align_offset(64) == 0);
        assert_eq!((recs[1].header.kind, recs[1].bytes.len()), (Kind::Results, 130));
        assert_eq!((recs[2].header.kind, recs[2].header.range.clone()), (Kind::Error, 41..50));
        assert!(records(&buf.bytes()[..LINE + 10]).is_err());
        assert!(records(&buf.bytes()[..2 * LINE]).is_err());
    }

    #[test]
    fn call_sites_differ_by_line_and_column() {
        let a = std::panic::Location::caller();
        let b = std::panic::Location::caller();
        assert_ne!(site_hash(a), site_hash(b));
        assert_eq!(site_hash(a), site_hash(a));
    }
}
