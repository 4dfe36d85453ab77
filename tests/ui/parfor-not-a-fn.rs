use parfor::parfor;

#[parfor]
struct Grid {
    cells: Vec<f64>,
}

fn main() {}
