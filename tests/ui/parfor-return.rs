use parfor::parfor;

#[parfor]
fn find(v: &[i64], target: i64) -> Option<usize> {
    #[parfor]
    for (i, x) in v.iter().enumerate() {
        if *x == target {
            return Some(i);
        }
    }
    None
}

fn main() {
    find(&[1, 2], 2);
}
