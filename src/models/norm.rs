//! Batch normalisation as one candle custom op with a closed-form backward pass.
//!
//! Written with tensor ops, batch norm over NCHW costs several strided reductions and broadcasts per call
//! (and as many in backward), which candle runs slowly; here statistics, normalisation and the three
//! gradients are each a single pass over the data. A ReLU or leaky ReLU after the norm is applied in the same
//! pass, and a convolution before the norm can be in the same op (`normalised_product`). The passes' loops
//! are built for the CPU's widest vectors (`cpu::widest`): built for baseline x86-64, they took 5-7 % of a
//! DCGAN's step.

use super::rectifier::{self, FusedProduct, Rectifier};
use super::{lane_sum, slice, unwritten};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// Per-channel mean and biased variance.
pub type Stats = (Vec<f32>, Vec<f32>);

/// Per-channel statistics of a (N, C, P) tensor.
pub fn channel_stats(x: &[f32], channels: usize, plane: usize) -> Stats {
    let mean = channel_means(x, channels, plane, (&vec![0.0; channels], |v, _| v));
    let var = channel_means(x, channels, plane, (&mean, |v, mean| (v - mean) * (v - mean)));
    (mean, var)
}

/// Per channel, the mean of `f(v, c)` over its values `v` in a (N, C, P) tensor, with `c` the channel's
/// value in `centres`.
#[inline(always)]
fn channel_means(
    x: &[f32],
    channels: usize,
    plane: usize,
    (centres, f): (&[f32], impl Fn(f32, f32) -> f32 + Sync),
) -> Vec<f32> {
    let count = (x.len() / channels.max(1)) as f64;
    let image_len = channels * plane;
    per_channel_sums(
        x.len() / image_len.max(1),
        channels,
        #[inline(always)]
        |image, sums: &mut [[f64; 1]]| {
            let planes = x[image * image_len..][..image_len].chunks_exact(plane);
            for ((sum, values), centre) in sums.iter_mut().zip(planes).zip(centres) {
                sum[0] += lane_sum(values, |v| f(v, *centre)) as f64;
            }
        },
    )
    .into_iter()
    .map(|[sum]| (sum / count) as f32)
    .collect()
}

/// Images whose per-channel sums one part of `per_channel_sums` adds up: a fixed number, so that the sums
/// come out the same on any number of threads.
const SUM_IMAGES: usize = 8;

/// Per channel, `N` sums over `images` images, where `add(image, sums)` adds one image's part to each
/// channel's sums: each plane's in f32 lanes (`lane_sum`), the planes in f64. Image by image, each thread
/// reads its images straight through; channel by channel, each of the 64 planes a channel has in a batch
/// was a jump of a whole image, and most reads missed the caches (9 % of a DCGAN's profile).
fn per_channel_sums<const N: usize>(
    images: usize,
    channels: usize,
    add: impl Fn(usize, &mut [[f64; N]]) + Sync,
) -> Vec<[f64; N]> {
    let firsts: Vec<usize> = (0..images).step_by(SUM_IMAGES).collect();
    // One buffer for all parts' sums, from this thread: the parts' own allocations queued for the
    // allocator's one lock.
    let mut parts = vec![[0f64; N]; firsts.len() * channels];
    let work: Vec<_> = firsts.into_iter().zip(parts.chunks_mut(channels.max(1))).collect();
    crate::threads::for_each_part(work, |_, (first, sums)| {
        crate::cpu::widest(
            #[inline(always)]
            || (first..(first + SUM_IMAGES).min(images)).for_each(|image| add(image, sums)),
        );
    });
    let mut total = vec![[0f64; N]; channels];
    for part in parts.chunks(channels.max(1)) {
        for (total, part) in total.iter_mut().zip(part) {
            total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
        }
    }
    total
}

