use parfor::parfor;
use std::rc::Rc;

#[parfor]
fn scaled(v: &[i64]) -> i64 {
    let factor = Rc::new(3);
    let mut s = 0;
    #[parfor]
    for x in v.iter() {
        s += x * *factor;
    }
    s
}

fn main() {
    scaled(&[1]);
}
