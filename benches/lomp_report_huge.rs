//! `lomp_report` with `parfor::HugePages` as the global allocator: the "huge pages" columns
//! of its table (the driver runs this binary for them).

#[path = "workloads/lomp.rs"]
mod lomp;

#[global_allocator]
static ALLOC: parfor::HugePages<std::alloc::System> = parfor::HugePages::new(std::alloc::System);

fn main() {
    lomp::main(true);
}
