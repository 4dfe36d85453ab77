// `#[parfor(engine = "fork")]` with a reduction whose type is not serde.
use parfor::parfor;
use std::ops::{Add, AddAssign};

#[derive(Clone, Copy, Default)]
struct Acc(f64);

impl Add for Acc {
    type Output = Acc;
    fn add(self, o: Acc) -> Acc {
        Acc(self.0 + o.0)
    }
}

impl AddAssign for Acc {
    fn add_assign(&mut self, o: Acc) {
        self.0 += o.0;
    }
}

#[parfor]
fn total(v: &[f64]) -> Acc {
    let mut acc = Acc::default();
    #[parfor(engine = "fork")]
    for x in v.iter() {
        acc += Acc(*x);
    }
    acc
}

fn main() {
    total(&[1.0]);
}
