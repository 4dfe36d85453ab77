use parfor::parmap;

async fn fetch(seen: &mut u64, x: f64) -> f64 {
    *seen += 1;
    x
}

fn main() {
    let x = vec![1.0, 2.0];
    let _y: Vec<f64> = parmap!(fetch, x; init = || 0u64);
}
