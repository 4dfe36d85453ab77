use parfor::parfor;

#[parfor]
fn running(v: &[f64]) -> f64 {
    let mut sum = 0.0;
    #[parfor]
    for x in v.iter() {
        if sum < 10.0 {
            sum += x;
        }
    }
    sum
}

fn main() {
    running(&[1.0]);
}
