//! Many large "images" built in the parent and analysed on the fork engine without a copy:
//! workers read them through copy-on-write memory, so the peak memory of the parent and its
//! workers together stays close to the size of the input.
//!
//! ```text
//! cargo run --release --example big_images
//! ```

#[path = "common/mod.rs"]
mod common;

use common::pss::PeakPss;
use parfor::parmap;

/// A grayscale image, too large to copy casually (and not `Clone`).
struct Image {
    width: usize,
    pixels: Vec<u8>,
}

impl Image {
    fn synthetic(seed: u64, width: usize, height: usize) -> Image {
        let pixels = (0..width * height)
            .map(|i| (common::uniform(seed, i as u64 / 64) * 255.0) as u8)
            .collect();
        Image { width, pixels }
    }
}

/// Mean brightness and the number of bright rows: reads every pixel, copies none.
fn analyze(img: &Image) -> (f64, u32) {
    let sum: u64 = img.pixels.iter().map(|&p| u64::from(p)).sum();
    let bright_rows = img
        .pixels
        .chunks(img.width)
        .filter(|row| row.iter().map(|&p| u32::from(p)).sum::<u32>() > 128 * row.len() as u32)
        .count();
    (sum as f64 / img.pixels.len() as f64, bright_rows as u32)
}

fn main() {
    let (count, side) = if common::quick() { (8, 1024) } else { (32, 5793) }; // 32 x 32 MiB
    let images: Vec<Image> = (0..count).map(|k| Image::synthetic(k as u64, side, side)).collect();
    let input = images.iter().map(|i| i.pixels.len()).sum::<usize>() as f64;
    let before = common::pss::total_pss() as f64;
    let peak = PeakPss::start();
    let (stats, t) = common::timed(|| parmap!(analyze, images; engine = "fork", workers = 2));
    let peak = peak.stop() as f64;
    let mib = |b: f64| b / (1024.0 * 1024.0);
    println!("engine: fork, 2 worker processes");
    println!(
        "{count} images of {:.0} MiB ({:.0} MiB in all) analysed in {t:.2?}",
        mib(input) / count as f64,
        mib(input)
    );
    for (k, (mean, rows)) in stats.iter().enumerate().take(4) {
        println!("  image {k}: mean brightness {mean:.2}, bright rows {rows}");
    }
    println!(
        "memory: before the call {:.0} MiB, peak total PSS of parent + workers {:.0} MiB = {:.3} x the input",
        mib(before),
        mib(peak),
        peak / input
    );
    for (img, s) in images.iter().zip(&stats) {
        assert_eq!(*s, analyze(img));
    }
}
