use parfor::parmap;

fn scaled(buf: &mut Vec<f64>, x: f64) -> f64 {
    buf.push(x);
    x * 2.0
}

fn main() {
    let x = vec![1.0, 2.0];
    let buf: Vec<f64> = Vec::new();
    let _y: Vec<f64> = parmap!(scaled, x; init = buf);
}
