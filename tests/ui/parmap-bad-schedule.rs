// `schedule` takes "dynamic" or "static" only.
use parfor::parmap;

fn main() {
    let _y: Vec<u64> = parmap!(|x: u64| x * 2, 0..4u64; schedule = "guided");
}
