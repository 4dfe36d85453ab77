use parfor::parmap_iter;

fn scaled(buf: &mut Vec<f64>, x: f64) -> f64 {
    buf.push(x);
    x * 2.0
}

fn main() {
    let x = vec![1.0, 2.0];
    for y in parmap_iter!(scaled, x; init = Vec::new) {
        println!("{y}");
    }
}
