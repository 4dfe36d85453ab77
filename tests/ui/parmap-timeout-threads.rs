use parfor::parmap;

fn main() {
    let x = vec![1.0, 4.0];
    // `threads` cannot stop a running item: a timeout there is refused, not ignored
    let _y: Vec<f64> = parmap!(f64::sqrt, x; engine = "threads", timeout = "10s");
    let _z: Vec<f64> =
        parmap!(f64::sqrt, x; timeout = std::time::Duration::from_secs(1), engine = "serial");
}
