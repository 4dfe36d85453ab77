// An array reduction read in the loop body: its value depends on the order of iterations.
use parfor::parfor;

#[parfor]
fn hist(v: &[usize], out: &mut [usize]) -> Vec<u32> {
    let mut h = vec![0u32; 10];
    #[parfor]
    for i in 0..v.len() {
        h[v[i]] += 1;
        out[i] = h[v[i]] as usize;
    }
    h
}

fn main() {
    hist(&[1], &mut [0]);
}
