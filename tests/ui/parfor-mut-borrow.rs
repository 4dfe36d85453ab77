use parfor::parfor;

fn bump(x: &mut i64) {
    *x += 1;
}

#[parfor]
fn f(v: &[i64]) -> i64 {
    let mut total = 0;
    #[parfor]
    for _x in v.iter() {
        bump(&mut total);
    }
    total
}

fn main() {
    f(&[1]);
}
