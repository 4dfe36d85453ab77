// `engine = "mpi"` with results that the ranks cannot exchange (not serde).
use parfor::parmap;

struct Opaque(u64);

fn main() {
    let _y: Vec<Opaque> = parmap!(|x: u64| Opaque(x), 0..4u64; engine = "mpi");
}
