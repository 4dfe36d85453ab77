use parfor::parmap;

fn main() {
    let y = parmap!(f64::sqrt; workers = 2);
    println!("{}", y.len());
}
