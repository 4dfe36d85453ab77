// `init(...)` declares per-worker variables of one loop: it goes on the loop.
use parfor::parfor;

#[parfor(init(buf = Vec::<u8>::new()))]
fn total(v: &[u64]) -> u64 {
    let mut s = 0;
    #[parfor]
    for x in v.iter() {
        s += x;
    }
    s
}

fn main() {
    total(&[1]);
}
