use parfor::parmap;

async fn fetch(x: f64) -> f64 {
    x
}

fn main() {
    let x = vec![1.0, 2.0];
    let _y: Vec<f64> = parmap!(fetch, x; concurrency = 8);
    let _z: Vec<usize> = parmap!(|s: &str| async move { s.len() }, ["a", "bc"]);
}
