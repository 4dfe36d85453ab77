// A marked loop inside a nested `fn` item, which the outer `#[parfor]` does not rewrite.
use parfor::parfor;

#[parfor]
fn outer(v: &[u64]) -> u64 {
    fn inner(v: &[u64]) -> u64 {
        let mut s = 0;
        #[parfor]
        for x in v.iter() {
            s += x;
        }
        s
    }
    inner(v)
}

fn main() {
    outer(&[1]);
}
