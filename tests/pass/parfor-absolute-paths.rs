//! The expansion names nothing through the user's scope: a local `core` module and shadowed
//! prelude names do not change it.
#![allow(dead_code, non_camel_case_types)]

mod core {}
mod std {}

struct Vec;
struct Option;
struct Some;
struct None;
struct usize;
struct String;
trait Iterator {}
trait Clone {}
trait Extend {}
fn format() {}
fn fold() {}

#[::parfor::parfor]
fn run(v: &[i64], out: &mut [i64]) -> (i64, ::std::vec::Vec<i64>) {
    let mut s = 0;
    let mut evens = ::std::vec::Vec::new();
    #[parfor(chunk = 2)]
    for i in 0..v.len() {
        out[i] = v[i] * 2;
        s += v[i];
        if v[i] % 2 == 0 {
            evens.push(v[i]);
        }
    }
    (s, evens)
}

fn main() {
    let mut out = [0; 3];
    let (s, evens) = run(&[1, 2, 3], &mut out);
    assert_eq!((s, evens, out), (6, ::std::vec![2], [2, 4, 6]));
}
