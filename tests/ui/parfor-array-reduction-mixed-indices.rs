// An array reduction updated with one index and with two.
use parfor::parfor;

#[parfor]
fn grid(v: &[usize]) -> Vec<[u32; 4]> {
    let mut g = vec![[0u32; 4]; 4];
    #[parfor]
    for i in 0..v.len() {
        g[v[i] % 4][0] += 1;
        g[v[i] % 4] = g[v[i] % 4].max([1; 4]);
    }
    g
}

fn main() {
    grid(&[1]);
}
