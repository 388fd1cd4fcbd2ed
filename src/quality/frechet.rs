//! The Fréchet distance between two Gaussians fitted to feature vectors (the "FD" of FID, here in the
//! feature space of a small network trained on the run's data set).

/// Mean and covariance of a set of feature vectors.
#[derive(Clone, Debug)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    /// Row-major `dims x dims`.
    pub cov: Vec<f64>,
    pub dims: usize,
}

impl Gaussian {
    /// Fits `features` (rows of `dims` values); the covariance is the unbiased one (n - 1).
    pub fn fit(features: &[f32], dims: usize) -> Gaussian {
        let n = features.len() / dims.max(1);
        let mut mean = vec![0f64; dims];
        for row in features.chunks_exact(dims) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let mut cov = vec![0f64; dims * dims];
        let mut centred = vec![0f64; dims];
        for row in features.chunks_exact(dims) {
            for ((c, v), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = *v as f64 - m;
            }
            for i in 0..dims {
                let ci = centred[i];
                for j in i..dims {
                    cov[i * dims + j] += ci * centred[j];
                }
            }
        }
        let denominator = (n.max(2) - 1) as f64;
        for i in 0..dims {
            for j in i..dims {
                let value = cov[i * dims + j] / denominator;
                cov[i * dims + j] = value;
                cov[j * dims + i] = value;
            }
        }
        Gaussian { mean, cov, dims }
    }
}

/// A Gaussian that Fréchet distances are measured from (the real items'), with the square root of its
/// covariance made once: a run scores many sample sets against one reference.
#[derive(Clone, Debug)]
pub struct Anchor {
    pub gaussian: Gaussian,
    root: Vec<f64>,
}

impl Anchor {
    pub fn new(gaussian: Gaussian) -> Anchor {
        let root = psd_sqrt(&gaussian.cov, gaussian.dims);
        Anchor { gaussian, root }
    }

    /// ‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½), computed as tr((Σa^½ Σb Σa^½)^½) so that only symmetric
    /// matrices are decomposed. Never negative.
    pub fn distance(&self, b: &Gaussian) -> f64 {
        let a = &self.gaussian;
        assert_eq!(a.dims, b.dims, "features of one network");
        let d = a.dims;
        let means: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y) * (x - y)).sum();
        let trace = |m: &[f64]| (0..d).map(|i| m[i * d + i]).sum::<f64>();
        let inner = multiply(&multiply(&self.root, &b.cov, d), &self.root, d);
        let cross: f64 = symmetric_eigenvalues(inner, d).iter().map(|v| v.max(0.0).sqrt()).sum();
        (means + trace(&a.cov) + trace(&b.cov) - 2.0 * cross).max(0.0)
    }
}