/// `y = rectifier((x - mean) * invstd * gamma + beta)`, with the statistics fixed when the op is made.
struct BatchNormOp {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    channels: usize,
    plane: usize,
    /// Whether mean and variance are this batch's own (their dependence on x enters the gradient) or
    /// running averages (constants).
    batch_stats: bool,
    rectifier: Option<Rectifier>,
    /// The shift, for the backward pass to tell which side of the rectifier each value fell on.
    beta: Vec<f32>,
}

impl BatchNormOp {
    fn normalise(&self, x: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
        let mut y = unwritten(x.len());
        let (c, p) = (self.channels, self.plane);
        crate::threads::in_spans(&mut y, c * p, |at, y| {
            crate::cpu::widest(
                #[inline(always)]
                || {
                    for (y, x) in y.chunks_mut(c * p).zip(x[at..].chunks(c * p)) {
                        self.normalise_image(y, x, gamma, beta);
                    }
                },
            )
        });
        y
    }

    /// One image's `normalise`, inlined into the caller's loop built for the widest vectors.
    #[inline(always)]
    fn normalise_image(&self, y: &mut [f32], x: &[f32], gamma: &[f32], beta: &[f32]) {
        let p = self.plane;
        // Without a rectifier the slope 1 below zero keeps every value as it is.
        let slope = self.rectifier.map_or(1.0, Rectifier::negative_slope);
        for ch in 0..self.channels {
            let scale = self.invstd[ch] * gamma[ch];
            let shift = beta[ch] - self.mean[ch] * scale;
            for (o, i) in y[ch * p..(ch + 1) * p].iter_mut().zip(&x[ch * p..(ch + 1) * p]) {
                let normed = i * scale + shift;
                *o = if normed > 0.0 { normed } else { slope * normed };
            }
        }
    }

    /// The gradient at the norm's output from the gradient `g` at the rectifier's for input value `x` of
    /// channel `ch` (the rectifier's slope where the normalised value is below zero, as in `normalise`).
    #[inline(always)]
    fn through_rectifier(&self, gamma: &[f32], ch: usize) -> impl Fn(f32, f32) -> f32 {
        let slope = self.rectifier.map_or(1.0, Rectifier::negative_slope);
        let scale = self.invstd[ch] * gamma[ch];
        let shift = self.beta.get(ch).copied().unwrap_or(0.0) - self.mean[ch] * scale;
        move |g, x| if x * scale + shift > 0.0 { g } else { slope * g }
    }

    /// dx, dgamma and dbeta, concatenated in one buffer, from the gradient `dy` at the rectifier's output.
    fn gradients(&self, x: &[f32], gamma: &[f32], dy: &[f32]) -> Vec<f32> {
        let (c, p) = (self.channels, self.plane);
        let count = (x.len() / c) as f32;
        // Per channel: sum of dy (dbeta) and of dy * x_hat (dgamma).
        let sums: Vec<(f32, f32)> = per_channel_sums(
            x.len() / (c * p).max(1),
            c,
            #[inline(always)]
            |image, sums: &mut [[f64; 2]]| {
                let (x, dy) = (&x[image * c * p..][..c * p], &dy[image * c * p..][..c * p]);
                for (ch, (sum, (x, g))) in sums
                    .iter_mut()
                    .zip(x.chunks_exact(p).zip(dy.chunks_exact(p)))
                    .enumerate()
                {
                    let (sum_g, sum_gx) = lane_sums(g, x, self.through_rectifier(gamma, ch));
                    sum[0] += sum_g as f64;
                    sum[1] += sum_gx as f64;
                }
            },
        )
        .into_iter()
        .enumerate()
        .map(|(ch, [dbeta, dyx])| {
            let dgamma = (dyx - self.mean[ch] as f64 * dbeta) * self.invstd[ch] as f64;
            (dbeta as f32, dgamma as f32)
        })
        .collect();
        let mut out = unwritten(x.len() + 2 * c);
        let (dx, rest) = out.split_at_mut(x.len());
        // dx = k * (dy - dbeta / count - x_hat * dgamma / count) = k * dy + slope * x + offset per channel
        // (just k * dy when the statistics are constants).
        let coefficients: Vec<(f32, f32, f32)> = (0..c)
            .map(|ch| {
                let (dbeta, dgamma) = sums[ch];
                let (k, invstd) = (gamma[ch] * self.invstd[ch], self.invstd[ch]);
                if self.batch_stats {
                    let slope = -k * invstd * dgamma / count;
                    (k, slope, -k * dbeta / count - slope * self.mean[ch])
                } else {
                    (k, 0.0, 0.0)
                }
            })
            .collect();
        crate::threads::in_spans(dx, c * p, |at, dx| {
            let inputs = x[at..].chunks(c * p).zip(dy[at..].chunks(c * p));
            crate::cpu::widest(
                #[inline(always)]
                || {
                    for (dx, (x, dy)) in dx.chunks_mut(c * p).zip(inputs) {
                        self.input_gradient_image(dx, (x, dy), gamma, &coefficients);
                    }
                },
            )
        });
        for (ch, (dbeta, dgamma)) in sums.into_iter().enumerate() {
            rest[ch] = dgamma;
            rest[c + ch] = dbeta;
        }
        out
    }

