//! The example scripts of parfor are this package's examples (`examples/*.rs`, run one with
//! `cargo run --release --example NAME` from the repository root); this library is empty.
