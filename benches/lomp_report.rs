//! The fork engine on lomp's workloads, next to the threads engine and the plain loop: see
//! `workloads/lomp.rs`.
//!
//! ```text
//! cargo run --release -p parfor-bench --bin lomp_report -- [--quick] [--10x] [--reps N] [--workers N] [--markdown]
//! ```

#[path = "workloads/lomp.rs"]
mod lomp;

fn main() {
    lomp::main(false);
}