    /// One image's dx in `gradients`: `k * dy + slope * x + offset` per channel, from each channel's
    /// `coefficients` (k, slope, offset); inlined into the caller's loop built for the widest vectors.
    #[inline(always)]
    fn input_gradient_image(
        &self,
        dx: &mut [f32],
        (x, dy): (&[f32], &[f32]),
        gamma: &[f32],
        coefficients: &[(f32, f32, f32)],
    ) {
        let p = self.plane;
        for (ch, (k, slope, offset)) in coefficients.iter().copied().enumerate() {
            let range = ch * p..(ch + 1) * p;
            let through = self.through_rectifier(gamma, ch);
            for ((o, v), g) in dx[range.clone()].iter_mut().zip(&x[range.clone()]).zip(&dy[range]) {
                *o = k * through(*g, *v) + slope * v + offset;
            }
        }
    }
}

/// (Σ g', Σ g'·x) with g' = `through(g, x)`, in 16 independent lanes, which vectorise where running sums
/// cannot.
#[inline(always)]
fn lane_sums(g: &[f32], x: &[f32], through: impl Fn(f32, f32) -> f32) -> (f32, f32) {
    let (mut sum_g, mut sum_gx) = ([0f32; 16], [0f32; 16]);
    let (gs, xs) = (g.chunks_exact(16), x.chunks_exact(16));
    let tail = gs
        .remainder()
        .iter()
        .zip(xs.remainder())
        .fold((0f32, 0f32), |(a, b), (g, x)| {
            let g = through(*g, *x);
            (a + g, b + g * x)
        });
    for (g, x) in gs.zip(xs) {
        for i in 0..16 {
            let g = through(g[i], x[i]);
            sum_g[i] += g;
            sum_gx[i] += g * x[i];
        }
    }
    (sum_g.iter().sum::<f32>() + tail.0, sum_gx.iter().sum::<f32>() + tail.1)
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "gantry-batch-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = self.normalise(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grads = x.apply_op3_no_bwd(gamma, &dy.contiguous()?, &Gradients(self))?;
        let (n, c) = (x.elem_count(), self.channels);
        Ok((
            Some(grads.narrow(0, 0, n)?.reshape(x.shape())?),
            // Copied out: views would keep the whole buffer (dx too) alive until the optimiser step.
            Some(grads.narrow(0, n, c)?.force_contiguous()?),
            Some(grads.narrow(0, n + c, c)?.force_contiguous()?),
        ))
    }
}

/// The backward pass of a `BatchNormOp` as an op of (x, gamma, dy).
struct Gradients<'a>(&'a BatchNormOp);

