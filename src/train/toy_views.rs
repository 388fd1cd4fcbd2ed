//! What the 2D views show inside a model trained on toy points, as GAN Lab does: the discriminator's output
//! over the plane, the generator's image of a regular latent grid, the direction G's loss moves each
//! generated point, and the KL / JS divergence between real and generated points on a 2-D histogram.

/// The plane the 2D views cover: toy data lies within about [-1, 1].
pub const EXTENT: f32 = 1.3;
/// Cells per side of the discriminator heatmap.
pub const HEATMAP_CELLS: usize = 64;
/// Cells per side of the latent grid drawn through G (GAN Lab's 20).
pub const MANIFOLD_CELLS: usize = 20;
/// How far the latent grid reaches, in standard deviations of the noise.
pub const MANIFOLD_REACH: f32 = 2.0;
/// Cells per side of the histogram the divergences are estimated on (GAN Lab's 30).
const DIVERGENCE_CELLS: usize = 30;
/// Added to every cell's share so empty cells do not make the divergences infinite (GAN Lab's value).
const SMOOTHING: f64 = 1e-4;

/// D's probability that a point is real, on a `cells` x `cells` grid over [-EXTENT, EXTENT]², row 0 at the
/// bottom (smallest y).
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    pub cells: usize,
    pub values: Vec<f32>,
}

impl Heatmap {
    /// The centres of the cells, row by row from the bottom: the points D is asked about.
    pub fn centres(cells: usize) -> Vec<f32> {
        let size = 2.0 * EXTENT / cells as f32;
        let at = |i: usize| -EXTENT + (i as f32 + 0.5) * size;
        (0..cells)
            .flat_map(|row| (0..cells).flat_map(move |col| [at(col), at(row)]))
            .collect()
    }
}

/// The latent points of the generator manifold: a regular grid over the first two latent dimensions (the
/// others 0), `MANIFOLD_CELLS + 1` points per side, row by row.
pub fn manifold_latents(latent: usize) -> Vec<f32> {
    let side = MANIFOLD_CELLS + 1;
    let at = |i: usize| -MANIFOLD_REACH + 2.0 * MANIFOLD_REACH * i as f32 / MANIFOLD_CELLS as f32;
    let mut z = vec![0.0; side * side * latent];
    for row in 0..side {
        for col in 0..side {
            let item = &mut z[(row * side + col) * latent..][..latent];
            item[0] = at(col);
            if latent > 1 {
                item[1] = at(row);
            }
        }
    }
    z
}

/// The histogram cell of a point; points beyond the plane count in its edge cells.
fn cell(point: [f32; 2]) -> usize {
    let index = |v: f32| {
        (((v + EXTENT) / (2.0 * EXTENT) * DIVERGENCE_CELLS as f32) as isize).clamp(0, DIVERGENCE_CELLS as isize - 1)
            as usize
    };
    index(point[1]) * DIVERGENCE_CELLS + index(point[0])
}

fn densities(points: &[[f32; 2]]) -> Vec<f64> {
    let mut shares = vec![0.0; DIVERGENCE_CELLS * DIVERGENCE_CELLS];
    for &p in points {
        shares[cell(p)] += 1.0 / points.len() as f64;
    }
    shares
}

/// KL(real ‖ generated) and the Jensen-Shannon divergence between them, in bits, on a 30 x 30 histogram of
/// the plane with GAN Lab's smoothing.
pub fn divergences(real: &[[f32; 2]], generated: &[[f32; 2]]) -> (f64, f64) {
    let (p, q) = (densities(real), densities(generated));
    let term = |a: f64, b: f64| (a + SMOOTHING) * ((a + SMOOTHING) / (b + SMOOTHING)).log2();
    let kl = p.iter().zip(&q).map(|(a, b)| term(*a, *b)).sum();
    let js = p
        .iter()
        .zip(&q)
        .map(|(a, b)| {
            let mean = 0.5 * (a + b);
            0.5 * (term(*a, mean) + term(*b, mean))
        })
        .sum();
    (kl, js)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergences_are_near_zero_for_one_distribution_and_large_for_disjoint_ones() {
        let grid: Vec<[f32; 2]> = (0..400)
            .map(|i| [(i % 20) as f32 / 20.0 - 0.5, (i / 20) as f32 / 20.0 - 0.5])
            .collect();
        let (kl, js) = divergences(&grid, &grid);
        assert!(kl.abs() < 1e-9 && js.abs() < 1e-9, "{kl} {js}");
        let elsewhere: Vec<[f32; 2]> = grid.iter().map(|p| [p[0] + 2.0, p[1]]).collect();
        let (kl, js) = divergences(&grid, &elsewhere);
        // Disjoint supports: JS reaches its maximum of one bit (less the smoothing); KL is large.
        assert!(js > 0.95 && js <= 1.0, "{js}");
        assert!(kl > 5.0, "{kl}");
    }

    #[test]
    fn the_latent_grid_spans_the_first_two_dimensions() {
        let z = manifold_latents(3);
        let side = MANIFOLD_CELLS + 1;
        assert_eq!(z.len(), side * side * 3);
        assert_eq!(&z[..3], &[-MANIFOLD_REACH, -MANIFOLD_REACH, 0.0]);
        let last = &z[z.len() - 3..];
        assert_eq!(last, &[MANIFOLD_REACH, MANIFOLD_REACH, 0.0]);
        let centres = Heatmap::centres(4);
        assert_eq!(centres.len(), 32);
        assert!((centres[0] + EXTENT * 0.75).abs() < 1e-6);
    }
}
