use parfor::parfor;
use std::rc::Rc;

#[parfor]
fn total(v: Vec<Rc<u64>>) -> u64 {
    let mut s = 0;
    #[parfor]
    for x in v.into_iter() {
        s += *x;
    }
    s
}

fn main() {
    total(vec![Rc::new(1)]);
}
