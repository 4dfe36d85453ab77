// Literal engine names are accepted in any case, in `parmap!` and `#[parfor]`.
use parfor::{parfor, parmap};

#[parfor(engine = "THREADS")]
fn squares(v: &mut [u64]) {
    #[parfor(engine = "Serial")]
    for i in 0..v.len() {
        v[i] = (i * i) as u64;
    }
}

fn main() {
    let mut v = vec![0u64; 8];
    squares(&mut v);
    let forked = parmap!(|i: u64| i * i, 0..8u64; engine = "Fork");
    let threaded = parmap!(|i: u64| i * i, 0..8u64; engine = "THREADS");
    assert_eq!(forked, v);
    assert_eq!(threaded, v);
}
