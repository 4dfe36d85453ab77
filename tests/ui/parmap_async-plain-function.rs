use parfor::parmap_async;

fn double(x: f64) -> f64 {
    2.0 * x
}

fn main() {
    let x = vec![1.0, 2.0];
    let _fut = async {
        let _y: Vec<f64> = parmap_async!(double, x).await;
    };
}
