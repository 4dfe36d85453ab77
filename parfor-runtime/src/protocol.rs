//! Every byte layout that process engines (fork, and any engine whose workers live in other
//! processes) use to ship the outcome of a range of items: the frame [`Header`], the entries
//! of an outcome ([`Encoder`], [`Decoder`]) and the encoding of a failure [`Cause`].
//!
//! A range's outcome travels as a header followed by up to two parts:
//!
//! - `raw` bytes: plain-old-data results, one per item, back to back (see
//!   [`crate::job::Remote::raw_size`]); empty for other results;
//! - `encoded` bytes: a sequence of entries, each a tag byte then either a value encoded by
//!   the job ([`VALUE`]) or a failure ([`FAILED`]: the item's index as a little-endian `u64`,
//!   then its cause). A `parmap!` range holds one value or failure per item (only failures
//!   when the results travel raw); a `#[parfor]` range holds its folded state or its failure.
//!
//! A stream's worker (see [`Kind::Task`]) ends the entries of each `Results` frame with the
//! nanoseconds its items took since its last frame (a little-endian `u64`, [`push_time`]),
//! which sizes the next batches without counting the time a worker took to start.
//!
//! A frame of kind [`Kind::Error`] carries no entries but one cause that fails the whole range
//! (its results could not be encoded at all). A frame of kind [`Kind::Folded`] carries one
//! value: the state into which a worker folded several ranges, which the value lists. Jobs never see tags: they say how to encode and
//! decode a value, and which item failed with what.
//!
//! All integers are little endian, so that workers and the process that stores their
//! outcomes need not agree on anything but this module.

use crate::error::Cause;
use std::ops::Range;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// The range's outcome: raw results (if any) and entries.
    Results = 0,
    /// One encoded [`Cause`] that failed the whole range.
    Error = 1,
    /// Like `Results`, but the raw results were already written into the output of the
    /// process that stores them (see [`crate::job::Remote::raw_target`]); the frame carries
    /// the entries only.
    Placed = 2,
    /// Sent the other way, to a worker that is fed its work (a stream's): run the items of
    /// `range`, which belong to task `block`. Nothing follows the header.
    Task = 3,
    /// A worker's own state, sent once at its end by a worker that folds every range it runs
    /// into one state (see [`crate::job::Remote::per_worker`]): the entries say which ranges
    /// it covers. The header names an empty range at the start of the first of them.
    Folded = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            0 => Some(Kind::Results),
            1 => Some(Kind::Error),
            2 => Some(Kind::Placed),
            3 => Some(Kind::Task),
            4 => Some(Kind::Folded),
            _ => None,
        }
    }
}

/// Bytes in an encoded [`Header`].
pub(crate) const HEADER: usize = 48;

/// The header of one range's outcome. On the wire: kind (1 byte), 3 zero bytes, worker
/// (`u32`), then block, range start, range end, raw length and encoded length (`u64` each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    /// The worker that sent it (engines that need not say may leave 0).
    pub(crate) worker: usize,
    pub(crate) block: usize,
    pub(crate) range: Range<usize>,
    /// Bytes of raw results that follow the header (0 unless the kind is `Results`).
    pub(crate) raw: usize,
    /// Bytes of entries (or of the cause, for `Error`) after the raw results.
    pub(crate) encoded: usize,
}

impl Header {
    /// The header's bytes.
    pub(crate) fn to_bytes(&self) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0] = self.kind as u8;
        h[4..8].copy_from_slice(&(self.worker as u32).to_le_bytes());
        let words = [self.block, self.range.start, self.range.end, self.raw, self.encoded];
        for (k, w) in words.into_iter().enumerate() {
            h[8 + 8 * k..16 + 8 * k].copy_from_slice(&(w as u64).to_le_bytes());
        }
        h
    }

    /// Parses what [`Header::to_bytes`] wrote; `None` for an unknown kind, a range that ends
    /// before it starts, or sizes that do not fit this machine's `usize`.
    pub(crate) fn parse(h: &[u8; HEADER]) -> Option<Header> {
        let word = |k: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[8 + 8 * k..16 + 8 * k]);
            usize::try_from(u64::from_le_bytes(b)).ok()
        };
        let mut w = [0u8; 4];
        w.copy_from_slice(&h[4..8]);
        let header = Header {
            kind: Kind::from_u8(h[0])?,
            worker: u32::from_le_bytes(w) as usize,
            block: word(0)?,
            range: word(1)?..word(2)?,
            raw: word(3)?,
            encoded: word(4)?,
        };
        (header.range.start <= header.range.end).then_some(header)
    }
}