impl CustomOp3 for Gradients<'_> {
    fn name(&self) -> &'static str {
        "gantry-batch-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = self.0.gradients(slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let len = out.len();
        Ok((CpuStorage::F32(out), Shape::from(len)))
    }
}

/// Batch norm of `x` (N, C) or (N, C, H, W) with per-channel `gamma` and `beta`, followed by `rectifier` if
/// any. `running` gives fixed statistics (mean, variance); without it the batch's own are used and returned
/// for the running averages.
pub(super) fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running: Option<Stats>,
    eps: f64,
    rectifier: Option<Rectifier>,
) -> Result<(Tensor, Option<Stats>)> {
    let x = x.contiguous()?;
    let (op, batch) = prepare(&x, beta, running, eps, rectifier)?;
    let y = x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    Ok((y, batch))
}

/// `rectifier(batch_norm(product(x, w)))` as one op of (x, w, gamma and beta concatenated), with the
/// statistics as `batch_norm`'s. Between two ops candle's backward pass zeroes the product's gradient and adds
/// into it on the calling thread alone; here the norm's backward hands it straight to the product's.
pub(super) fn normalised_product(
    x: &Tensor,
    w: &Tensor,
    product: impl FusedProduct,
    (gamma, beta): (&Tensor, &Tensor),
    running: Option<Stats>,
    eps: f64,
    rectifier: Rectifier,
) -> Result<(Tensor, Option<Stats>)> {
    // Made contiguous once for both the product and the op (copies where they are not).
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let product_out = rectifier::product_alone(&x, &w, &product)?;
    let (norm, batch) = prepare(&product_out, beta, running, eps, Some(rectifier))?;
    let op = NormalisedProduct {
        product,
        norm,
        product_out,
    };
    let y = x.apply_op3(&w, &Tensor::cat(&[gamma, beta], 0)?, op)?;
    Ok((y, batch))
}

/// The norm's op for the contiguous `x`, with the batch's statistics unless `running` gives them (then
/// returned too, for the running averages).
fn prepare(
    x: &Tensor,
    beta: &Tensor,
    running: Option<Stats>,
    eps: f64,
    rectifier: Option<Rectifier>,
) -> Result<(BatchNormOp, Option<Stats>)> {
    let channels = x.dim(1)?;
    let plane = x.dims()[2..].iter().product::<usize>();
    let batch_stats = running.is_none();
    let (mean, var) = match running {
        Some(stats) => stats,
        None => with_values(x, |x| channel_stats(x, channels, plane))?,
    };
    let invstd = var.iter().map(|v| 1.0 / (v + eps as f32).sqrt()).collect();
    let op = BatchNormOp {
        mean: mean.clone(),
        invstd,
        channels,
        plane,
        batch_stats,
        rectifier,
        beta: if rectifier.is_some() {
            beta.to_vec1::<f32>()?
        } else {
            Vec::new()
        },
    };
    Ok((op, batch_stats.then_some((mean, var))))
}

/// `f` of the values of a contiguous tensor on the CPU, read in place.
fn with_values<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = x.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(values) => Ok(f(slice(values, layout)?)),
        _ => Err(candle_core::Error::msg("gantry's batch norm runs on the CPU")),
    }
}

/// A product, its batch norm and rectifier as one op (`normalised_product`); the product's output, made
/// before the op for its statistics, is kept for the backward pass.
struct NormalisedProduct<P> {
    product: P,
    norm: BatchNormOp,
    product_out: Tensor,
}

