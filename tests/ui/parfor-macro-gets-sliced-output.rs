// A user macro that receives a sliced output could touch any element: rejected.
use parfor::parfor;

macro_rules! first {
    ($o:ident) => {
        $o[0] = 2.0
    };
}

#[parfor]
fn fill(out: &mut [f64]) {
    #[parfor]
    for i in 0..out.len() {
        out[i] = 1.0;
        first!(out);
    }
}

fn main() {
    fill(&mut [0.0; 4]);
}
