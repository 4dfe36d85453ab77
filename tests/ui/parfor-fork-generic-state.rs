// A generic `#[parfor(engine = "fork")]` function: the error names the bound to add.
use parfor::parfor;

#[parfor]
fn total<T: Copy + Default + std::ops::Add<Output = T> + Send + Sync>(v: &[T]) -> T {
    let mut acc = T::default();
    #[parfor(engine = "fork")]
    for x in v.iter() {
        acc += *x;
    }
    acc
}

fn main() {
    total(&[1u64]);
}
