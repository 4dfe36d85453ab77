use parfor::parfor;

async fn fetch(i: usize) -> usize {
    i
}

#[parfor]
async fn total(n: usize) -> usize {
    let mut s = 0;
    #[parfor]
    for i in 0..n {
        s += fetch(i).await;
    }
    s
}

fn main() {
    let _ = total(3);
}
