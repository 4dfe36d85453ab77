use parfor::parfor;

struct Counter {
    hits: usize,
}

impl Counter {
    #[parfor]
    fn count(&mut self, v: &[i64]) {
        #[parfor]
        for x in v.iter() {
            if *x > 0 {
                self.hits += 1;
            }
        }
    }
}

fn main() {
    Counter { hits: 0 }.count(&[1]);
}
