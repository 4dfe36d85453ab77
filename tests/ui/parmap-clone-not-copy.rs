use parfor::parmap;

fn count(s: String) -> usize {
    s.len()
}

fn main() {
    let names = vec![String::from("a")];
    let _y: Vec<usize> = parmap!(count, names);
}
