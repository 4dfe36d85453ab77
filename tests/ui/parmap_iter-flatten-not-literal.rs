use parfor::parmap_iter;

fn main() {
    let _it = parmap_iter!(|i: u32| vec![i], 0..4u32; flatten = 1);
}
