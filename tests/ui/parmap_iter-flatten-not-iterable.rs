use parfor::parmap_iter;

fn main() {
    let _it = parmap_iter!(|i: u32| i * 2, 0..4u32; flatten = true);
}
