//! A parameter sweep: the damped oscillator `x'' + 2 zeta w x' + w^2 x = 0` simulated for every
//! pair (w, zeta) on a grid with `parmap!`, the step size and duration passed with `args`.
//!
//! ```text
//! cargo run --release --example parameter_sweep [-- --engine serial|threads|fork]
//! ```

#[path = "common/mod.rs"]
mod common;

use parfor::parmap;

/// Simulates the oscillator from x = 1, v = 0 and returns the largest |x| after `t_end / 2`.
fn late_amplitude(w: f64, zeta: f64, dt: f64, t_end: f64) -> f64 {
    let (mut x, mut v, mut t, mut peak) = (1.0f64, 0.0f64, 0.0, 0.0f64);
    while t < t_end {
        let a = -2.0 * zeta * w * v - w * w * x;
        v += a * dt;
        x += v * dt;
        t += dt;
        if t > t_end / 2.0 {
            peak = peak.max(x.abs());
        }
    }
    peak
}

fn main() {
    let engine = common::engine();
    let side = if common::quick() { 16 } else { 64 };
    let omegas: Vec<f64> = (1..=side).map(|i| i as f64 * 0.5).collect();
    let zetas: Vec<f64> = (0..side).map(|j| j as f64 / side as f64).collect();
    let (dt, t_end) = (1e-4, 10.0);
    let (peaks, t) = common::timed(
        || parmap!(late_amplitude, omegas, zetas; args = (dt, t_end), engine = engine),
    );
    assert_eq!(peaks.len(), omegas.len() * zetas.len());
    println!("engine: {engine}");
    println!("{} x {} grid of (omega, zeta) in {t:.2?}", omegas.len(), zetas.len());
    println!("late amplitude, rows omega, columns zeta (every {}th):", side / 8);
    for (i, w) in omegas.iter().enumerate().step_by(side / 8) {
        let row: Vec<String> = (0..zetas.len())
            .step_by(side / 8)
            .map(|j| format!("{:6.3}", peaks[i * zetas.len() + j]))
            .collect();
        println!("  omega {w:5.1}: {}", row.join(" "));
    }
    // Undamped oscillators keep their amplitude; damped ones lose it.
    assert!(peaks[0] > 0.9);
    assert!(peaks[zetas.len() - 1] < peaks[0]);
}
