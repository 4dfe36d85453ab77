// A marked loop inside a macro call, whose tokens `#[parfor]` cannot rewrite.
use parfor::parfor;

macro_rules! twice {
    ($($t:tt)*) => {{ $($t)* }};
}

#[parfor]
fn total(v: &[u64]) -> u64 {
    let mut s = 0;
    twice! {
        #[parfor]
        for x in v.iter() {
            s += x;
        }
    }
    s
}

fn main() {
    total(&[1]);
}
