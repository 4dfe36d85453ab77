//! [`Source`]: user collections that parfor reads by index.

/// A collection with a length and an indexed get, that `parmap!` and `parmap_iter!` accept as
/// a source (alone, in a Cartesian product or zipped), zero-copy on every engine: workers
/// borrow it on threads, and read it copy-on-write in fork worker processes.
///
/// Its elements reach the mapped function as slice elements do: a parameter `&T` gets the
/// element itself, a parameter `T` where `T: Copy` a copy.
///
/// rayon's `IndexedParallelIterator` is the precedent: random access is what lets parfor cut
/// the items into the same blocks on every engine.
///
/// ```
/// use parfor::{parmap, Source};
///
/// /// Every `step`-th element of a vector, without copying it.
/// struct Strided {
///     data: Vec<f64>,
///     step: usize,
/// }
///
/// impl Source for Strided {
///     type Item = f64;
///     fn len(&self) -> usize {
///         self.data.len().div_ceil(self.step)
///     }
///     fn get(&self, i: usize) -> &f64 {
///         &self.data[i * self.step]
///     }
/// }
///
/// let s = Strided { data: (0..10).map(f64::from).collect(), step: 3 };
/// assert_eq!(parmap!(|x: f64| x * 10.0, s), [0.0, 30.0, 60.0, 90.0]);
/// assert_eq!(parmap!(|x: f64, k: u32| x + f64::from(k), s, 0..2u32).len(), 8);
/// ```
pub trait Source: Sync {
    /// The element type.
    type Item: ?Sized + Sync;

    /// The number of elements.
    fn len(&self) -> usize;

    /// Whether there are no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`, for every `i < self.len()`.
    fn get(&self, i: usize) -> &Self::Item;
}

/// A reference to a collection is the collection.
impl<S: Source + ?Sized> Source for &S {
    type Item = S::Item;

    #[inline(always)]
    fn len(&self) -> usize {
        (**self).len()
    }

    #[inline(always)]
    fn get(&self, i: usize) -> &S::Item {
        (**self).get(i)
    }
}
