use parfor::parfor;

#[parfor]
fn sum_lazy(n: u64) -> u64 {
    let mut s = 0u64;
    #[parfor]
    for x in (0..n).map(|i| i * 2) {
        s += x;
    }
    s
}

#[test]
fn smoke() {
    assert_eq!(sum_lazy(10_000), 10_000 * 9_999);
}
