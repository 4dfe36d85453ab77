use parfor::parmap;

fn main() {
    let x = vec![1.0, 4.0];
    // one second more than a `Duration` holds
    let _y: Vec<f64> = parmap!(f64::sqrt, x; engine = "fork", timeout = "18446744073709551616s");
    let _z: Vec<f64> = parmap!(f64::sqrt, x; engine = "fork", timeout = "99999999999999999999h");
}
