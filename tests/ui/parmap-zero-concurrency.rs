use parfor::parmap;

fn main() {
    let x = vec![1.0_f64, 2.0];
    let _y: Vec<f64> = parmap!(f64::sqrt, x; concurrency = 0);
}
