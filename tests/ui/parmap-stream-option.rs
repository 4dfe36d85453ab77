use parfor::parmap;

fn main() {
    let _v: Vec<u32> = parmap!(|i: u32| i, 0..4u32; window = 8);
}
