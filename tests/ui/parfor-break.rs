use parfor::parfor;

#[parfor]
fn first_negative(v: &[i64]) -> usize {
    let mut n = 0;
    #[parfor]
    for x in v.iter() {
        if *x < 0 {
            break;
        }
        n += 1;
    }
    n
}

fn main() {
    first_negative(&[1, -1]);
}
