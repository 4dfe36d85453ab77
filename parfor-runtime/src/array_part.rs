//! Array reductions of `#[parfor]` loops (`hist[bin] += 1`): each block accumulates into a
//! private partial array, combined into the user's array in block order after the loop, as
//! scalar reductions are.

use crate::wire::Probe;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One block's partial array of an array reduction: element `k` is `None` until the block's
/// first contribution to `k`, which becomes its value (so no identity element is needed, as
/// for scalar reductions). Allocated on the block's first contribution.
#[derive(Clone, Debug)]
pub struct ArrayPart<T> {
    vals: Vec<Option<T>>,
}

impl<T> ArrayPart<T> {
    /// An empty partial array for elements of the probed type.
    pub fn new(_: &Probe<T>) -> ArrayPart<T> {
        ArrayPart { vals: Vec::new() }
    }

    /// The accumulator of element `k` of an array of `len` elements.
    ///
    /// # Panics
    /// When `k` is out of bounds, like indexing the array.
    #[inline(always)]
    pub fn slot(&mut self, len: usize, k: usize) -> &mut Option<T> {
        if k >= len {
            out_of_bounds(k, len);
        }
        if self.vals.len() != len {
            self.grow(len);
        }
        // SAFETY: `k < len` (checked above) and `vals` holds `len` elements (grown above).
        unsafe { self.vals.get_unchecked_mut(k) }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, len: usize) {
        self.vals.resize_with(len, || None);
    }

    /// Combines the block's contributions into `target` with `f(target[k], part[k])`.
    pub fn merge_into(self, target: &mut [T], f: impl Fn(T, T) -> T)
    where
        T: Clone,
    {
        for (t, v) in target.iter_mut().zip(self.vals) {
            if let Some(v) = v {
                *t = f(t.clone(), v);
            }
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(k: usize, len: usize) -> ! {
    panic!("index out of bounds: the len is {len} but the index is {k}")
}

impl<T: Serialize> Serialize for ArrayPart<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.vals.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ArrayPart<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ArrayPart { vals: Vec::deserialize(d)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_start_from_the_first_and_merge_in_place() {
        let mut p = ArrayPart::new(&Probe::<i64>::new());
        for k in [1, 3, 1] {
            let s = p.slot(4, k);
            *s = Some(s.map_or(10, |a| a + 10));
        }
        let mut hist = vec![1, 1, 1, 1];
        p.merge_into(&mut hist, |a, b| a + b);
        assert_eq!(hist, [1, 21, 1, 11]);
        let empty = ArrayPart::new(&Probe::<i64>::new());
        empty.merge_into(&mut hist, |a, b| a + b);
        assert_eq!(hist, [1, 21, 1, 11]);
    }

    #[test]
    #[should_panic(expected = "the len is 4 but the index is 4")]
    fn out_of_bounds_panics_like_indexing() {
        ArrayPart::new(&Probe::<u8>::new()).slot(4, 4);
    }
}
