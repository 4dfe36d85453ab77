use parfor::parmap_iter;

fn main() {
    let keep_order = false;
    let _it = parmap_iter!(|i: u32| i, 0..4u32; ordered = keep_order);
}
