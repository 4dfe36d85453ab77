use parfor::parmap;

fn main() {
    let x = vec![1.0, 2.0];
    let _y: Vec<f64> = parmap!(|n: &mut u64, x: f64| x * 2.0, x; init = 0);
}
