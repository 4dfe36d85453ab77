// `(mut k, x)` in an `.enumerate()` loop: the index cannot be declared `mut` either.
use parfor::parfor;

#[parfor]
fn fill(v: &[f64], out: &mut [f64]) {
    #[parfor]
    for (mut k, x) in v.iter().enumerate() {
        k = 0;
        out[k] = *x;
    }
}

fn main() {
    fill(&[1.0, 2.0], &mut [0.0; 2]);
}
