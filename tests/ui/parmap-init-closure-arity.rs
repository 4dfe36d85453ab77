use parfor::parmap;

fn main() {
    let x = vec![1.0, 2.0];
    let _y: Vec<f64> = parmap!(|x| x * 2.0, x; init = Vec::<f64>::new);
}
