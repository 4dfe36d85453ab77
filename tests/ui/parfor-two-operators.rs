use parfor::parfor;

#[parfor]
fn mixed(v: &[i64]) -> i64 {
    let mut acc = 0;
    #[parfor]
    for x in v.iter() {
        if *x > 0 {
            acc += x;
        } else {
            acc *= x;
        }
    }
    acc
}

fn main() {
    mixed(&[1]);
}
