//! `#[parfor]`'s runtime: run a loop body over `n` iterations, each block of the plan folding
//! its iterations into a fresh state; the states come back in block order for the caller to
//! combine (reductions) or concatenate (`push`), so the result does not depend on the engine
//! or the worker count.

use crate::array_part::{Mode, with_mode};
use crate::engine;
use crate::error::{Cause, OnError};
use crate::job::{Failures, Job, Remote, guarded};
use crate::locals::Locals;
use crate::options::Options;
use crate::plan::Plan;
use crate::protocol::{Decoder, Encoder, Entry};
use crate::slice_out::Sliced;
use crate::wire::{Wire, required};
use std::ops::Range;
use std::sync::Mutex;

/// The state of a range that ran, keyed by its first item: `None` when it folded into its
/// worker's state.
type RangeState<S> = (usize, Option<S>);

struct FoldJob<'a, S, C, I, B, W, L> {
    ctx: C,
    init: &'a I,
    body: &'a B,
    /// Makes a worker's own state (`#[parfor(init(...))]`).
    local_init: &'a L,
    locals: &'a Locals<W>,
    /// Per block, the states of the ranges that ran, keyed by their first item; `None` for a
    /// range that folded into its worker's state (`per_worker`).
    slots: Vec<Mutex<Vec<RangeState<S>>>>,
    /// The states of the workers, when the reductions are exact in any grouping
    /// (`per_worker`): a worker folds every block it runs in its process into one state.
    worker_states: Option<Locals<S>>,
    failures: Failures,
    wire: Option<Wire<S>>,
    outputs: &'a [&'a dyn Sliced],
}

impl<S, C, I, B, W, L> FoldJob<'_, S, C, I, B, W, L>
where
    S: Send,
    C: Copy + Sync,
    I: Fn() -> S + Sync,
    B: Fn(&mut S, &mut W, C, Range<usize>, &mut Cursor<'_>) + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    /// Keeps the state of the range of block `block` that starts at item `start`.
    fn keep(&self, block: usize, start: usize, state: Option<S>) {
        let mut slot = self.slots[block].lock().unwrap_or_else(|e| e.into_inner());
        slot.push((start, state));
    }
}

impl<S, C, I, B, W, L> FoldJob<'_, S, C, I, B, W, L>
where
    S: Send,
    C: Copy + Sync,
    I: Fn() -> S + Sync,
    B: Fn(&mut S, &mut W, C, Range<usize>, &mut Cursor<'_>) + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    /// Folds the items of `range` into a fresh state (`None` when an item failed: `guarded`
    /// then reports it through `on_panic`, which must say stop). With `HOOKED`, `hook` tells
    /// a fork worker's parent which item runs (a parameter of the type, so the in-process loop
    /// is compiled without it).
    ///
    /// The state lives in a local of the loop, not in a capture: nothing else can point at it,
    /// so the compiler keeps an accumulator in a register even though the loop also stores
    /// the current item where others can see it (`cur`, the fork worker's slot).
    #[inline(always)]
    fn fold_range<const HOOKED: bool>(
        &self,
        state: S,
        range: Range<usize>,
        catch: bool,
        hook: engine::ItemHook,
        on_panic: impl FnMut(usize, Cause) -> bool,
    ) -> Option<S> {
        let mut state = Some(state);
        self.locals.with(self.local_init, |w| {
            guarded(
                range,
                catch,
                |sub, cur| {
                    let Some(mut st) = state.take() else { return };
                    let mut cursor = Cursor { pos: cur, hook: HOOKED.then_some(hook) };
                    (self.body)(&mut st, w, self.ctx, sub, &mut cursor);
                    state = Some(st);
                },
                on_panic,
            );
        });
        state
    }
}

impl<S, C, I, B, W, L> Job for FoldJob<'_, S, C, I, B, W, L>
where
    S: Send,
    C: Copy + Sync,
    I: Fn() -> S + Sync,
    B: Fn(&mut S, &mut W, C, Range<usize>, &mut Cursor<'_>) + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    fn run(&self, block: usize, range: Range<usize>) {
        let fold = |state: S| {
            self.fold_range::<false>(
                state,
                range.clone(),
                self.failures.catch(),
                engine::ItemHook::NONE,
                |i, cause| {
                    self.failures.record(i, cause);
                    false
                },
            )
        };
        match &self.worker_states {
            Some(states) => {
                // A fresh state costs nothing (its partial arrays are allocated on their first
                // contribution); the worker's own state goes back only if the block completed.
                let done = states.with(self.init, |mine| {
                    let state = std::mem::replace(mine, (self.init)());
                    fold(state).map(|state| *mine = state).is_some()
                });
                if done {
                    self.keep(block, range.start, None);
                }
            }
            None => {
                if let Some(state) = fold((self.init)()) {
                    self.keep(block, range.start, Some(state));
                }
            }
        }
    }

    fn failures(&self) -> &Failures {
        &self.failures
    }

    fn fail(&self, index: usize, cause: Cause) {
        self.failures.record(index, cause);
    }

    fn remote(&self) -> Option<&dyn Remote> {
        Some(self)
    }
}

