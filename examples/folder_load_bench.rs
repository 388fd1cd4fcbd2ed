//! Prints how long a folder of 10,000 small labelled PNGs takes to load (issue: "loads in seconds").
//!
//! cargo run --release --example folder_load_bench

use gantry::data::folder::{load_image_folder, Fit, FolderOptions};
use image::{GrayImage, Luma};
use std::time::Instant;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let start = Instant::now();
    for i in 0..10_000u32 {
        let path = dir.path().join(format!("{}/{i:05}.png", i % 10));
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a class folder");
        GrayImage::from_fn(28, 28, |x, y| Luma([(x * y + i) as u8]))
            .save(path)
            .expect("a PNG");
    }
    println!("wrote 10000 28x28 PNGs in {:.2} s", start.elapsed().as_secs_f64());
    for (channels, size) in [(1, 28), (3, 64)] {
        let options = FolderOptions {
            size,
            channels,
            fit: Fit::CenterCrop,
            ..FolderOptions::default()
        };
        let start = Instant::now();
        let raw = load_image_folder(dir.path(), &options, &|_, _, _| {}).expect("the folder loads");
        println!(
            "loaded {} images as {channels}x{size}x{size} in {:.2} s on {} threads",
            raw.count,
            start.elapsed().as_secs_f64(),
            rayon::current_num_threads()
        );
    }
}
