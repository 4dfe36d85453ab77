//! How values cross a process boundary (fork workers): serde with the `postcard` codec.
//!
//! Whether a type can cross is decided where the macro expands, with autoref
//! specialization: `(&&&Probe::<T>::new()).wire()` picks [`ViaPod`] when `T` is plain old
//! data ([`Pod`], bytemuck's: primitive numbers, arrays of them, and derived `#[repr(C)]`
//! structs), else [`ViaSerde`] when `T` implements
//! `Serialize + DeserializeOwned`, and falls back to [`NoWire`] otherwise, so the serial and
//! threads engines never require serde. The fork engine reports a missing wire as an error
//! that names the type.
//!
//! A plain-old-data wire copies a value's bytes instead of running serde, and tells the fork
//! engine that `parmap!` workers may write results straight into shared memory (no encoding,
//! no pipe traffic for the values).

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// Encodes and decodes values of type `T` (appending to / consuming from a byte buffer).
pub struct Wire<T> {
    encode: fn(&T, &mut Vec<u8>) -> Result<(), String>,
    decode: fn(&mut &[u8]) -> Result<T, String>,
    /// Built by [`Wire::pod`]: `T` implements [`Pod`].
    pod: bool,
}

impl<T> Clone for Wire<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Wire<T> {}

impl<T> std::fmt::Debug for Wire<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wire<{}>", std::any::type_name::<T>())
    }
}

/// Appends to a borrowed buffer, so that a failed encoding leaves it in place.
struct Append<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Append<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = u8>>(&mut self, iter: I) {
        self.0.extend(iter);
    }
}

/// Encodes `v` after the bytes of `out`. When `v`'s `Serialize` fails or panics, `out` is
/// left as it was and the error carries the message it gave.
fn encode_serde<T: Serialize>(v: &T, out: &mut Vec<u8>) -> Result<(), String> {
    let mark = out.len();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        postcard::to_extend(v, Append(&mut *out)).map(drop)
    }));
    let why = match outcome {
        Ok(Ok(())) => return Ok(()),
        // postcard keeps no message of a `Serialize` implementation's own error: serialize
        // again into a serializer that does.
        Ok(Err(e)) => capture::message(v).unwrap_or_else(|| e.to_string()),
        Err(payload) => {
            let msg = crate::Cause::from_panic(&*payload);
            // A payload whose destructor panics would unwind from here; forget it.
            std::mem::forget(payload);
            match msg {
                crate::Cause::Panic(m) => format!("its `Serialize` panicked: {m}"),
                other => other.to_string(),
            }
        }
    };
    out.truncate(mark);
    Err(format!("cannot encode a `{}`: {why}", std::any::type_name::<T>()))
}

fn decode_serde<T: DeserializeOwned>(input: &mut &[u8]) -> Result<T, String> {
    let (v, rest) = postcard::take_from_bytes(input)
        .map_err(|e| format!("cannot decode a `{}`: {e}", std::any::type_name::<T>()))?;
    *input = rest;
    Ok(v)
}

impl<T: Serialize + DeserializeOwned> Wire<T> {
    /// The serde wire of `T`.
    pub fn serde() -> Wire<T> {
        Wire { encode: encode_serde::<T>, decode: decode_serde::<T>, pod: false }
    }
}

/// Plain old data: values that are nothing but their bytes, so copying those bytes between
/// processes (or into shared memory) moves the value. This is bytemuck's
/// [`Pod`](bytemuck::Pod) (re-exported, with its derive, as `parfor::Pod`): the primitive
/// numbers, arrays of them, and a user's `#[repr(C)]` struct of such fields without padding,
/// with `#[derive(Clone, Copy, Pod, Zeroable)]`.
pub use bytemuck::Pod;

/// The bytes of a plain-old-data value.
pub(crate) fn pod_bytes<T: Pod>(v: &T) -> &[u8] {
    bytemuck::bytes_of(v)
}

