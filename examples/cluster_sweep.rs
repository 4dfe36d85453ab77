//! A parameter sweep on a cluster: the damped oscillator of `parameter_sweep` simulated for
//! every (omega, zeta) on a grid, its items shared among the ranks of an MPI job.
//!
//! ```text
//! cargo build --release --features mpi --example cluster_sweep
//! mpirun -n 4 target/release/examples/cluster_sweep
//! PARFOR_ENGINE=threads target/release/examples/cluster_sweep   # the same table
//! ```
//!
//! Every rank runs `main`; every rank makes the same calls with the same inputs and gets the
//! full result; only rank 0 prints. Without `mpirun` the program runs as one rank.

use parfor::{Engine, parfor, parmap};

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

/// The mean of `peaks`, as a `#[parfor]` reduction (combined in block order on every rank).
#[parfor]
fn mean(peaks: &[f64]) -> f64 {
    let mut sum = 0.0;
    #[parfor]
    for i in 0..peaks.len() {
        sum += peaks[i];
    }
    sum / peaks.len() as f64
}

fn main() {
    // The mpi engine unless PARFOR_ENGINE says otherwise (to compare with `threads`).
    if std::env::var_os("PARFOR_ENGINE").is_none() {
        parfor::set_default_engine(Engine::Mpi);
    }
    let side = if std::env::var_os("PARFOR_QUICK").is_some() { 16 } else { 48 };
    let omegas: Vec<f64> = (1..=side).map(|i| i as f64 * 0.5).collect();
    let zetas: Vec<f64> = (0..side).map(|j| j as f64 / side as f64).collect();
    let (dt, t_end) = (1e-4, 10.0);
    let peaks = parmap!(late_amplitude, omegas, zetas; args = (dt, t_end));
    let avg = mean(&peaks);
    // Every rank has every result; rank 0 prints them once.
    if parfor::mpi::is_root() {
        println!("{} x {} grid of (omega, zeta)", omegas.len(), zetas.len());
        println!("late amplitude, rows omega, columns zeta (every {}th):", side / 8);
        for (i, w) in omegas.iter().enumerate().step_by(side / 8) {
            let row: Vec<String> = (0..zetas.len())
                .step_by(side / 8)
                .map(|j| format!("{:6.3}", peaks[i * zetas.len() + j]))
                .collect();
            println!("  omega {w:5.1}: {}", row.join(" "));
        }
        println!("mean late amplitude: {avg:.12}");
    }
}
