//! Every supported loop shape, on a method, a free function and `main`.
#![deny(warnings, unused_qualifications)]

use parfor::parfor;

fn merge(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    [a, b].concat()
}

struct Scale {
    k: f64,
}

impl Scale {
    #[parfor(engine = "threads", workers = 2, chunk = 3)]
    fn apply(&self, xs: &mut [f64]) -> f64 {
        let mut hi = f64::MIN;
        #[parfor]
        for x in xs.iter_mut() {
            *x *= self.k;
            hi = hi.max(*x);
        }
        hi
    }
}

#[parfor(engine = "serial")]
fn shapes(v: &[i64], grid: &mut [Vec<i64>]) -> (i64, i64, Vec<usize>, Vec<u8>) {
    let mut s = 0;
    let mut p = 1;
    let mut at = Vec::new();
    let mut bytes = Vec::new();
    #[parfor(engine = "threads")]
    for i in 0..v.len() {
        s += v[i];
        if v[i] > 1 {
            at.push(i);
        }
    }
    #[parfor(reduce(bytes = merge))]
    for (k, x) in v.iter().enumerate() {
        bytes = merge(bytes, vec![k as u8, *x as u8]);
        p *= x;
    }
    #[parfor]
    for i in 0..=grid.len() - 1 {
        for j in 0..grid[i].len() {
            grid[i][j] = (i * j) as i64;
        }
    }
    let mut owned = v.to_vec();
    #[parfor]
    for (k, x) in owned.iter_mut().enumerate() {
        *x += k as i64;
    }
    #[parfor(engine = "fork", timeout = "10s", progress = false)]
    for x in &mut owned {
        *x -= 1;
    }
    (s, p, at, bytes)
}

#[parfor(workers = 2)]
fn main() {
    let mut grid = vec![vec![0; 3]; 4];
    let (s, p, at, bytes) = shapes(&[1, 2, 3], &mut grid);
    assert_eq!((s, p, at, bytes), (6, 6, vec![1, 2], vec![0, 1, 1, 2, 2, 3]));
    assert_eq!(grid[3], [0, 3, 6]);
    let mut xs = vec![1.0, -2.0];
    assert_eq!(Scale { k: 2.0 }.apply(&mut xs), 2.0);
    let mut total = 0;
    #[parfor]
    for i in 0..10u64 {
        total += i;
    }
    assert_eq!(total, 45);
}
