use parfor::parmap_iter;

// Without `scope = s`, a stream's worker threads may outlive the caller's frame (the
// iterator can be leaked), so it cannot borrow a local vector.
fn lengths(words: Vec<String>) -> Vec<usize> {
    parmap_iter!(|w: &String| w.len(), words).collect()
}

fn main() {
    let _ = lengths(vec!["a".into()]);
}