impl<P: FusedProduct> CustomOp3 for NormalisedProduct<P> {
    fn name(&self) -> &'static str {
        "gantry-normalised-product"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (gamma, beta) = slice(s3, l3)?.split_at(self.norm.channels);
        let y = with_values(&self.product_out, |z| self.norm.normalise(z, gamma, beta))?;
        Ok((CpuStorage::F32(y), self.product_out.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        gamma_beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (z, c) = (&self.product_out, self.norm.channels);
        let gamma = gamma_beta.narrow(0, 0, c)?;
        let grads = z.apply_op3_no_bwd(&gamma, &dy.contiguous()?, &Gradients(&self.norm))?;
        let n = z.elem_count();
        let dz = grads.narrow(0, 0, n)?.reshape(z.shape())?;
        let (dx, dw, _) = self.product.backward(x, w, None, z, &dz)?;
        // The norm's gradients are dgamma then dbeta, as gamma and beta are concatenated.
        // Copied out: a view would keep the whole buffer (dz too) alive until the optimiser step.
        let dgamma_beta = gamma_beta
            .track_op()
            .then(|| grads.narrow(0, n, 2 * c)?.force_contiguous())
            .transpose()?;
        Ok((dx, dw, dgamma_beta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};

    /// The same batch norm written with candle tensor ops.
    fn reference(x: &Tensor, gamma: &Tensor, beta: &Tensor, dims: &[usize], view: &[usize]) -> Tensor {
        let mean = x.mean_keepdim(dims).unwrap();
        let centred = x.broadcast_sub(&mean).unwrap();
        let var = centred.sqr().unwrap().mean_keepdim(dims).unwrap();
        let normed = centred.broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap()).unwrap();
        normed
            .broadcast_mul(&gamma.reshape(view).unwrap())
            .unwrap()
            .broadcast_add(&beta.reshape(view).unwrap())
            .unwrap()
    }

    /// The rectifier after the norm as candle's own ops.
    fn rectify(y: Tensor, rectifier: Option<Rectifier>) -> Tensor {
        match rectifier {
            None => y,
            Some(Rectifier::Relu) => y.relu().unwrap(),
            Some(Rectifier::Leaky) => candle_nn::ops::leaky_relu(&y, 0.2).unwrap(),
        }
    }

    #[test]
    fn matches_tensor_ops_forward_and_backward() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let rectifiers = [None, Some(Rectifier::Relu), Some(Rectifier::Leaky)];
        // 19 images: the per-channel sums in three parts, the last short.
        let cases = [vec![4, 3, 5, 2], vec![7, 6], vec![1, 2, 3, 3], vec![19, 3, 4, 4]]
            .into_iter()
            .flat_map(|dims| rectifiers.map(|r| (dims.clone(), r)));
        for (dims, rectifier) in cases {
            let n: usize = dims.iter().product();
            let c = dims[1];
            let var = |len: usize, rng: &mut rand::rngs::StdRng| {
                Var::from_vec(
                    (0..len).map(|_| rng.random_range(-2f32..2.0)).collect(),
                    len,
                    &Device::Cpu,
                )
                .unwrap()
            };
            let x = Var::from_vec(
                (0..n).map(|_| rng.random_range(-2f32..3.0)).collect(),
                dims.as_slice(),
                &Device::Cpu,
            )
            .unwrap();
            let (gamma, beta) = (var(c, &mut rng), var(c, &mut rng));
            let probe = Tensor::from_vec(
                (0..n).map(|_| rng.random_range(-1f32..1.0)).collect(),
                dims.as_slice(),
                &Device::Cpu,
            )
            .unwrap();
            let (reduce, view): (Vec<usize>, Vec<usize>) = if dims.len() == 2 {
                (vec![0], vec![1, c])
            } else {
                (vec![0, 2, 3], vec![1, c, 1, 1])
            };
            let ours = batch_norm(&x, &gamma, &beta, None, 1e-5, rectifier).unwrap().0;
            let theirs = rectify(reference(&x, &gamma, &beta, &reduce, &view), rectifier);
            let g1 = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            let g2 = (&theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
            // The small gradients hold buffers of their own: as views of the op's one output they would keep
            // dx's values alive as long as they live (until the optimiser step).
            for (what, grad) in [("dgamma", g1.get(&gamma)), ("dbeta", g1.get(&beta))] {
                let held = crate::models::values_held(grad.unwrap());
                assert_eq!(held, c, "{dims:?} {what}: values held");
            }
            let pairs = [
                (ours, theirs),
                (g1.get(&x).unwrap().clone(), g2.get(&x).unwrap().clone()),
                (g1.get(&gamma).unwrap().clone(), g2.get(&gamma).unwrap().clone()),
                (g1.get(&beta).unwrap().clone(), g2.get(&beta).unwrap().clone()),
            ];
            for (what, (a, b)) in ["y", "dx", "dgamma", "dbeta"].iter().zip(pairs) {
                let (a, b) = (
                    a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                );
                for (u, v) in a.iter().zip(&b) {
                    assert!(
                        (u - v).abs() <= 1e-4 * v.abs().max(1.0),
                        "{dims:?} {rectifier:?} {what}: {u} vs {v}"
                    );
                }
            }
        }
    }

    /// The product, norm and rectifier in one op give what the convolution and the norm give as two ops
    /// (each checked against candle's above and in conv.rs): values, all four gradients and the statistics.
    #[test]
    fn a_convolution_and_its_norm_in_one_op_match_the_two_ops() {
        use crate::models::conv::{conv2d, conv_transpose2d, convolution};
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let mut var = |dims: &[usize]| {
            let n = dims.iter().product();
            Var::from_vec(
                (0..n).map(|_| rng.random_range(-1f32..1.0)).collect(),
                dims,
                &Device::Cpu,
            )
            .unwrap()
        };
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let running = (vec![0.3, -0.2, 0.1, 0.0, 0.5], vec![0.8, 1.5, 0.6, 1.0, 2.0]);
        for transposed in [false, true] {
            let (x, w) = match transposed {
                false => (var(&[4, 3, 6, 6]), var(&[5, 3, 4, 4])),
                true => (var(&[4, 3, 3, 3]), var(&[3, 5, 4, 4])),
            };
            let (gamma, beta) = (var(&[5]), var(&[5]));
            for (rectifier, running) in [
                (Rectifier::Relu, None),
                (Rectifier::Leaky, None),
                (Rectifier::Leaky, Some(running.clone())),
            ] {
                let product = convolution(&x, &w, (2, 1), transposed, None).unwrap();
                let (ours, our_stats) =
                    normalised_product(&x, &w, product, (&gamma, &beta), running.clone(), 1e-5, rectifier).unwrap();
                let conv = match transposed {
                    false => conv2d(&x, &w, 2, 1, Default::default()),
                    true => conv_transpose2d(&x, &w, 2, 1, Default::default()),
                }
                .unwrap();
                let (theirs, their_stats) =
                    batch_norm(&conv, &gamma, &beta, running.clone(), 1e-5, Some(rectifier)).unwrap();
                assert_eq!(our_stats, their_stats, "statistics");
                let probe = Tensor::from_vec(
                    (0..theirs.elem_count()).map(|i| ((i * 7) % 11) as f32 - 5.0).collect(),
                    theirs.shape(),
                    &Device::Cpu,
                )
                .unwrap();
                let g1 = (&ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                let g2 = (&theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                let mut pairs = vec![("y", values(&ours), values(&theirs))];
                for (what, v) in [("dx", &x), ("dw", &w), ("dgamma", &gamma), ("dbeta", &beta)] {
                    pairs.push((what, values(g1.get(v).unwrap()), values(g2.get(v).unwrap())));
                }
                for (what, a, b) in pairs {
                    assert_eq!(a.len(), b.len(), "{what}");
                    for (u, v) in a.iter().zip(&b) {
                        assert!(
                            (u - v).abs() <= 1e-4 * v.abs().max(1.0),
                            "transposed {transposed} {rectifier:?} {what}: {u} vs {v}"
                        );
                    }
                }
            }
        }
    }
}
