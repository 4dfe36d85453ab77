use parfor::parfor;

#[parfor]
fn countdown(mut n: usize) -> usize {
    let mut steps = 0;
    #[parfor]
    while n > 0 {
        n -= 1;
        steps += 1;
    }
    steps
}

fn main() {
    countdown(3);
}
