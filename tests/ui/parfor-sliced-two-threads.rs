// Two scoped threads of one iteration both writing `out[i]` (rustc's E0499).
use parfor::parfor;

#[parfor]
fn race(out: &mut [f64]) {
    #[parfor]
    for i in 0..out.len() {
        std::thread::scope(|s| {
            s.spawn(|| out[i] = 1.0);
            s.spawn(|| out[i] = 2.0);
        });
    }
}

fn main() {
    race(&mut [0.0; 4]);
}
