//! Procedural geometric shapes: a small, fast, offline image data set.
//!
//! Four easily told-apart classes (circle, square, triangle, cross) at random
//! size, position and rotation, filled or outlined, make a quick sanity check
//! for image GANs and autoencoders, in grayscale or colour. Shapes are drawn
//! from signed distance functions, which gives exact anti-aliasing for both
//! filled and outlined styles. A single seeded [`StdRng`] drives everything,
//! so a seed always produces the same data set.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Class names, indexed by label.
pub const SHAPE_NAMES: [&str; 4] = ["circle", "square", "triangle", "cross"];

/// Chance that a shape is drawn as an outline instead of filled.
const OUTLINE_CHANCE: f64 = 0.3;

/// Generates `count` shapes on `size`x`size` canvases with `channels`
/// channels (1 = grayscale, 3 = RGB).
///
/// Returns `(pixels, labels)`: `pixels` holds `count * channels * size * size`
/// values in `[0, 1]`, each item in CHW order; `labels[i]` indexes
/// [`SHAPE_NAMES`]. Classes are balanced: labels cycle through the classes and
/// are then shuffled. Grayscale shapes are light on a near-black background;
/// RGB shapes get a random bright colour on a random dark background.
///
/// # Panics
///
/// If `channels` is not 1 or 3.
pub fn generate_shapes(count: usize, size: usize, channels: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    assert!(
        channels == 1 || channels == 3,
        "shapes support 1 or 3 channels, got {channels}"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let classes = SHAPE_NAMES.len();
    let mut labels: Vec<u32> = (0..count).map(|i| (i % classes) as u32).collect();
    labels.shuffle(&mut rng);
    let plane = size * size;
    let mut pixels = vec![0.0; count * channels * plane];
    if plane == 0 {
        return (pixels, labels);
    }
    let mut coverage = vec![0.0; plane];
    for (&label, item) in labels.iter().zip(pixels.chunks_exact_mut(channels * plane)) {
        let (background, foreground) = palette(&mut rng, channels);
        draw_shape(label, size, &mut rng, &mut coverage);
        for (c, channel) in item.chunks_exact_mut(plane).enumerate() {
            let (bg, fg) = (background[c], foreground[c]);
            for (out, &a) in channel.iter_mut().zip(&coverage) {
                *out = bg + (fg - bg) * a;
            }
        }
    }
    (pixels, labels)
}

/// Random (background, foreground) colours; only the first `channels`
/// entries are used.
fn palette(rng: &mut StdRng, channels: usize) -> ([f32; 3], [f32; 3]) {
    if channels == 1 {
        let bg = rng.random_range(0.0..0.15);
        let fg = rng.random_range(0.6..=1.0);
        return ([bg; 3], [fg; 3]);
    }
    let bg = [(); 3].map(|_| rng.random_range(0.0..0.25));
    let hue = rng.random_range(0.0..1.0);
    let saturation = rng.random_range(0.4..=1.0);
    let value = rng.random_range(0.7..=1.0);
    (bg, hsv_to_rgb(hue, saturation, value))
}

/// Converts a colour from HSV (all components in `[0, 1]`) to RGB.
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let sector = (h * 6.0).rem_euclid(6.0);
    let f = sector.fract();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match sector as u32 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Fills `coverage` (size*size, row-major) with the anti-aliased ink
/// coverage in `[0, 1]` of one random shape of class `label`.
fn draw_shape(label: u32, size: usize, rng: &mut StdRng, coverage: &mut [f32]) {
    let s = size as f32;
    // Radius of the circle the shape fits in, so any rotation stays on canvas.
    let radius = rng.random_range(0.18..0.4) * s;
    let outline = rng.random_bool(OUTLINE_CHANCE);
    let half_width = rng.random_range(0.5..(0.04 * s).max(0.9));
    let margin = radius + half_width + 1.0;
    let centre = [(); 2].map(|_| {
        if s - 2.0 * margin > 0.0 {
            rng.random_range(margin..=s - margin)
        } else {
            s / 2.0
        }
    });
    let (sin, cos) = rng.random_range(0.0..std::f32::consts::TAU).sin_cos();
    let arm = rng.random_range(0.22..0.35) * radius;

    for (i, cell) in coverage.iter_mut().enumerate() {
        let dx = (i % size) as f32 + 0.5 - centre[0];
        let dy = (i / size) as f32 + 0.5 - centre[1];
        let p = [cos * dx + sin * dy, cos * dy - sin * dx];
        let sd = match label {
            0 => (p[0] * p[0] + p[1] * p[1]).sqrt() - 0.9 * radius,
            1 => sd_box(p, [radius * std::f32::consts::FRAC_1_SQRT_2; 2]),
            2 => sd_triangle(p, radius),
            3 => sd_box(p, [0.95 * radius, arm]).min(sd_box(p, [arm, 0.95 * radius])),
            _ => unreachable!("label {label} is not a shape class"),
        };
        *cell = if outline {
            (half_width + 0.5 - sd.abs()).clamp(0.0, 1.0)
        } else {
            (0.5 - sd).clamp(0.0, 1.0)
        };
    }
}

/// Signed distance from `p` to an axis-aligned box centred on the origin.
fn sd_box(p: [f32; 2], half: [f32; 2]) -> f32 {
    let qx = p[0].abs() - half[0];
    let qy = p[1].abs() - half[1];
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
    outside + qx.max(qy).min(0.0)
}

/// Signed distance from `p` to an equilateral triangle centred on the origin
/// with circumradius `radius` (after Inigo Quilez's 2D distance functions).
fn sd_triangle(p: [f32; 2], radius: f32) -> f32 {
    let k = 3f32.sqrt();
    let half_side = radius * k / 2.0;
    let mut x = p[0].abs() - half_side;
    let mut y = p[1] + half_side / k;
    if x + k * y > 0.0 {
        (x, y) = ((x - k * y) / 2.0, (-k * x - y) / 2.0);
    }
    x -= x.clamp(-2.0 * half_side, 0.0);
    -(x * x + y * y).sqrt() * y.signum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_shapes_different_seed_different() {
        let a = generate_shapes(40, 32, 3, 9);
        assert_eq!(a, generate_shapes(40, 32, 3, 9));
        assert_ne!(a.0, generate_shapes(40, 32, 3, 10).0);
    }

    #[test]
    fn output_shapes_and_value_range() {
        for channels in [1, 3] {
            let (pixels, labels) = generate_shapes(13, 24, channels, 2);
            assert_eq!(pixels.len(), 13 * channels * 24 * 24);
            assert_eq!(labels.len(), 13);
            assert!(pixels.iter().all(|v| (0.0..=1.0).contains(v)));
            assert!(labels.iter().all(|&l| (l as usize) < SHAPE_NAMES.len()));
        }
        assert_eq!(generate_shapes(0, 32, 1, 0), (Vec::new(), Vec::new()));
    }

    #[test]
    fn labels_are_balanced() {
        let (_, labels) = generate_shapes(400, 16, 1, 4);
        let mut counts = [0; 4];
        for &l in &labels {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [100; 4]);
    }

    #[test]
    fn every_shape_is_visible_and_on_canvas() {
        let size = 32;
        let (pixels, labels) = generate_shapes(200, size, 1, 5);
        for (img, &label) in pixels.chunks_exact(size * size).zip(&labels) {
            let background = img.iter().copied().fold(f32::INFINITY, f32::min);
            let ink = img.iter().filter(|&&v| v > background + 0.3).count();
            assert!(ink >= 10, "{} has only {ink} ink pixels", SHAPE_NAMES[label as usize]);
            let edge_ink = (0..size)
                .flat_map(|k| [k, (size - 1) * size + k, k * size, k * size + size - 1])
                .filter(|&i| img[i] > background + 0.3)
                .count();
            assert_eq!(edge_ink, 0, "a {} touches the edge", SHAPE_NAMES[label as usize]);
        }
    }

    #[test]
    fn filled_circle_covers_its_area() {
        let mut coverage = vec![0.0; 64 * 64];
        let mut rng = StdRng::seed_from_u64(0);
        // Sample until a filled circle comes up; its coverage should match
        // the area of the circle it was drawn as.
        loop {
            draw_shape(0, 64, &mut rng, &mut coverage);
            let area: f32 = coverage.iter().sum();
            let full = coverage.iter().filter(|&&a| a == 1.0).count() as f32;
            if full > 0.5 * area {
                let radius = (area / std::f32::consts::PI).sqrt();
                assert!((0.9 * 0.18 * 64.0..=0.9 * 0.4 * 64.0 + 0.5).contains(&radius));
                break;
            }
        }
    }

    #[test]
    fn triangle_distance_is_signed() {
        assert!(sd_triangle([0.0, 0.0], 10.0) < 0.0);
        assert!(sd_triangle([20.0, 0.0], 10.0) > 0.0);
        // The centroid is the circumcentre: inradius is half the circumradius.
        assert!((sd_triangle([0.0, 0.0], 10.0) + 5.0).abs() < 1e-4);
    }

    #[test]
    #[should_panic(expected = "1 or 3 channels")]
    fn rejects_other_channel_counts() {
        generate_shapes(1, 8, 2, 0);
    }
}
