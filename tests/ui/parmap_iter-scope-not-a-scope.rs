use parfor::parmap_iter;

fn main() {
    let s = 3;
    let _it = parmap_iter!(|i: u32| i, 0..4u32; scope = s);
}
