use parfor::parfor;

#[parfor]
fn grid(n: usize) -> usize {
    let mut c = 0;
    'rows: for _ in 0..n {
        #[parfor]
        for i in 0..n {
            for j in 0..n {
                if j > i {
                    continue 'rows;
                }
                c += j;
            }
        }
    }
    c
}

fn main() {
    grid(4);
}
