use parfor::parmap;

async fn fetch(x: f64) -> f64 {
    x
}

fn main() {
    let x = vec![1.0, 2.0];
    let _y: Vec<f64> = parmap!(fetch, x; engine = "threads");
}
