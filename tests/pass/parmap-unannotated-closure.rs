//! Closures without parameter types: slice elements arrive as `&T`, range items by value.

use parfor::parmap;

fn main() {
    let x = vec![1.5, 2.0];
    let y = vec![3.0, 4.0];
    let products = parmap!(|a, b| a * b, x, y);
    assert_eq!(products, [4.5, 6.0, 6.0, 8.0]);
    let doubled = parmap!(|i| i * 2, 0..10);
    assert_eq!(doubled[9], 18);
    let k = 10;
    let shifted = parmap!(|i, k| i + k, 0..3; args = (k,));
    assert_eq!(shifted, [10, 11, 12]);
}
