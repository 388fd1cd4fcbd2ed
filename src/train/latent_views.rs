//! The latent space of an autoencoder on images: held-out items encoded (a VAE's posterior means) and laid
//! on a plane, the latent space's own two axes when it has two dimensions and its two principal components
//! otherwise; any point of the plane decoded; and for two-dimensional latent spaces the classic figure, a
//! grid of decodes over the plane.

use crate::grid::ImageGrid;

/// Held-out items placed on the plane.
pub const LATENT_ITEMS: usize = 500;
/// Columns of the grid the items' images come in (for the view's hover).
pub const ITEM_COLUMNS: usize = 25;
/// Decodes per side of the manifold (two-dimensional latent spaces).
pub const MANIFOLD_SIDE: usize = 15;

/// A plane in the latent space: an origin and two orthonormal directions.
#[derive(Clone, Debug, PartialEq)]
pub struct LatentPlane {
    pub origin: Vec<f32>,
    pub axes: [Vec<f32>; 2],
}

impl LatentPlane {
    /// The latent space's own first two axes (all of it when it has two dimensions).
    pub fn latent_axes(dim: usize) -> LatentPlane {
        let axis = |k: usize| (0..dim).map(|i| if i == k { 1.0 } else { 0.0 }).collect();
        LatentPlane {
            origin: vec![0.0; dim],
            axes: [axis(0), axis(1)],
        }
    }

    /// The plane through the codes' mean along their two directions of largest variance (power iteration
    /// on their covariance); returns it with the share of the variance it shows.
    pub fn principal(codes: &[f32], dim: usize) -> (LatentPlane, f32) {
        let n = (codes.len() / dim.max(1)).max(1);
        let mut origin = vec![0f64; dim];
        for code in codes.chunks(dim) {
            origin
                .iter_mut()
                .zip(code)
                .for_each(|(m, c)| *m += f64::from(*c) / n as f64);
        }
        let mut covariance = vec![0f64; dim * dim];
        for code in codes.chunks(dim) {
            let centred: Vec<f64> = code.iter().zip(&origin).map(|(c, m)| f64::from(*c) - m).collect();
            for i in 0..dim {
                for j in 0..dim {
                    covariance[i * dim + j] += centred[i] * centred[j] / n as f64;
                }
            }
        }
        let total: f64 = (0..dim).map(|i| covariance[i * dim + i]).sum();
        let mut axes = Vec::new();
        let mut shown = 0.0;
        for k in 0..2 {
            // A start with a part along every direction (not orthogonal to the answer), different per axis.
            let mut v: Vec<f64> = (0..dim).map(|i| 1.0 + ((i * 7 + k * 3) % 5) as f64 * 0.1).collect();
            let mut value = 0.0;
            for _ in 0..200 {
                let w: Vec<f64> = (0..dim)
                    .map(|i| (0..dim).map(|j| covariance[i * dim + j] * v[j]).sum())
                    .collect();
                value = w.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>();
                let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm < 1e-12 {
                    break;
                }
                v = w.iter().map(|x| x / norm).collect();
            }
            // Deflation: the next power iteration finds the next direction.
            for i in 0..dim {
                for j in 0..dim {
                    covariance[i * dim + j] -= value * v[i] * v[j];
                }
            }
            shown += value.max(0.0);
            axes.push(v.iter().map(|x| *x as f32).collect::<Vec<f32>>());
        }
        let [a, b]: [Vec<f32>; 2] = axes.try_into().expect("two axes");
        let plane = LatentPlane {
            origin: origin.iter().map(|m| *m as f32).collect(),
            axes: [a, b],
        };
        (plane, if total > 0.0 { (shown / total) as f32 } else { 0.0 })
    }

    /// Where a latent vector lies on the plane.
    pub fn project(&self, code: &[f32]) -> [f32; 2] {
        let along = |axis: &[f32]| {
            code.iter()
                .zip(&self.origin)
                .zip(axis)
                .map(|((c, o), a)| (c - o) * a)
                .sum()
        };
        [along(&self.axes[0]), along(&self.axes[1])]
    }

    /// The latent vector at a point of the plane.
    pub fn latent(&self, point: [f32; 2]) -> Vec<f32> {
        let [a, b] = &self.axes;
        self.origin
            .iter()
            .zip(a.iter().zip(b))
            .map(|(o, (a, b))| o + point[0] * a + point[1] * b)
            .collect()
    }
}