fn encode_pod<T: Pod>(v: &T, out: &mut Vec<u8>) -> Result<(), String> {
    out.extend_from_slice(pod_bytes(v));
    Ok(())
}

fn decode_pod<T: Pod>(input: &mut &[u8]) -> Result<T, String> {
    let size = size_of::<T>();
    let Some((bytes, rest)) = input.split_at_checked(size) else {
        return Err(format!("cannot decode a `{}`: input too short", std::any::type_name::<T>()));
    };
    let v = bytemuck::pod_read_unaligned(bytes);
    *input = rest;
    Ok(v)
}

impl<T: Pod> Wire<T> {
    /// The plain-old-data wire of `T`: raw bytes, and shared memory for `parmap!` results on
    /// the fork engine. A zero-sized `T` (`()`, `PhantomData`) has no bytes to place in
    /// shared memory: its wire encodes nothing and is not marked plain old data, so it
    /// travels on the ordinary path.
    pub fn pod() -> Wire<T> {
        Wire { encode: encode_pod::<T>, decode: decode_pod::<T>, pod: size_of::<T>() > 0 }
    }
}

impl<T> Wire<T> {
    /// Whether this is the plain-old-data wire ([`Wire::pod`]) of a type with a size, which
    /// guarantees `T: Pod` and `size_of::<T>() > 0`.
    pub fn is_pod(&self) -> bool {
        self.pod
    }

    /// Appends the encoding of `v` to `out`.
    ///
    /// # Errors
    /// The value's `Serialize` implementation failed.
    pub fn encode(&self, v: &T, out: &mut Vec<u8>) -> Result<(), String> {
        (self.encode)(v, out)
    }

    /// Decodes one value from the front of `input`, advancing it.
    ///
    /// # Errors
    /// The bytes do not hold a `T`.
    pub fn decode(&self, input: &mut &[u8]) -> Result<T, String> {
        (self.decode)(input)
    }
}

/// The wire of values the fork engine must ship (`what` says which, for the message), or the
/// error naming the type that lacks serde support.
pub(crate) fn required<T>(wire: Option<Wire<T>>, what: &str) -> Result<Wire<T>, crate::Cause> {
    wire.ok_or_else(|| {
        crate::Cause::Engine(format!(
            "the fork and mpi engines need {what} to implement serde's Serialize and \
             DeserializeOwned; `{}` does not",
            std::any::type_name::<T>()
        ))
    })
}

/// A serializer that writes nothing and keeps the message of the first error a `Serialize`
/// implementation raises, which postcard's own error type drops.
mod capture {
    use serde::ser::{self, Serialize};
    use std::fmt;

    /// The message of a `Serialize` implementation's error.
    #[derive(Debug)]
    pub(super) struct Message(pub(super) String);

    impl fmt::Display for Message {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Message {}

    impl ser::Error for Message {
        fn custom<T: fmt::Display>(msg: T) -> Self {
            Message(msg.to_string())
        }
    }

