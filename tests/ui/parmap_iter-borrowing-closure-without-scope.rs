use parfor::parmap_iter;

fn main() {
    let offset = 10u32;
    let _v: Vec<u32> = parmap_iter!(|i: u32| i + offset, 0..4u32).collect();
}