/// Tag of an entry holding a value.
const VALUE: u8 = 0;
/// Tag of an entry holding a failed item's index and cause.
const FAILED: u8 = 1;

/// Writes the entries of one range's outcome (see the [module](self) documentation).
pub(crate) struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Encoder<'a> {
    /// Appends entries to `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Encoder<'a> {
        Encoder { out }
    }

    /// Appends a value entry whose bytes `encode` writes.
    ///
    /// # Errors
    /// What `encode` returned; nothing is appended then.
    #[inline(always)]
    pub(crate) fn value<E>(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let len = self.out.len();
        self.out.push(VALUE);
        encode(self.out).inspect_err(|_| self.out.truncate(len))
    }

    /// Appends the failure of item `index`.
    pub(crate) fn failure(&mut self, index: usize, cause: &Cause) {
        self.out.push(FAILED);
        self.out.extend_from_slice(&(index as u64).to_le_bytes());
        encode_cause(cause, self.out);
    }
}

/// One entry of a range's outcome, as [`Decoder::next`] reads it.
#[derive(Debug)]
pub(crate) enum Entry<T> {
    /// A value, decoded by the job.
    Value(T),
    /// Item `.0` failed with cause `.1`.
    Failed(usize, Cause),
}

/// Reads the entries that an [`Encoder`] wrote.
pub(crate) struct Decoder<'a> {
    input: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Reads the entries in `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { input: bytes }
    }

    /// The next entry (`None` at the end); `decode` reads a value from the front of the
    /// bytes it is given, advancing them.
    ///
    /// # Errors
    /// An unknown tag, a truncated failure, or what `decode` returned.
    pub(crate) fn next<T>(
        &mut self,
        decode: impl FnOnce(&mut &'a [u8]) -> Result<T, Cause>,
    ) -> Option<Result<Entry<T>, Cause>> {
        let (&tag, rest) = self.input.split_first()?;
        self.input = rest;
        Some(match tag {
            VALUE => decode(&mut self.input).map(Entry::Value),
            FAILED => self.failure().map(|(i, cause)| Entry::Failed(i, cause)),
            _ => Err(corrupt()),
        })
    }

    fn failure(&mut self) -> Result<(usize, Cause), Cause> {
        let (i, mut rest) = self.input.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let i = usize::try_from(u64::from_le_bytes(*i)).map_err(|_| corrupt())?;
        let cause = decode_cause(&mut rest)?;
        self.input = rest;
        Ok((i, cause))
    }
}

fn corrupt() -> Cause {
    Cause::Engine("corrupt results from a worker".into())
}

/// Appends the time a stream worker's items took, after a frame's entries.
pub(crate) fn push_time(out: &mut Vec<u8>, nanos: u64) {
    out.extend_from_slice(&nanos.to_le_bytes());
}

/// Splits the payload of a stream worker's `Results` frame into its entries and the time its
/// items took (nanoseconds); `None` when it is too short to hold the time.
pub(crate) fn split_time(payload: &[u8]) -> Option<(&[u8], u64)> {
    let (entries, time) = payload.split_last_chunk::<8>()?;
    Some((entries, u64::from_le_bytes(*time)))
}

/// Appends the payload of a [`Kind::Error`] frame: `cause`.
pub(crate) fn encode_error(cause: &Cause, out: &mut Vec<u8>) {
    encode_cause(cause, out);
}

/// The cause in the payload of a [`Kind::Error`] frame (or the error saying it is corrupt).
pub(crate) fn decode_error(mut payload: &[u8]) -> Cause {
    decode_cause(&mut payload).unwrap_or_else(|e| e)
}

/// Appends `cause`: a tag (0: a panic, 2: an error the function returned, 1: anything else,
/// as its message), the text's length
/// (`u64`) and the text.
fn encode_cause(cause: &Cause, out: &mut Vec<u8>) {
    let (tag, text) = match cause {
        Cause::Panic(m) => (0u8, m.clone()),
        Cause::Engine(m) => (1u8, m.clone()),
        Cause::Returned(m) => (2u8, m.clone()),
        other => (1u8, other.to_string()),
    };
    out.push(tag);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Decodes what [`encode_cause`] wrote, advancing `input`.
fn decode_cause(input: &mut &[u8]) -> Result<Cause, Cause> {
    let bad = || Cause::Engine("corrupt failure record from a worker process".into());
    let (&tag, rest) = input.split_first().ok_or_else(bad)?;
    let (len, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| bad())?;
    if rest.len() < len {
        return Err(bad());
    }
    let text = String::from_utf8_lossy(&rest[..len]).into_owned();
    *input = &rest[len..];
    Ok(match tag {
        0 => Cause::Panic(text),
        2 => Cause::Returned(text),
        _ => Cause::Engine(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let h = Header {
            kind: Kind::Placed,
            worker: 3,
            block: 77,
            range: 700..710,
            raw: 80,
            encoded: 12345,
        };
        assert_eq!(Header::parse(&h.to_bytes()), Some(h.clone()));
        let mut bad = h.to_bytes();
        bad[0] = 9;
        assert_eq!(Header::parse(&bad), None);
        let mut backwards = h.to_bytes();
        backwards[24..32].copy_from_slice(&600u64.to_le_bytes());
        assert_eq!(Header::parse(&backwards), None);
    }

    #[test]
    fn stream_times_round_trip() {
        let mut buf = vec![7u8, 8];
        push_time(&mut buf, 123_456_789);
        assert_eq!(split_time(&buf), Some((&[7u8, 8][..], 123_456_789)));
        assert_eq!(split_time(&[1, 2, 3]), None);
    }

    #[test]
    fn causes_round_trip() {
        let mut buf = Vec::new();
        encode_cause(&Cause::Panic("déjà".into()), &mut buf);
        encode_cause(&Cause::Engine("x".into()), &mut buf);
        encode_cause(&Cause::Returned("bad input".into()), &mut buf);
        let mut input = &buf[..];
        assert_eq!(decode_cause(&mut input).unwrap(), Cause::Panic("déjà".into()));
        assert_eq!(decode_cause(&mut input).unwrap(), Cause::Engine("x".into()));
        assert_eq!(decode_cause(&mut input).unwrap(), Cause::Returned("bad input".into()));
        assert!(input.is_empty());
        assert!(decode_cause(&mut input).is_err());
        let mut err = Vec::new();
        encode_error(&Cause::Exit(3), &mut err);
        assert_eq!(decode_error(&err), Cause::Engine(Cause::Exit(3).to_string()));
    }

    #[test]
    fn entries_round_trip() {
        let mut buf = Vec::new();
        let mut enc = Encoder::new(&mut buf);
        enc.value(|out| {
            out.push(42);
            Ok::<(), Cause>(())
        })
        .unwrap();
        let refused = enc.value(|out| {
            out.push(1);
            Err(Cause::Engine("no".into()))
        });
        assert!(refused.is_err());
        enc.failure(5, &Cause::Panic("p".into()));
        let byte = |input: &mut &[u8]| {
            let (&b, rest) = input.split_first().ok_or_else(corrupt)?;
            *input = rest;
            Ok(b)
        };
        let mut dec = Decoder::new(&buf);
        assert!(matches!(dec.next(byte), Some(Ok(Entry::Value(42)))));
        match dec.next(byte) {
            Some(Ok(Entry::Failed(5, cause))) => assert_eq!(cause, Cause::Panic("p".into())),
            other => panic!("unexpected {other:?}"),
        }
        assert!(dec.next(byte).is_none());
        assert!(Decoder::new(&[7]).next(byte).is_some_and(|e| e.is_err()));
        assert!(Decoder::new(&[FAILED, 1, 2]).next(byte).is_some_and(|e| e.is_err()));
    }
}
