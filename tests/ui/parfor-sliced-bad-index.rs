use parfor::parfor;

#[parfor]
fn shift(v: &[i64], out: &mut [i64]) {
    let j = 0;
    #[parfor]
    for i in 0..v.len() - 1 {
        out[i + 1] = v[i];
        out[j] = v[i];
    }
}

fn main() {
    shift(&[1, 2], &mut [0, 0]);
}
