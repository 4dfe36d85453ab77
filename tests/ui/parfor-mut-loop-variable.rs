// The loop variable cannot be declared `mut`: each iteration owns the elements at its index.
use parfor::parfor;

#[parfor]
fn fill(out: &mut [f64]) {
    #[parfor]
    for mut i in 0..out.len() - 1 {
        i += 1;
        out[i] = 1.0;
    }
}

fn main() {
    fill(&mut [0.0; 4]);
}
