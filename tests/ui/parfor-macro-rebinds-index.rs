// A user macro that receives the loop variable could rebind or change it: rejected.
use parfor::parfor;

macro_rules! zero {
    ($i:ident) => {
        let $i = 0;
    };
}

#[parfor]
fn fill(out: &mut [f64]) {
    #[parfor]
    for i in 0..out.len() {
        zero!(i);
        out[i] = 1.0;
    }
}

fn main() {
    fill(&mut [0.0; 4]);
}
