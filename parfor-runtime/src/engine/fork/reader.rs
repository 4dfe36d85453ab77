//! Receiving a worker's frames: one [`FrameReader`] per worker pipe, a state machine that
//! reads a [`Header`], then the raw results it announces (straight into the call's output
//! when the job allows it, see [`crate::job::Remote::raw_target`]), then its encoded bytes.
//! Each call to [`FrameReader::read`] makes at most one `read` system call, so a parent
//! serving many workers never blocks on one of them.

use crate::protocol::{HEADER, Header, Kind};
use nix::errno::Errno;
use std::os::fd::RawFd;

/// Largest single read of encoded bytes.
pub(super) const READ_MAX: usize = 1 << 20;

/// What [`FrameReader::read`] got.
#[derive(Debug)]
pub(super) enum Read {
    /// Part of a frame (or nothing: interrupted); read again when the pipe is ready.
    More,
    /// A complete frame, whose outcome [`FrameReader::outcome`] gives until
    /// [`FrameReader::next_frame`].
    Frame(Header),
    /// End of file: the worker closed its pipe (it exited).
    End,
    /// The pipe failed.
    Broken,
}

/// Where a reader is within the current frame.
enum State {
    /// Receiving the header: `got` of its bytes so far.
    Header { bytes: [u8; HEADER], got: usize },
    /// Receiving what `header` announces: `raw_done` bytes of raw results so far, then the
    /// encoded bytes (into `FrameReader::encoded`). `raw` is where the frame's raw results
    /// are (the output's slots, or the reader's scratch words), and how many bytes.
    Payload { header: Header, raw: (*mut u8, usize), raw_done: usize },
}

/// What the receiving side expects of a worker's frames: a `parmap!` call's plan and job, or
/// a stream's task.
pub(super) trait Expect {
    /// Whether `header` is one this worker may send now (a frame that is not is a bug, since
    /// the only writers of the pipe are the call's workers, and panics).
    fn valid(&self, header: &Header) -> bool;
    /// Bytes per result when results travel raw (see [`crate::job::Remote::raw_size`]).
    fn raw_size(&self) -> Option<usize>;
    /// Where the raw results of `range` go (see [`crate::job::Remote::raw_target`]).
    fn raw_target(&self, range: std::ops::Range<usize>) -> Option<*mut u8>;
}

/// Reads one worker's frames.
pub(super) struct FrameReader {
    state: State,
    /// The encoded bytes of the frame being received.
    encoded: Vec<u8>,
    /// Raw results of the frame being received, when they cannot go straight to the output
    /// (`u128` words: aligned for any plain-old-data type).
    scratch: Vec<u128>,
}

impl FrameReader {
    pub(super) fn new() -> FrameReader {
        FrameReader {
            state: State::Header { bytes: [0; HEADER], got: 0 },
            encoded: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Reads once from `fd` (which must be ready, or `read` blocks). Frames are checked
    /// with `expect` as their header arrives; one it refuses panics.
    pub(super) fn read(&mut self, fd: RawFd, expect: &dyn Expect) -> Read {
        // Where the next bytes go, and how many are wanted.
        let (dst, want): (*mut u8, usize) = match &mut self.state {
            State::Header { bytes, got } => (bytes.as_mut_ptr().wrapping_add(*got), HEADER - *got),
            State::Payload { header, raw, raw_done } if *raw_done < header.raw => {
                (raw.0.wrapping_add(*raw_done), header.raw - *raw_done)
            }
            State::Payload { header, .. } => {
                let want = (header.encoded - self.encoded.len()).min(READ_MAX);
                self.encoded.reserve(want);
                (self.encoded.as_mut_ptr().wrapping_add(self.encoded.len()), want)
            }
        };
        debug_assert!(want > 0, "a complete frame is returned, not read further");
        // SAFETY: `dst` has room for `want` bytes: the rest of the header array, the rest of
        // the frame's raw results (in the scratch words, sized when the header arrived, or in
        // the output slots of the frame's range, `Remote::raw_target`, valid until the range
        // is stored; the range was checked against the plan and no other frame stores it),
        // or the vector's reserved spare capacity. The descriptor is the caller's.
        let n = unsafe { libc::read(fd, dst.cast(), want) };
        if n < 0 {
            return match Errno::last() {
                Errno::EINTR | Errno::EAGAIN => Read::More,
                _ => Read::Broken,
            };
        }
        if n == 0 {
            return Read::End;
        }
        let n = n.unsigned_abs();
        match &mut self.state {
            State::Header { bytes, got } => {
                *got += n;
                if *got < HEADER {
                    return Read::More;
                }
                let header = check(bytes, expect);
                let raw = self.raw_place(&header, expect);
                self.encoded.reserve_exact(header.encoded.min(READ_MAX));
                self.state = State::Payload { header, raw, raw_done: 0 };
            }
            State::Payload { header, raw_done, .. } if *raw_done < header.raw => *raw_done += n,
            State::Payload { .. } => {
                // SAFETY: `read` initialized `n` more bytes, within the reserved capacity.
                unsafe { self.encoded.set_len(self.encoded.len() + n) };
            }
        }
        match &self.state {
            State::Payload { header, raw_done, .. }
                if *raw_done == header.raw && self.encoded.len() == header.encoded =>
            {
                Read::Frame(header.clone())
            }
            _ => Read::More,
        }
    }

    /// Where the raw results of the frame `header` are (or go), and how many bytes.
    fn raw_place(&mut self, header: &Header, remote: &dyn Expect) -> (*mut u8, usize) {
        let len = match header.kind {
            Kind::Results => header.raw,
            Kind::Placed => header.range.len() * remote.raw_size().unwrap_or(0),
            Kind::Error | Kind::Folded | Kind::Task => 0,
        };
        if len == 0 {
            return (std::ptr::null_mut(), 0);
        }
        match remote.raw_target(header.range.clone()) {
            Some(p) => (p, len),
            None if header.kind == Kind::Placed => {
                panic!("parfor: fork engine: results placed without a target")
            }
            None => {
                let words = len.div_ceil(size_of::<u128>());
                if self.scratch.len() < words {
                    self.scratch.resize(words, 0);
                }
                (self.scratch.as_mut_ptr().cast::<u8>(), len)
            }
        }
    }

    /// The raw results and the encoded bytes of the frame [`FrameReader::read`] returned.
    pub(super) fn outcome(&self) -> (&[u8], &[u8]) {
        let State::Payload { raw: (ptr, len), .. } = self.state else {
            panic!("parfor: internal error: no complete frame");
        };
        let raw = if len == 0 {
            &[][..]
        } else {
            // SAFETY: `len` bytes at `ptr`, all written (by `read`, or by the worker before it
            // sent a `Placed` frame): the reader's scratch words, borrowed with `self`, or the
            // output slots of the frame's range, which nothing else touches until the range
            // is stored.
            unsafe { std::slice::from_raw_parts(ptr.cast_const(), len) }
        };
        (raw, &self.encoded)
    }

    /// Gets ready for the next frame, keeping the buffers unless they are huge.
    pub(super) fn next_frame(&mut self) {
        self.state = State::Header { bytes: [0; HEADER], got: 0 };
        self.encoded.clear();
        if self.encoded.capacity() > 4 * READ_MAX {
            self.encoded = Vec::new();
        }
    }
}

/// The header in `bytes`, checked with `expect`.
fn check(bytes: &[u8; HEADER], expect: &dyn Expect) -> Header {
    let header = Header::parse(bytes);
    match header {
        Some(h) if expect.valid(&h) => h,
        _ => panic!("parfor: fork engine: corrupt frame from a worker: {header:?}"),
    }
}
