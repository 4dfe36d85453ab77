use parfor::parmap;

fn main() {
    let _y: Vec<f64> = parmap!(f64::sqrt; workers = 2);
}
