use parfor::parfor;

#[parfor]
fn both(v: &[i64]) -> Vec<i64> {
    let mut out = vec![0; v.len()];
    #[parfor]
    for i in 0..v.len() {
        out[i] = v[i];
        out.push(v[i]);
    }
    out
}

fn main() {
    both(&[1]);
}
