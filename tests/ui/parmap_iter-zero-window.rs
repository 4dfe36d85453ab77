use parfor::parmap_iter;

fn main() {
    let _it = parmap_iter!(|i: u32| i, 0..4u32; window = 0);
}
