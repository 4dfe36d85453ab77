// `engine = "mpi"` in a build without parfor's `mpi` feature.
use parfor::parmap;

fn main() {
    let _y: Vec<u64> = parmap!(|x: u64| x * 2, 0..4u64; engine = "mpi");
}