fn multiply(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0f64; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

/// The square root of a symmetric positive semi-definite matrix (negative eigenvalues from rounding count
/// as 0).
fn psd_sqrt(m: &[f64], d: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(m.to_vec(), d);
    let mut out = vec![0f64; d * d];
    for (k, value) in values.iter().enumerate() {
        let root = value.max(0.0).sqrt();
        for i in 0..d {
            let vik = vectors[i * d + k] * root;
            for j in 0..d {
                out[i * d + j] += vik * vectors[j * d + k];
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of a symmetric matrix, by cyclic
/// Jacobi rotations: plenty for the few dozen feature dimensions here, and exact to rounding.
fn symmetric_eigen(mut a: Vec<f64>, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j] * a[i * d + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-13 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// The eigenvalues of symmetric `a` (`d x d`, row-major; its lower triangle is read): Householder reduction
/// to tridiagonal form, then the implicit QL method (Numerical Recipes' `tred2` without vectors and `tqli`).
/// A tenth of the Jacobi sweeps' time at 64 dimensions, where no eigenvectors are needed.
fn symmetric_eigenvalues(mut a: Vec<f64>, d: usize) -> Vec<f64> {
    let (mut diagonal, mut off) = (vec![0f64; d], vec![0f64; d]);
    for i in (1..d).rev() {
        let l = i - 1;
        let scale: f64 = (0..=l).map(|k| a[i * d + k].abs()).sum();
        if l == 0 || scale == 0.0 {
            off[i] = a[i * d + l];
            continue;
        }
        let mut h = 0.0;
        for k in 0..=l {
            a[i * d + k] /= scale;
            h += a[i * d + k] * a[i * d + k];
        }
        let f = a[i * d + l];
        let g = if f >= 0.0 { -h.sqrt() } else { h.sqrt() };
        off[i] = scale * g;
        h -= f * g;
        a[i * d + l] = f - g;
        let mut f = 0.0;
        for j in 0..=l {
            let g: f64 = (0..=j).map(|k| a[j * d + k] * a[i * d + k]).sum::<f64>()
                + (j + 1..=l).map(|k| a[k * d + j] * a[i * d + k]).sum::<f64>();
            off[j] = g / h;
            f += off[j] * a[i * d + j];
        }
        let hh = f / (h + h);
        for j in 0..=l {
            let f = a[i * d + j];
            let g = off[j] - hh * f;
            off[j] = g;
            for k in 0..=j {
                a[j * d + k] -= f * off[k] + g * a[i * d + k];
            }
        }
    }
    (0..d).for_each(|i| diagonal[i] = a[i * d + i]);
    // QL with implicit shifts on the tridiagonal matrix: `off[i]` joins rows i and i + 1 from here on.
    off.rotate_left(1);
    if let Some(last) = off.last_mut() {
        *last = 0.0;
    }
    for l in 0..d {
        for _iteration in 0..60 {
            let m = (l..d - 1)
                .find(|&m| off[m].abs() <= f64::EPSILON * (diagonal[m].abs() + diagonal[m + 1].abs()))
                .unwrap_or(d - 1);
            if m == l {
                break;
            }
            let mut g = (diagonal[l + 1] - diagonal[l]) / (2.0 * off[l]);
            let r = g.hypot(1.0);
            g = diagonal[m] - diagonal[l] + off[l] / (g + if g >= 0.0 { r } else { -r });
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut deflated = false;
            for i in (l..m).rev() {
                let (f, b) = (s * off[i], c * off[i]);
                let r = f.hypot(g);
                off[i + 1] = r;
                if r == 0.0 {
                    // An exact zero splits the matrix: start again on the smaller block.
                    diagonal[i + 1] -= p;
                    off[m] = 0.0;
                    deflated = true;
                    break;
                }
                (s, c) = (f / r, g / r);
                g = diagonal[i + 1] - p;
                let r = (diagonal[i] - g) * s + 2.0 * c * b;
                p = s * r;
                diagonal[i + 1] = g + p;
                g = c * r - b;
            }
            if !deflated {
                diagonal[l] -= p;
                off[l] = g;
                off[m] = 0.0;
            }
        }
    }
    diagonal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{normal_vec, seeded};

    fn gaussian(mean: &[f64], cov: &[f64]) -> Gaussian {
        Gaussian {
            mean: mean.to_vec(),
            cov: cov.to_vec(),
            dims: mean.len(),
        }
    }

    #[test]
    fn one_dimension_matches_the_closed_form() {
        // N(0, 1) against N(1, 4): 1 + 1 + 4 - 2·2 = 2.
        let fd = Anchor::new(gaussian(&[0.0], &[1.0])).distance(&gaussian(&[1.0], &[4.0]));
        assert!((fd - 2.0).abs() < 1e-9, "{fd}");
    }

    #[test]
    fn matrix_square_root_squares_back() {
        let d = 6;
        let mut rng = seeded(3);
        let x = normal_vec(&mut rng, 40 * d);
        let g = Gaussian::fit(&x, d);
        let root = psd_sqrt(&g.cov, d);
        let back = multiply(&root, &root, d);
        for (a, b) in back.iter().zip(&g.cov) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn equal_gaussians_are_zero_apart_and_shifted_ones_by_the_squared_shift() {
        let d = 8;
        let x = normal_vec(&mut seeded(5), 200 * d);
        let g = Gaussian::fit(&x, d);
        assert!(Anchor::new(g.clone()).distance(&g) < 1e-8);
        let mut shifted = g.clone();
        shifted.mean.iter_mut().for_each(|m| *m += 0.5);
        let fd = Anchor::new(g).distance(&shifted);
        assert!((fd - 0.25 * d as f64).abs() < 1e-8, "{fd}");
    }

    /// The eigenvalues-only routine against the Jacobi sweeps, on a full-rank covariance, a rank-deficient
    /// one (many zero eigenvalues, as 64 features of fewer samples have) and one with repeated values.
    #[test]
    fn tridiagonal_eigenvalues_match_the_jacobi_ones() {
        let d = 64;
        let mut rng = seeded(11);
        let full = Gaussian::fit(&normal_vec(&mut rng, 300 * d), d).cov;
        let low_rank = Gaussian::fit(&normal_vec(&mut rng, 20 * d), d).cov;
        let mut repeated = vec![0f64; d * d];
        (0..d).for_each(|i| repeated[i * d + i] = 1.0 + (i % 3) as f64);
        for m in [full, low_rank, repeated] {
            let sorted = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v
            };
            let fast = sorted(symmetric_eigenvalues(m.clone(), d));
            let jacobi = sorted(symmetric_eigen(m, d).0);
            let scale = jacobi.iter().fold(0f64, |a, v| a.max(v.abs()));
            for (f, j) in fast.iter().zip(&jacobi) {
                assert!((f - j).abs() <= 1e-10 * scale, "{f} vs {j}");
            }
        }
    }

    #[test]
    fn fit_gives_the_sample_mean_and_unbiased_covariance() {
        let g = Gaussian::fit(&[1.0, 0.0, 3.0, 2.0], 2);
        assert_eq!(g.mean, vec![2.0, 1.0]);
        assert_eq!(g.cov, vec![2.0, 2.0, 2.0, 2.0]);
    }
}