/// What [`required`] says is missing when loop states cannot cross a process boundary.
const STATE: &str = "loop state (reduction variables, pushed values)";

impl<S, C, I, B, W, L> Remote for FoldJob<'_, S, C, I, B, W, L>
where
    S: Send,
    C: Copy + Sync,
    I: Fn() -> S + Sync,
    B: Fn(&mut S, &mut W, C, Range<usize>, &mut Cursor<'_>) + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    fn raw_size(&self) -> Option<usize> {
        None
    }

    /// One entry: the range's state followed by its sliced outputs, or its failure.
    fn encode(
        &self,
        _block: usize,
        range: Range<usize>,
        hook: engine::ItemHook,
        _raw: &mut [u8],
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause> {
        let wire = required(self.wire, STATE)?;
        let mut failed = None;
        let state =
            self.fold_range::<true>((self.init)(), range.clone(), true, hook, |i, cause| {
                failed = Some((i, cause));
                false
            });
        hook.finished();
        match state {
            Some(state) => out.value(|buf| {
                wire.encode(&state, buf).map_err(Cause::Engine)?;
                for o in self.outputs {
                    o.encode(range.clone(), buf)?;
                }
                Ok(())
            }),
            None => {
                let (i, cause) = failed.unwrap_or_else(|| {
                    (range.start, Cause::Engine("an item failed without a cause".into()))
                });
                out.failure(i, &cause);
                Ok(())
            }
        }
    }

    fn per_worker(&self) -> bool {
        self.worker_states.is_some()
    }

    fn fold_worker(
        &self,
        _block: usize,
        range: Range<usize>,
        hook: engine::ItemHook,
        out: &mut Encoder<'_>,
    ) -> Result<bool, Cause> {
        required(self.wire, STATE)?;
        let states = self.worker_states()?;
        let mut failed = None;
        let done = states.with(self.init, |mine| {
            let state = std::mem::replace(mine, (self.init)());
            let folded = self.fold_range::<true>(state, range.clone(), true, hook, |i, cause| {
                failed = Some((i, cause));
                false
            });
            folded.map(|state| *mine = state).is_some()
        });
        hook.finished();
        if !done {
            let (i, cause) = failed.unwrap_or_else(|| {
                (range.start, Cause::Engine("an item failed without a cause".into()))
            });
            out.failure(i, &cause);
        }
        Ok(done)
    }

    fn encode_worker(
        &self,
        folded: &[(usize, Range<usize>)],
        by_address: bool,
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause> {
        let wire = required(self.wire, STATE)?;
        let states = self.worker_states()?;
        let state = states.take_mine().ok_or_else(|| {
            Cause::Engine("internal error: a worker lost the state of its ranges".into())
        })?;
        let mode = if by_address { Mode::ByAddress } else { Mode::Inline };
        let encoded = out.value(|buf| {
            encode_ranges(folded, buf);
            buf.push(u8::from(by_address));
            with_mode(mode, || wire.encode(&state, buf)).0.map_err(Cause::Engine)
        });
        if by_address {
            // Kept for the parent to read (moving the state leaves its arrays' elements
            // where they are), and for a second call without `by_address`.
            states.with(self.init, |mine| *mine = state);
        }
        encoded
    }

    fn store_worker(
        &self,
        mut entries: Decoder<'_>,
        worker: i32,
    ) -> Result<Option<crate::job::Folded>, Cause> {
        let wire = required(self.wire, STATE)?;
        let corrupt = || Cause::Engine("corrupt loop state from a worker".into());
        let mut unreadable = false;
        let entry = entries.next(|input| {
            let ranges = decode_ranges(input)?;
            let (&by_address, rest) = input.split_first().ok_or_else(corrupt)?;
            *input = rest;
            let mode = match by_address {
                0 => Mode::Inline,
                1 => Mode::Fetch(worker),
                _ => return Err(corrupt()),
            };
            let (state, failed) = with_mode(mode, || wire.decode(input));
            unreadable = failed;
            Ok((ranges, state.map_err(Cause::Engine)?))
        });
        if unreadable {
            return Ok(None);
        }
        match entry.ok_or_else(corrupt)?? {
            Entry::Value((ranges, state)) => {
                let Some((first, _)) = ranges.first() else { return Err(corrupt()) };
                if ranges.iter().any(|(b, r)| *b >= self.slots.len() || r.start > r.end) {
                    return Err(corrupt());
                }
                for (b, r) in &ranges {
                    self.keep(*b, r.start, None);
                }
                self.keep(*first, ranges[0].1.start, Some(state));
                Ok(Some(ranges))
            }
            Entry::Failed(i, cause) => {
                self.failures.record(i, cause);
                Ok(Some(Vec::new()))
            }
        }
    }

    fn store(
        &self,
        block: usize,
        range: Range<usize>,
        _raw: &[u8],
        mut entries: Decoder<'_>,
    ) -> Result<(), Cause> {
        let wire = required(self.wire, STATE)?;
        let corrupt = || Cause::Engine("corrupt loop state from a worker".into());
        let entry = entries.next(|input| {
            let state = wire.decode(input).map_err(Cause::Engine)?;
            for o in self.outputs {
                o.decode(range.clone(), input)?;
            }
            Ok(state)
        });
        match entry.ok_or_else(corrupt)?? {
            Entry::Value(state) => self.keep(block, range.start, Some(state)),
            Entry::Failed(i, cause) => self.failures.record(i, cause),
        }
        Ok(())
    }
}

/// Per-worker states on the fork engine (`per_worker`): a worker process folds its ranges into
/// its own state and sends it at its end, with the ranges it covers.
impl<S, C, I, B, W, L> FoldJob<'_, S, C, I, B, W, L>
where
    S: Send,
    C: Copy + Sync,
    I: Fn() -> S + Sync,
    B: Fn(&mut S, &mut W, C, Range<usize>, &mut Cursor<'_>) + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    fn worker_states(&self) -> Result<&Locals<S>, Cause> {
        self.worker_states
            .as_ref()
            .ok_or_else(|| Cause::Engine("this loop keeps no per-worker state".into()))
    }
}

