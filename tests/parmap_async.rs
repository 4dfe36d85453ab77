//! scratch
#![cfg(feature = "async")]
use parfor::{parmap, parmap_async};

async fn double(x: u64) -> u64 {
    x * 2
}

#[test]
fn smoke() {
    let v = parmap!(double, 0..10u64);
    assert_eq!(v, (0..10).map(|x| x * 2).collect::<Vec<_>>());
    let names = vec!["a".to_string(), "bb".to_string()];
    let lens = parmap!(|s: &str| async move { s.len() }, names; concurrency = 1);
    assert_eq!(lens, [1, 2]);
    let x = parmap!(|a, b| a * b, [1, 2], [3, 4]);
    assert_eq!(x, [3, 4, 6, 8]);
}

#[tokio::test(start_paused = true)]
async fn smoke_async() {
    let v = parmap_async!(double, 0..10u64; concurrency = 3).await;
    assert_eq!(v[9], 18);
}
