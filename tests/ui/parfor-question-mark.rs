use parfor::parfor;

#[parfor]
fn parse_all(words: &[&str]) -> Result<i64, std::num::ParseIntError> {
    let mut sum = 0;
    #[parfor]
    for w in words.iter() {
        sum += w.parse::<i64>()?;
    }
    Ok(sum)
}

fn main() {
    let _ = parse_all(&["1"]);
}
