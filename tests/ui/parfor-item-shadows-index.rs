// A block-local `const` named like the loop variable would shadow it in the body: rejected.
#![allow(non_upper_case_globals)]
use parfor::parfor;

#[parfor]
fn fill(out: &mut [f64]) {
    #[parfor]
    for i in 0..out.len() {
        const i: usize = 0;
        out[i] = 1.0;
    }
}

fn main() {
    fill(&mut [0.0; 4]);
}
