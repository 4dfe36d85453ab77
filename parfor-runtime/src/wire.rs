//! How values cross a process boundary (fork workers): serde with the `postcard` codec.
//!
//! Whether a type can cross is decided where the macro expands, with autoref
//! specialization: `(&&Probe::<T>::new()).wire()` picks [`ViaSerde`] when `T` implements
//! `Serialize + DeserializeOwned` and falls back to [`NoWire`] otherwise, so the serial and
//! threads engines never require serde. The fork engine reports a missing wire as an error
//! that names the type.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// Encodes and decodes values of type `T` (appending to / consuming from a byte buffer).
pub struct Wire<T> {
    encode: fn(&T, &mut Vec<u8>) -> Result<(), String>,
    decode: fn(&mut &[u8]) -> Result<T, String>,
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

fn encode_serde<T: Serialize>(v: &T, out: &mut Vec<u8>) -> Result<(), String> {
    let buf = std::mem::take(out);
    match postcard::to_extend(v, buf) {
        Ok(buf) => {
            *out = buf;
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot encode a `{}`: {e}",
            std::any::type_name::<T>()
        )),
    }
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
        Wire {
            encode: encode_serde::<T>,
            decode: decode_serde::<T>,
        }
    }
}

impl<T> Wire<T> {
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

/// The witness for the element type of a slice.
pub fn probe_elem<T>(_: &[T]) -> Probe<T> {
    Probe::new()
}

/// The witness for the type of a value.
pub fn probe_val<T>(_: &T) -> Probe<T> {
    Probe::new()
}

/// Chosen by the probe when `T` can cross a process boundary.
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
        use $crate::wire::{NoWire as _, ViaSerde as _};
        (&&$probe).wire()
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
        assert!(crate::__wire_of!(probe_ret(&g)).is_some());
    }
}
