// `let p = &mut i` cannot change the loop variable: it is bound immutably (rustc's E0596).
use parfor::parfor;

#[parfor]
fn fill(out: &mut [f64]) {
    #[parfor]
    for i in 0..out.len() {
        let p = &mut i;
        *p = 0;
        out[i] = 1.0;
    }
}

fn main() {
    fill(&mut [0.0; 4]);
}
