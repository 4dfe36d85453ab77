use parfor::parmap;

fn main() {
    let lines = "a\nbb".lines();
    let _v: Vec<usize> = parmap!(|l: &str| l.len(), lines);
}
