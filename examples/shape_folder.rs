//! Writes Gantry's colour shapes as an image folder (one PNG per item, one folder per class), the folder a
//! colour preset is measured on as a user's pictures would be (BENCHMARKS.md, "A colour preset for an image
//! folder"): `folder:DIR` loads it, decoding, resizing and taking the classes from the folder names.
//!
//! ```text
//! cargo run --release --example shape_folder -- DIR [COUNT [SIZE]]
//! ```

use gantry::data::shapes::{generate_shapes, SHAPE_NAMES};
use image::{Rgb, RgbImage};
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: shape_folder DIR [COUNT [SIZE]]");
        std::process::exit(2);
    };
    let number = |arg: Option<String>, default: usize| arg.map_or(Ok(default), |a| a.parse::<usize>());
    let (Ok(count), Ok(size)) = (number(args.next(), 4096), number(args.next(), 64)) else {
        eprintln!("COUNT and SIZE are whole numbers");
        std::process::exit(2);
    };
    let (pixels, labels) = generate_shapes(count, size, 3, 0);
    let plane = size * size;
    for (i, (item, &label)) in pixels.chunks_exact(3 * plane).zip(&labels).enumerate() {
        let class_dir = dir.join(SHAPE_NAMES[label as usize]);
        let written = std::fs::create_dir_all(&class_dir).and_then(|()| {
            // Items are planar RGB in [0, 1].
            let byte = |p: usize, c: usize| (item[c * plane + p] * 255.0).round().clamp(0.0, 255.0) as u8;
            RgbImage::from_fn(size as u32, size as u32, |x, y| {
                let p = y as usize * size + x as usize;
                Rgb([byte(p, 0), byte(p, 1), byte(p, 2)])
            })
            .save(class_dir.join(format!("{i:05}.png")))
            .map_err(std::io::Error::other)
        });
        if let Err(err) = written {
            eprintln!("could not write into {}: {err}", class_dir.display());
            std::process::exit(1);
        }
    }
    println!("wrote {count} {size}x{size} RGB shapes into {}", dir.display());
}
