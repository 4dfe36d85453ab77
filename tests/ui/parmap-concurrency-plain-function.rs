use parfor::parmap;

fn main() {
    let x = vec![1.0, 2.0];
    let _y: Vec<f64> = parmap!(|a: f64| a * 2.0, x; concurrency = 4);
}
