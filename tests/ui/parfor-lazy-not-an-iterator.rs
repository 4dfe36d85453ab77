use parfor::parfor;

#[parfor]
fn total(n: u64) -> u64 {
    let mut s = 0;
    #[parfor]
    for x in n {
        s += x;
    }
    s
}

fn main() {
    total(3);
}
