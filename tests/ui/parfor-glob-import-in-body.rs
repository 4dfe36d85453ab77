// A glob import in the loop body could shadow the loop variable or a shared variable.
use parfor::parfor;

mod consts {
    pub const SCALE: f64 = 2.0;
}

#[parfor]
fn fill(out: &mut [f64]) {
    #[parfor]
    for i in 0..out.len() {
        use consts::*;
        out[i] = SCALE;
    }
}

fn main() {
    fill(&mut [0.0; 4]);
}
