//! Profiling helper: big plain-old-data fork maps, `fork_big [n] [runs] [engine]`.
use parfor_runtime::wire::Probe;
use parfor_runtime::{Engine, Options, Shape, map};
fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let engine: Engine = args.next().and_then(|a| a.parse().ok()).unwrap_or(Engine::Fork);
    let wire = parfor_runtime::__wire_of!(Probe::<f64>::new());
    let g = |[i]: [usize; 1]| i as f64;
    for _ in 0..runs {
        let t = std::time::Instant::now();
        let v = map(Shape::product([n]), &Options::new().engine(engine).workers(2), wire, g);
        println!("{:?} {}", t.elapsed(), v[n - 1]);
    }
}