/// The ranges a worker's state covers, on the wire: how many, then block, start and end of
/// each (`u64`, little-endian).
fn encode_ranges(ranges: &[(usize, Range<usize>)], buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(ranges.len() as u64).to_le_bytes());
    for (block, r) in ranges {
        for v in [*block, r.start, r.end] {
            buf.extend_from_slice(&(v as u64).to_le_bytes());
        }
    }
}

fn decode_ranges(input: &mut &[u8]) -> Result<Vec<(usize, Range<usize>)>, Cause> {
    let corrupt = || Cause::Engine("corrupt folded ranges from a worker".into());
    let mut word = || -> Result<usize, Cause> {
        let (w, rest) = input.split_first_chunk::<8>().ok_or_else(corrupt)?;
        *input = rest;
        usize::try_from(u64::from_le_bytes(*w)).map_err(|_| corrupt())
    };
    let n = word()?;
    let mut ranges = Vec::new();
    for _ in 0..n {
        let (block, start, end) = (word()?, word()?, word()?);
        ranges.push((block, start..end));
    }
    Ok(ranges)
}

/// Where a loop body is: it calls [`Cursor::at`] before each iteration, so a failure names
/// the iteration (and a fork worker's parent knows which one runs).
pub struct Cursor<'a> {
    pos: &'a mut usize,
    hook: Option<engine::ItemHook>,
}

impl Cursor<'_> {
    /// Iteration `pos` starts.
    #[inline(always)]
    pub fn at(&mut self, pos: usize) {
        *self.pos = pos;
        if let Some(hook) = self.hook {
            hook.started(pos);
        }
    }
}

