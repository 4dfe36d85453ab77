// `#[parfor]` on a `const fn`: a parallel loop cannot run at compile time.
use parfor::parfor;

#[parfor]
const fn total(n: u64) -> u64 {
    let mut s = 0;
    let mut i = 0;
    while i < n {
        s += i;
        i += 1;
    }
    s
}

fn main() {
    total(3);
}
