// A `parmap!` closure that changes a captured variable: items run in parallel, in no order.
use parfor::parmap;

fn main() {
    let x = vec![1.0, 2.0];
    let mut calls = 0;
    let _y = parmap!(
        |a: f64| {
            calls += 1;
            a * 2.0
        },
        x
    );
    println!("{calls}");
}