/// One `#[parfor]` loop call, as the generated code describes it to [`fold`] and
/// [`LoopDomain::run`](crate::domain::LoopDomain::run) (everything but the loop's body, which
/// those take apart so that its closure's parameter types come from their bounds).
///
/// `ctx` holds what every iteration reads besides its captures (the loop's domain, handles of
/// its sliced outputs); it reaches the body by value, so the compiler keeps it in registers
/// across a range, which a capture behind a reference does not allow. `init()` is a block's
/// (or worker's) fresh state and `local_init()` a worker's own state, made once per worker
/// (thread or worker process) that runs items. `outputs` are the loop's sliced outputs, which
/// the fork engine ships back from its worker processes; `wire` encodes the states across a
/// process boundary; `describe(i)` names iteration `i` in a failure (for example `i = 13`).
///
/// With `per_worker` (the caller's reductions give the same result in any grouping: integer,
/// bitwise and min/max array reductions), a worker thread folds all the blocks it runs into
/// one state instead of one per block, so the call holds one state per worker; the states
/// then come back in no particular order. A fork worker process does the same and sends its
/// state once, at its end (a worker that dies before sending it sent nothing of its ranges,
/// which a replacement runs again); mpi ranks still send one state per block.
pub struct LoopCall<'r, S, C, I, L> {
    /// The loop's options.
    pub opts: &'r Options,
    /// One state per worker rather than per block.
    pub per_worker: bool,
    /// How states cross a process boundary, when they can.
    pub wire: Option<Wire<S>>,
    /// The loop's sliced outputs.
    pub outputs: &'r [&'r dyn Sliced],
    /// Names an iteration in a failure.
    pub describe: &'r dyn Fn(usize) -> String,
    /// What every iteration reads, by value.
    pub ctx: C,
    /// A block's (or worker's) fresh state.
    pub init: I,
    /// A worker's own state.
    pub local_init: L,
}

impl<'r, S, C, I, L> LoopCall<'r, S, C, I, L> {
    /// The same call with the context `ctx` (the domain's `run` adds the domain to it).
    pub(crate) fn with_ctx<C2>(self, ctx: C2) -> LoopCall<'r, S, C2, I, L> {
        let LoopCall { opts, per_worker, wire, outputs, describe, ctx: _, init, local_init } = self;
        LoopCall { opts, per_worker, wire, outputs, describe, ctx, init, local_init }
    }
}

