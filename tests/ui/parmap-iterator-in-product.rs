use parfor::parmap;

fn main() {
    let text = "a\nbb\nccc";
    let _v: Vec<usize> = parmap!(|l: &str, k: u32| l.len() + k as usize, text.lines(), 0..3u32);
}
