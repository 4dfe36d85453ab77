// `timeout` with `engine = "mpi"`: a rank cannot stop one item without ending the job.
use parfor::parmap;

fn main() {
    let _y: Vec<u64> = parmap!(|x: u64| x * 2, 0..4u64; engine = "mpi", timeout = "1s");
}
