use parfor::parmap_async;

async fn fetch(seen: &mut u64, x: f64) -> f64 {
    *seen += 1;
    x
}

async fn run() {
    let x = vec![1.0, 2.0];
    let _y: Vec<f64> = parmap_async!(fetch, x; init = || 0u64).await;
}

fn main() {
    let _ = run();
}
