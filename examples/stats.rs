//! The `#[parfor]` example from the README: sliced output and reductions.

use parfor::parfor;

#[parfor]
fn stats(data: &[f64], out: &mut [f64]) -> (f64, f64, Vec<usize>) {
    let mut sum = 0.0;
    let mut best = f64::MIN;
    let mut hits = Vec::new();
    #[parfor(engine = "threads")]
    for i in 0..data.len() {
        let y = data[i].sqrt(); // temporary
        out[i] = y; // sliced output
        sum += y; // reduction
        best = best.max(y); // reduction
        if y > 0.5 {
            hits.push(i); // concatenation, in iteration order
        }
    }
    (sum, best, hits)
}

fn main() {
    let data: Vec<f64> = (0..10).map(|i| f64::from(i) / 10.0).collect();
    let mut out = vec![0.0; data.len()];
    let (sum, best, hits) = stats(&data, &mut out);
    println!("sum = {sum}, best = {best}, hits = {hits:?}");
    println!("out = {out:?}");
}
