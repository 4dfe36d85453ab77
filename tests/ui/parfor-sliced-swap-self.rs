// `swap(&mut out[i], &mut out[i])`: two `&mut` to one element (rustc's E0499).
use parfor::parfor;

#[parfor]
fn swap_self(out: &mut [f64]) {
    #[parfor]
    for i in 0..out.len() {
        std::mem::swap(&mut out[i], &mut out[i]);
    }
}

fn main() {
    swap_self(&mut [0.0; 4]);
}
