use parfor::parfor;

// The function's engine and the loop's timeout come from different attributes.
#[parfor(engine = "serial")]
fn sum(v: &[f64]) -> f64 {
    let mut s = 0.0;
    #[parfor(timeout = "2m")]
    for x in v.iter() {
        s += x;
    }
    s
}

#[parfor]
fn double(v: &mut [f64]) {
    #[parfor(timeout = "500ms", engine = "threads")]
    for x in v.iter_mut() {
        *x *= 2.0;
    }
}

fn main() {
    let mut v = vec![1.0, 2.0];
    double(&mut v);
    let _ = sum(&v);
}
