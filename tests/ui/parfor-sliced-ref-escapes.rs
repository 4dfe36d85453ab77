// A `&mut out[i]` stored in a broadcast would outlive the iteration (rustc's E0597).
use parfor::parfor;
use std::sync::Mutex;

#[parfor]
fn stash<'a>(out: &'a mut [f64], kept: &Mutex<Vec<&'a mut f64>>) {
    #[parfor]
    for i in 0..out.len() {
        kept.lock().unwrap().push(&mut out[i]);
    }
}

fn main() {
    let kept = Mutex::new(Vec::new());
    stash(&mut [0.0; 4], &kept);
}
