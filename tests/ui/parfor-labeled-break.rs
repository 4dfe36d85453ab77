use parfor::parfor;

#[parfor]
fn grid(n: usize) -> usize {
    let mut c = 0;
    'rows: for _ in 0..n {
        #[parfor]
        for i in 0..n {
            if i == 3 {
                break 'rows;
            }
            c += i;
        }
    }
    c
}

fn main() {
    grid(4);
}
