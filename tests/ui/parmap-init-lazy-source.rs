use parfor::parmap;

fn len(buf: &mut String, line: String) -> usize {
    buf.clear();
    buf.push_str(&line);
    buf.len()
}

fn main() {
    let text = "a\nbb\nccc";
    let _n: Vec<usize> = parmap!(len, text.lines().map(String::from); init = String::new);
}
