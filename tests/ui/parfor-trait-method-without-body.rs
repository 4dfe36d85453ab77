use parfor::parfor;

trait Kernel {
    #[parfor]
    fn apply(&self, v: &mut [f64]);
}

fn main() {}