/// The held-out items on the latent plane, with what the view decodes.
#[derive(Clone, Debug)]
pub struct LatentMap {
    /// Each item's place on the plane.
    pub points: Vec<[f32; 2]>,
    /// Each item's label, where the data has labels, and the labels' names.
    pub labels: Option<Vec<u32>>,
    pub label_names: Vec<String>,
    /// The items' images in rows of `ITEM_COLUMNS` (item k is tile k), for the view's hover.
    pub items: ImageGrid,
    pub plane: LatentPlane,
    /// Whether the plane's axes are principal components (else the latent space's own axes).
    pub principal: bool,
    /// The share of the codes' variance the plane shows.
    pub explained: f32,
    /// For two-dimensional latent spaces: decodes on a `MANIFOLD_SIDE`² grid over `bounds`
    /// (`[x0, x1, y0, y1]`), the top row at the largest y.
    pub manifold: Option<(ImageGrid, [f32; 4])>,
    /// The point the user asked to decode, and its decode.
    pub decoded: Option<([f32; 2], ImageGrid)>,
}

/// The bounds `[x0, x1, y0, y1]` of the points, a twentieth wider on each side.
pub fn padded_bounds(points: &[[f32; 2]]) -> [f32; 4] {
    let (mut b, pad) = ([f32::MAX, f32::MIN, f32::MAX, f32::MIN], 0.05);
    for p in points {
        b = [b[0].min(p[0]), b[1].max(p[0]), b[2].min(p[1]), b[3].max(p[1])];
    }
    if points.is_empty() {
        return [-1.0, 1.0, -1.0, 1.0];
    }
    let (dx, dy) = ((b[1] - b[0]).max(1e-3) * pad, (b[3] - b[2]).max(1e-3) * pad);
    [b[0] - dx, b[1] + dx, b[2] - dy, b[3] + dy]
}

/// The plane points the manifold decodes, row by row from the top (largest y), `MANIFOLD_SIDE` per row.
pub fn manifold_points(bounds: [f32; 4]) -> Vec<[f32; 2]> {
    let at = |lo: f32, hi: f32, i: usize| lo + (hi - lo) * (i as f32 + 0.5) / MANIFOLD_SIDE as f32;
    (0..MANIFOLD_SIDE)
        .flat_map(|row| {
            (0..MANIFOLD_SIDE).map(move |col| [at(bounds[0], bounds[1], col), at(bounds[3], bounds[2], row)])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_plane_finds_the_directions_the_codes_vary_along() {
        // Codes in 4 dimensions spread along (1,1,0,0) widely and (0,0,1,-1) less, nothing else.
        let mut codes = Vec::new();
        for i in 0..200 {
            let (s, t) = ((i as f32 * 0.37).sin() * 3.0, (i as f32 * 1.13).cos());
            codes.extend([s + 2.0, s + 2.0, t, -t]);
        }
        let (plane, explained) = LatentPlane::principal(&codes, 4);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        let along = |axis: &[f32], dir: [f32; 4]| axis.iter().zip(dir).map(|(a, d)| a * d).sum::<f32>().abs();
        assert!(along(&plane.axes[0], [h, h, 0.0, 0.0]) > 0.999, "{:?}", plane.axes[0]);
        assert!(along(&plane.axes[1], [0.0, 0.0, h, -h]) > 0.999, "{:?}", plane.axes[1]);
        assert!(explained > 0.999, "{explained}");
        // A point's latent vector projects back onto the point.
        let point = [0.7, -0.4];
        let back = plane.project(&plane.latent(point));
        assert!(
            (back[0] - point[0]).abs() < 1e-5 && (back[1] - point[1]).abs() < 1e-5,
            "{back:?}"
        );
    }

    #[test]
    fn manifold_covers_the_bounds_top_row_first() {
        let points = manifold_points([0.0, 1.0, -2.0, 2.0]);
        assert_eq!(points.len(), MANIFOLD_SIDE * MANIFOLD_SIDE);
        assert!(points[0][1] > 1.8 && points[0][0] < 0.1, "{:?}", points[0]);
        assert!(points.last().unwrap()[1] < -1.8 && points.last().unwrap()[0] > 0.9);
    }
}
