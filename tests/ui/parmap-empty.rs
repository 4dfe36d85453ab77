use parfor::parmap;

fn main() {
    let _y: Vec<f64> = parmap!();
}
