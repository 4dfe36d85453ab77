use parfor::parmap;

fn main() {
    let x = vec![1.0_f64, 2.0];
    let _y: Vec<f64> = parmap!(|a: f64| a + __parfor_s0.len() as f64, x);
    let _z: Vec<f64> = parmap!(|a: f64| a + __parfor_i0 as f64, x);
}
