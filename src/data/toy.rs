//! 2D toy distributions for GAN Lab-style experiments.
//!
//! Low-dimensional targets make GAN behaviour visible: a scatter plot shows at
//! a glance whether the generator covers every mode of a ring or grid, or
//! collapses onto a few. All distributions fit roughly within `[-1, 1]` so one
//! plot range and one generator output scale suit them all. A single seeded
//! [`StdRng`] drives everything, so a seed always produces the same points.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::f32::consts::{PI, TAU};

/// Names accepted by [`generate_toy`] and [`toy_modes`].
pub const TOY_NAMES: [&str; 6] = ["ring", "grid", "spiral", "moons", "gaussian", "circle"];

/// Number of Gaussians on the ring.
const RING_MODES: usize = 8;
/// Radius of the ring of modes.
const RING_RADIUS: f32 = 0.8;
/// Spread of each ring mode.
const RING_STD: f32 = 0.03;
/// The grid has `GRID_SIDE` x `GRID_SIDE` modes.
const GRID_SIDE: usize = 5;
/// The grid's modes span `[-GRID_EXTENT, GRID_EXTENT]` on both axes.
const GRID_EXTENT: f32 = 0.8;
/// Spread of each grid mode.
const GRID_STD: f32 = 0.03;
/// Number of interleaved spiral arms.
const SPIRAL_ARMS: usize = 2;
/// GAN Lab's ring (a continuous ellipse), mapped from its [0, 1] plane to ours: centre, radii and noise.
const CIRCLE_CENTRE: [f32; 2] = [0.0, -0.1];
const CIRCLE_RADII: [f32; 2] = [0.6, 0.5];
const CIRCLE_STD: f32 = 0.05;
/// Noise added to spiral and moon points.
const CURVE_STD: f32 = 0.03;

