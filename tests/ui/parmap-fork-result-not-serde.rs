use parfor::parmap;

struct Opaque(f64);

fn main() {
    let x = vec![1.0_f64, 2.0];
    let _y: Vec<Opaque> = parmap!(|a: f64| Opaque(a), x; engine = "fork");
}