/// Runs the iterations `0..n` of the loop `call` describes: `body(&mut state, &mut local,
/// ctx, range, cursor)` runs the iterations of `range` (calling `cursor.at(i)` before
/// iteration `i`). Returns the states in iteration order (with `per_worker`, the workers'
/// states in no particular order). On a failed iteration the call stops and panics with a
/// message naming it through `describe(i)` and carrying the cause.
#[track_caller]
pub fn fold<S, C, I, B, W, L>(n: usize, call: LoopCall<'_, S, C, I, L>, body: B) -> Vec<S>
where
    S: Send,
    C: Copy + Sync,
    I: Fn() -> S + Sync,
    B: Fn(&mut S, &mut W, C, Range<usize>, &mut Cursor<'_>) + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    fold_with(&Locals::new(), n, call, body)
}

/// [`fold`] with the per-worker states kept in `locals`, which may outlive the call: a lazy
/// loop runs one call per window, and a worker thread keeps its state across windows.
#[track_caller]
pub(crate) fn fold_with<S, C, I, B, W, L>(
    locals: &Locals<W>,
    n: usize,
    call: LoopCall<'_, S, C, I, L>,
    body: B,
) -> Vec<S>
where
    S: Send,
    C: Copy + Sync,
    I: Fn() -> S + Sync,
    B: Fn(&mut S, &mut W, C, Range<usize>, &mut Cursor<'_>) + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    let LoopCall { opts, per_worker, wire, outputs, describe, ctx, init, local_init } = call;
    let plan = Plan::with_max_blocks(n, opts.chunk, opts.max_blocks);
    let run = engine::resolve(opts);
    if let (Some(what), crate::Engine::Fork | crate::Engine::Mpi) =
        (opts.interior_mutation, run.engine)
    {
        panic!(
            "parfor: this `#[parfor]` loop cannot run on the {} engine: {what} through a \
             shared reference, which in a worker process (or mpi rank) changes only its copy (the \
             change would be lost); make the variable a reduction (`x += 1`, `v.push(e)`), \
             {}or run the loop on the threads engine",
            run.engine,
            if run.engine == crate::Engine::Fork {
                "write results into a `SharedVec`, "
            } else {
                ""
            }
        );
    }
    let job = FoldJob {
        ctx,
        init: &init,
        body: &body,
        local_init: &local_init,
        locals,
        slots: (0..plan.blocks()).map(|_| Mutex::new(Vec::new())).collect(),
        worker_states: per_worker.then(Locals::new),
        failures: Failures::new(run.engine, OnError::Fail),
        wire,
        outputs,
    };
    engine::execute(&job, &plan, &run);
    if let Some((i, cause)) = job.failures.take_first() {
        panic!("parfor: iteration {} failed: {cause}", describe(i));
    }
    let mut states = Vec::with_capacity(plan.blocks());
    for slot in job.slots {
        let mut parts = slot.into_inner().unwrap_or_else(|e| e.into_inner());
        assert!(!parts.is_empty(), "parfor: internal error: an engine skipped a block");
        parts.sort_by_key(|p| p.0);
        states.extend(parts.into_iter().filter_map(|p| p.1));
    }
    if let Some(workers) = job.worker_states {
        states.extend(workers.into_states());
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Engine;

    /// Counts `i * 7 % 1000` for `i` in `0..10_000` into a 1000-bin array, one dense partial
    /// array per worker.
    fn histogram(engine: Engine) -> Vec<u64> {
        use crate::array_part::{Dense, DenseAddSub, DensePart};
        use crate::wire::Probe;
        let opts = Options::new().engine(engine).workers(2).max_blocks(8);
        let call = LoopCall {
            opts: &opts,
            per_worker: true,
            wire: Some(Wire::<DensePart<u64>>::serde()),
            outputs: &[],
            describe: &|i| format!("i = {i}"),
            ctx: (),
            init: || Dense::part((&&Probe::<u64>::new()).__parfor_array_add()),
            local_init: || (),
        };
        let states = fold(
            10_000,
            call,
            |s: &mut DensePart<u64>, _: &mut (), (), range: Range<usize>, cur: &mut Cursor<'_>| {
                for i in range {
                    cur.at(i);
                    s.update(1000, i * 7 % 1000, 1u64, u64::wrapping_add, |_, _| unreachable!());
                }
            },
        );
        let mut hist = vec![0u64; 1000];
        for s in states {
            s.merge_into(&mut hist, u64::wrapping_add, |_, _| unreachable!());
        }
        hist
    }

    #[test]
    fn fork_workers_dense_states_read_from_their_memory_or_sent_whole() {
        use crate::array_part::{fetch_refused, tests::FAIL_FETCHES};
        let serial = histogram(Engine::Serial);
        assert_eq!(serial.iter().sum::<u64>(), 10_000);
        assert_eq!(histogram(Engine::Fork), serial);
        // The parent cannot read the first worker's state (as when the worker is gone):
        // it sends it whole.
        FAIL_FETCHES.with(|n| n.set(1));
        assert_eq!(histogram(Engine::Fork), serial);
        if !fetch_refused() {
            assert_eq!(FAIL_FETCHES.with(|n| n.get()), 0, "no state was read from a worker");
        }
        FAIL_FETCHES.with(|n| n.set(0));
    }

    /// Sums `0..n` with one state per block or per worker; returns the states.
    fn sums(engine: Engine, workers: usize, per_worker: bool) -> Vec<u64> {
        let opts = Options::new().engine(engine).workers(workers).max_blocks(8);
        let wire = Some(Wire::<u64>::serde());
        let call = LoopCall {
            opts: &opts,
            per_worker,
            wire,
            outputs: &[],
            describe: &|i| format!("i = {i}"),
            ctx: (),
            init: || 0u64,
            local_init: || (),
        };
        fold(
            1000,
            call,
            |s: &mut u64, _: &mut (), (), range: Range<usize>, cur: &mut Cursor<'_>| {
                for i in range {
                    cur.at(i);
                    *s += i as u64;
                }
            },
        )
    }

    #[test]
    fn one_state_per_block_or_per_worker() {
        let total = 1000 * 999 / 2;
        for engine in [Engine::Serial, Engine::Threads] {
            for workers in [1, 2, 3] {
                let per_block = sums(engine, workers, false);
                assert_eq!(per_block.len(), 8, "{engine:?} x{workers}");
                assert_eq!(per_block.iter().sum::<u64>(), total);
                let per_worker = sums(engine, workers, true);
                let most = if engine == Engine::Serial { 1 } else { workers };
                assert!(
                    (1..=most).contains(&per_worker.len()),
                    "{engine:?} x{workers}: {per_worker:?}"
                );
                assert_eq!(per_worker.iter().sum::<u64>(), total, "{engine:?} x{workers}");
            }
        }
        // A fork worker process sends its state once, at its end.
        #[cfg(unix)]
        for workers in [1, 2, 3] {
            assert_eq!(sums(Engine::Fork, workers, false).len(), 8);
            let states = sums(Engine::Fork, workers, true);
            assert!((1..=workers).contains(&states.len()), "fork x{workers}: {states:?}");
            assert_eq!(states.iter().sum::<u64>(), total, "fork x{workers}");
        }
    }
}