    /// The message `v`'s `Serialize` gives when it fails, if it does (and does not panic).
    pub(super) fn message<T: Serialize + ?Sized>(v: &T) -> Option<String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| v.serialize(Capture)))
            .ok()?
            .err()
            .map(|m| m.0)
    }

    pub(super) struct Capture;

    type Done = Result<(), Message>;

    macro_rules! accept {
        ($($name:ident: $t:ty),* $(,)?) => {$(
            fn $name(self, _: $t) -> Done {
                Ok(())
            }
        )*};
    }

    impl ser::Serializer for Capture {
        type Ok = ();
        type Error = Message;
        type SerializeSeq = Capture;
        type SerializeTuple = Capture;
        type SerializeTupleStruct = Capture;
        type SerializeTupleVariant = Capture;
        type SerializeMap = Capture;
        type SerializeStruct = Capture;
        type SerializeStructVariant = Capture;

        accept!(
            serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
            serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
            serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
            serialize_f64: f64, serialize_char: char, serialize_str: &str,
            serialize_bytes: &[u8], serialize_unit_struct: &'static str,
        );

        fn serialize_none(self) -> Done {
            Ok(())
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Done {
            v.serialize(self)
        }
        fn serialize_unit(self) -> Done {
            Ok(())
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
            Ok(())
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Done {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            v: &T,
        ) -> Done {
            v.serialize(self)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Capture, Message> {
            Ok(self)
        }
        fn serialize_tuple(self, _: usize) -> Result<Capture, Message> {
            Ok(self)
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Capture, Message> {
            Ok(self)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Capture, Message> {
            Ok(self)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Capture, Message> {
            Ok(self)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Capture, Message> {
            Ok(self)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Capture, Message> {
            Ok(self)
        }
        /// As postcard: the compact form.
        fn is_human_readable(&self) -> bool {
            false
        }
    }

    impl ser::SerializeSeq for Capture {
        type Ok = ();
        type Error = Message;
        fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
            v.serialize(Capture)
        }
        fn end(self) -> Done {
            Ok(())
        }
    }

    impl ser::SerializeTuple for Capture {
        type Ok = ();
        type Error = Message;
        fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
            v.serialize(Capture)
        }
        fn end(self) -> Done {
            Ok(())
        }
    }

    impl ser::SerializeTupleStruct for Capture {
        type Ok = ();
        type Error = Message;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
            v.serialize(Capture)
        }
        fn end(self) -> Done {
            Ok(())
        }
    }

    impl ser::SerializeTupleVariant for Capture {
        type Ok = ();
        type Error = Message;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
            v.serialize(Capture)
        }
        fn end(self) -> Done {
            Ok(())
        }
    }

    impl ser::SerializeMap for Capture {
        type Ok = ();
        type Error = Message;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Done {
            k.serialize(Capture)
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
            v.serialize(Capture)
        }
        fn end(self) -> Done {
            Ok(())
        }
    }

    impl ser::SerializeStruct for Capture {
        type Ok = ();
        type Error = Message;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> Done {
            v.serialize(Capture)
        }
        fn end(self) -> Done {
            Ok(())
        }
    }

    impl ser::SerializeStructVariant for Capture {
        type Ok = ();
        type Error = Message;
        fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, v: &T) -> Done {
            v.serialize(Capture)
        }
        fn end(self) -> Done {
            Ok(())
        }
    }
}

/// A type witness for the autoref probe; see the module docs.
pub struct Probe<T>(PhantomData<fn() -> T>);

impl<T> Probe<T> {
    /// A witness for `T`.
    pub fn new() -> Probe<T> {
        Probe(PhantomData)
    }
}

impl<T> Default for Probe<T> {
    fn default() -> Self {
        Probe::new()
    }
}

/// The witness for the return type of a one-argument function or closure.
pub fn probe_ret<A, R, F: Fn(A) -> R>(_: &F) -> Probe<R> {
    Probe::new()
}

/// The witness for the return type of an item function with per-worker state.
pub fn probe_ret_init<W, A, R, F: Fn(&mut W, A) -> R>(_: &F) -> Probe<R> {
    Probe::new()
}

/// The witness for the element type of a slice.
pub fn probe_elem<T>(_: &[T]) -> Probe<T> {
    Probe::new()
}

/// The witness for the type of a value.
pub fn probe_val<T>(_: &T) -> Probe<T> {
    Probe::new()
}

/// Chosen by the probe when `T` is plain old data.
pub trait ViaPod<T> {
    /// `Some(Wire::pod())`.
    fn wire(&self) -> Option<Wire<T>>;
}

impl<T: Pod> ViaPod<T> for &&Probe<T> {
    fn wire(&self) -> Option<Wire<T>> {
        Some(Wire::pod())
    }
}

/// Chosen by the probe when `T` can cross a process boundary through serde.
pub trait ViaSerde<T> {
    /// `Some(Wire::serde())`.
    fn wire(&self) -> Option<Wire<T>>;
}

impl<T: Serialize + DeserializeOwned> ViaSerde<T> for &Probe<T> {
    fn wire(&self) -> Option<Wire<T>> {
        Some(Wire::serde())
    }
}

/// Chosen by the probe when `T` cannot cross a process boundary.
pub trait NoWire<T> {
    /// `None`.
    fn wire(&self) -> Option<Wire<T>>;
}

impl<T> NoWire<T> for Probe<T> {
    fn wire(&self) -> Option<Wire<T>> {
        None
    }
}

/// `Option<Wire<T>>` for the type `T` of a probe expression, by autoref specialization.
///
/// `wire_of!(probe)` where `probe: Probe<T>`.
#[doc(hidden)]
#[macro_export]
macro_rules! __wire_of {
    ($probe:expr) => {{
        #[allow(unused_imports)]
        use $crate::__private::wire::{NoWire as _, ViaPod as _, ViaSerde as _};
        (&&&$probe).wire()
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Opaque;

    #[test]
    fn probe_picks_serde_when_available() {
        let w: Option<Wire<(u32, String)>> = crate::__wire_of!(Probe::<(u32, String)>::new());
        let w = w.expect("tuples of serde types cross");
        let mut buf = Vec::new();
        w.encode(&(7, "seven".to_owned()), &mut buf).unwrap();
        w.encode(&(8, "eight".to_owned()), &mut buf).unwrap();
        let mut input = &buf[..];
        assert_eq!(w.decode(&mut input).unwrap(), (7, "seven".to_owned()));
        assert_eq!(w.decode(&mut input).unwrap(), (8, "eight".to_owned()));
        assert!(input.is_empty());
        assert!(w.decode(&mut input).is_err());
    }

    #[test]
    fn probe_falls_back_without_serde() {
        let w: Option<Wire<Opaque>> = crate::__wire_of!(Probe::<Opaque>::new());
        assert!(w.is_none());
        let f = |x: u8| -> Opaque {
            let _ = x;
            Opaque
        };
        assert!(crate::__wire_of!(probe_ret(&f)).is_none());
        let g = |x: u8| f64::from(x);
        assert!(crate::__wire_of!(probe_ret(&g)).is_some_and(|w| w.is_pod()));
    }

    #[test]
    fn probe_picks_pod_for_numbers_and_arrays() {
        let w: Wire<[f64; 3]> = crate::__wire_of!(Probe::<[f64; 3]>::new()).unwrap();
        assert!(w.is_pod());
        let mut buf = vec![9u8];
        w.encode(&[1.5, -2.0, 3.25], &mut buf).unwrap();
        assert_eq!(buf.len(), 1 + 24);
        let mut input = &buf[1..];
        assert_eq!(w.decode(&mut input).unwrap(), [1.5, -2.0, 3.25]);
        assert!(input.is_empty() && w.decode(&mut input).is_err());
        let s: Wire<String> = crate::__wire_of!(Probe::<String>::new()).unwrap();
        assert!(!s.is_pod());
        let t: Wire<(u8, f64)> = crate::__wire_of!(Probe::<(u8, f64)>::new()).unwrap();
        assert!(!t.is_pod(), "tuples have padding: serde");
        let u: Wire<()> = crate::__wire_of!(Probe::<()>::new()).unwrap();
        assert!(!u.is_pod(), "zero-sized: nothing to place in shared memory");
    }

    /// A user's `#[repr(C)]` struct of numbers, derived, takes the plain-old-data wire.
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Point {
        x: f64,
        y: f64,
        id: u64,
    }

    #[test]
    fn probe_picks_pod_for_derived_structs() {
        let w: Wire<Point> = crate::__wire_of!(Probe::<Point>::new()).unwrap();
        assert!(w.is_pod());
        let p = Point { x: 1.5, y: -2.0, id: 7 };
        let mut buf = Vec::new();
        w.encode(&p, &mut buf).unwrap();
        assert_eq!(buf.len(), 24);
        assert_eq!(w.decode(&mut &buf[..]).unwrap(), p);
    }
}