/// Samples `count` points of the toy distribution `name` (one of
/// [`TOY_NAMES`]).
///
/// Returns `(points, labels)`: `points` holds `count * 2` values as `(x, y)`
/// pairs, and `labels[i]` is the component point `i` came from: ring `0..8`,
/// grid `0..25` (row-major from the bottom-left mode), spiral arm `0..2`,
/// moon `0..2`, gaussian and circle always `0`.
///
/// The single Gaussian is elongated and tilted (std 0.35 by 0.12, major axis
/// at 30°) so that matching it takes more than learning a mean.
pub fn generate_toy(name: &str, count: usize, seed: u64) -> Result<(Vec<f32>, Vec<u32>), String> {
    if !TOY_NAMES.contains(&name) {
        return Err(format!(
            "unknown toy dataset '{name}': expected one of {}",
            TOY_NAMES.join(", ")
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let standard = Normal::new(0.0f32, 1.0).expect("unit normal is valid");
    let noise = |rng: &mut StdRng, std: f32| [std * standard.sample(rng), std * standard.sample(rng)];
    let modes = toy_modes(name);
    let mut points = Vec::with_capacity(count * 2);
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let (p, label) = match name {
            "ring" | "grid" => {
                let label = rng.random_range(0..modes.len());
                let std = if name == "ring" { RING_STD } else { GRID_STD };
                let e = noise(&mut rng, std);
                ([modes[label][0] + e[0], modes[label][1] + e[1]], label)
            }
            "spiral" => {
                let arm = rng.random_range(0..SPIRAL_ARMS);
                // sqrt spreads points evenly along the widening spiral.
                let t = rng.random_range(0.0f32..1.0).sqrt();
                let angle = t * 3.0 * PI + arm as f32 * TAU / SPIRAL_ARMS as f32;
                let r = 0.05 + 0.75 * t;
                let e = noise(&mut rng, CURVE_STD);
                ([r * angle.cos() + e[0], r * angle.sin() + e[1]], arm)
            }
            "moons" => {
                // The two interleaved half circles of scikit-learn's
                // make_moons, centred and scaled to fit in [-1, 1].
                let moon = rng.random_range(0..2);
                let (sin, cos) = rng.random_range(0.0..PI).sin_cos();
                let [x, y] = if moon == 0 { [cos, sin] } else { [1.0 - cos, 0.5 - sin] };
                let e = noise(&mut rng, CURVE_STD);
                ([(x - 0.5) * 0.6 + e[0], (y - 0.25) * 0.6 + e[1]], moon)
            }
            "circle" => {
                let (sin, cos) = rng.random_range(0.0..TAU).sin_cos();
                let e = noise(&mut rng, CIRCLE_STD);
                let [cx, cy] = CIRCLE_CENTRE;
                (
                    [cx + CIRCLE_RADII[0] * cos + e[0], cy + CIRCLE_RADII[1] * sin + e[1]],
                    0,
                )
            }
            "gaussian" => {
                let e = noise(&mut rng, 1.0);
                let (sin, cos) = 30f32.to_radians().sin_cos();
                let (u, v) = (0.35 * e[0], 0.12 * e[1]);
                ([cos * u - sin * v, sin * u + cos * v], 0)
            }
            _ => unreachable!("toy name was validated above"),
        };
        points.extend_from_slice(&p);
        labels.push(label as u32);
    }
    Ok((points, labels))
}

/// Spread of the items made from each drawn point, so G learns the drawn shape rather than its dots.
const DRAWN_STD: f32 = 0.02;
/// Fewest drawn points a distribution is made from.
pub const MIN_DRAWN: usize = 2;
/// Most points the canvas keeps (they are saved in the run's config).
pub const MAX_DRAWN: usize = 5000;

/// Why `points` cannot be drawn data: too few, too many, or not finite.
pub fn check_drawn(points: &[[f32; 2]]) -> Result<(), String> {
    if points.len() < MIN_DRAWN {
        return Err(format!(
            "'drawn' data needs at least {MIN_DRAWN} points drawn in the Data panel's canvas, but {} are",
            points.len()
        ));
    }
    if points.len() > MAX_DRAWN {
        return Err(format!(
            "{} points are drawn; at most {MAX_DRAWN} are kept",
            points.len()
        ));
    }
    match points.iter().position(|p| !p.iter().all(|v| v.is_finite())) {
        Some(i) => Err(format!(
            "point {} is {:?}, not a pair of finite numbers",
            i + 1,
            points[i]
        )),
        None => Ok(()),
    }
}

/// `count` points around the drawn `points`: each a drawn point, picked at random, moved by a little noise.
pub fn sample_drawn(points: &[[f32; 2]], count: usize, seed: u64) -> Result<Vec<f32>, String> {
    check_drawn(points)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, DRAWN_STD).expect("a positive spread");
    Ok((0..count)
        .flat_map(|_| {
            let [x, y] = points[rng.random_range(0..points.len())];
            [x + noise.sample(&mut rng), y + noise.sample(&mut rng)]
        })
        .collect())
}

/// Centres of the discrete modes of `name`, indexed by label: the 8 ring
/// modes (anticlockwise from the positive x axis) and the 25 grid modes.
/// Empty for distributions without discrete modes and for unknown names.
pub fn toy_modes(name: &str) -> Vec<[f32; 2]> {
    match name {
        "ring" => (0..RING_MODES)
            .map(|k| {
                let (sin, cos) = (k as f32 * TAU / RING_MODES as f32).sin_cos();
                [RING_RADIUS * cos, RING_RADIUS * sin]
            })
            .collect(),
        "grid" => {
            let step = 2.0 * GRID_EXTENT / (GRID_SIDE - 1) as f32;
            (0..GRID_SIDE * GRID_SIDE)
                .map(|k| {
                    let (row, col) = (k / GRID_SIDE, k % GRID_SIDE);
                    [-GRID_EXTENT + step * col as f32, -GRID_EXTENT + step * row as f32]
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(a: [f32; 2], b: &[f32]) -> f32 {
        ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
    }

    #[test]
    fn drawn_data_lies_around_every_drawn_point_and_only_there() {
        let drawn = [[-0.5, 0.5], [0.7, -0.2], [0.0, 0.0]];
        let items = sample_drawn(&drawn, 3000, 9).unwrap();
        let mut near = [0; 3];
        for item in items.chunks(2) {
            let (k, d) = (0..3)
                .map(|k| (k, dist(drawn[k], item)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert!(d < 6.0 * DRAWN_STD, "{item:?} is {d} from the nearest drawn point");
            near[k] += 1;
        }
        assert!(near.iter().all(|&n| n > 800), "each point about a third: {near:?}");
        assert_eq!(sample_drawn(&drawn, 50, 9), sample_drawn(&drawn, 50, 9), "seeded");
        assert!(check_drawn(&[[0.0, 0.0]]).unwrap_err().contains("at least 2"));
        assert!(check_drawn(&[[0.0, 0.0], [f32::NAN, 1.0]])
            .unwrap_err()
            .contains("point 2"));
    }

    #[test]
    fn same_seed_same_points_different_seed_different() {
        for name in TOY_NAMES {
            let a = generate_toy(name, 100, 1).unwrap();
            assert_eq!(a, generate_toy(name, 100, 1).unwrap(), "{name}");
            assert_ne!(a.0, generate_toy(name, 100, 2).unwrap().0, "{name}");
        }
    }

    #[test]
    fn output_shapes_labels_and_range() {
        let label_counts = [8, 25, 2, 2, 1];
        for (name, classes) in TOY_NAMES.into_iter().zip(label_counts) {
            let (points, labels) = generate_toy(name, 2000, 3).unwrap();
            assert_eq!(points.len(), 4000, "{name}");
            assert_eq!(labels.len(), 2000, "{name}");
            assert!(points.iter().all(|v| v.abs() < 1.3), "{name} leaves [-1, 1] by far");
            let within = points.iter().filter(|v| v.abs() <= 1.0).count();
            assert!(within as f32 > 0.99 * points.len() as f32, "{name}");
            for class in 0..classes {
                assert!(labels.contains(&class), "{name} never yields label {class}");
            }
            assert!(labels.iter().all(|&l| l < classes), "{name}");
        }
    }

    #[test]
    fn ring_and_grid_points_sit_on_their_modes() {
        for name in ["ring", "grid"] {
            let modes = toy_modes(name);
            let (points, labels) = generate_toy(name, 1000, 4).unwrap();
            for (p, &label) in points.chunks_exact(2).zip(&labels) {
                let own = dist(modes[label as usize], p);
                assert!(own < 0.2, "{name} point {p:?} is {own} from mode {label}");
                let nearest = modes.iter().map(|&m| dist(m, p)).fold(f32::INFINITY, f32::min);
                assert_eq!(own, nearest, "{name} point is nearer another mode");
            }
        }
    }

    #[test]
    fn mode_centres() {
        let ring = toy_modes("ring");
        assert_eq!(ring.len(), 8);
        assert!(ring.iter().all(|&m| (dist(m, &[0.0, 0.0]) - 0.8).abs() < 1e-5));
        let grid = toy_modes("grid");
        assert_eq!(grid.len(), 25);
        assert_eq!(grid[0], [-0.8, -0.8]);
        assert_eq!(grid[24], [0.8, 0.8]);
        for name in ["spiral", "moons", "gaussian", "nope"] {
            assert!(toy_modes(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn moons_are_two_separate_curves() {
        let (points, labels) = generate_toy("moons", 1000, 6).unwrap();
        let mean_y = |moon: u32| {
            let ys: Vec<f32> = points
                .chunks_exact(2)
                .zip(&labels)
                .filter(|(_, &l)| l == moon)
                .map(|(p, _)| p[1])
                .collect();
            ys.iter().sum::<f32>() / ys.len() as f32
        };
        assert!(mean_y(0) > mean_y(1) + 0.2);
    }

    #[test]
    fn unknown_name_lists_valid_names() {
        for count in [0, 5] {
            let err = generate_toy("foo", count, 0).unwrap_err();
            assert_eq!(
                err,
                "unknown toy dataset 'foo': expected one of ring, grid, spiral, moons, gaussian, circle"
            );
        }
    }
}
