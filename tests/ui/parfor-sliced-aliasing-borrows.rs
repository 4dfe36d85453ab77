// `f(&mut out[i], &out[i])`: two overlapping borrows of one element, rejected as in a plain
// loop (rustc's E0502 on the iteration's handle `out`).
use parfor::parfor;

fn add(a: &mut Vec<u8>, b: &[u8]) {
    a.extend_from_slice(b);
}

#[parfor]
fn grow(out: &mut [Vec<u8>]) {
    #[parfor]
    for i in 0..out.len() {
        add(&mut out[i], &out[i]);
    }
}

fn main() {
    grow(&mut [vec![1]]);
}
