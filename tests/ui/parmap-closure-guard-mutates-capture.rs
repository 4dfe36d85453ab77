// A match guard inside a `parmap!` closure that changes a captured variable.
use parfor::parmap;

fn main() {
    let x = vec![1.0, 2.0];
    let mut calls = 0;
    let _y = parmap!(
        |a: f64| match a {
            b if { calls += 1; b > 1.0 } => b,
            _ => 0.0,
        },
        x
    );
    println!("{calls}");
}
