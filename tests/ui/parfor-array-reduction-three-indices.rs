// A three-index array reduction: not supported; index a flat array instead.
use parfor::parfor;

#[parfor]
fn cube(v: &[usize]) -> Vec<Vec<Vec<u32>>> {
    let mut c = vec![vec![vec![0u32; 4]; 4]; 4];
    #[parfor]
    for i in 0..v.len() {
        c[v[i] % 4][v[i] / 4 % 4][v[i] / 16 % 4] += 1;
    }
    c
}

fn main() {
    cube(&[1]);
}
