use parfor::parfor;

fn merge(a: String, b: String) -> String {
    a + &b
}

#[parfor]
fn join(v: &[i64]) -> String {
    let mut acc = String::new();
    #[parfor]
    for x in v.iter() {
        acc = merge(acc, x.to_string());
    }
    acc
}

fn main() {
    join(&[1]);
}
