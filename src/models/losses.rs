//! Losses, written in numerically stable forms.

use super::{elementary, slice, unwritten};
use crate::config::GanLoss;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// Mean binary cross-entropy of logits against a constant target, stable for any logit:
/// `max(l, 0) - l * y + log(1 + exp(-|l|))`.
pub fn bce_with_logits(logits: &Tensor, target: f64) -> Result<Tensor> {
    let softplus_neg_abs = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - (logits * target)?)?
        .add(&softplus_neg_abs)?
        .mean_all()
}

/// Discriminator (critic) loss for real logits `real` and fake logits `fake`.
pub fn discriminator_loss(loss: GanLoss, real: &Tensor, fake: &Tensor, label_smoothing: f64) -> Result<Tensor> {
    let real_target = 1.0 - label_smoothing;
    match loss {
        GanLoss::NonSaturating | GanLoss::Minimax => bce_with_logits(real, real_target)? + bce_with_logits(fake, 0.0)?,
        GanLoss::LeastSquares => ((real - real_target)?.sqr()?.mean_all()? * 0.5)? + (fake.sqr()?.mean_all()? * 0.5)?,
        GanLoss::Hinge => (1.0 - real)?.relu()?.mean_all()? + (fake + 1.0)?.relu()?.mean_all()?,
        GanLoss::Wasserstein => fake.mean_all()? - real.mean_all()?,
    }
}

/// Generator loss given D's logits on generated samples.
pub fn generator_loss(loss: GanLoss, fake: &Tensor) -> Result<Tensor> {
    match loss {
        // Maximise log D(G(z)): strong gradients while D still rejects the samples.
        GanLoss::NonSaturating => bce_with_logits(fake, 1.0),
        // Minimise log(1 - D(G(z))) = -BCE(fake, 0).
        GanLoss::Minimax => bce_with_logits(fake, 0.0)?.neg(),
        GanLoss::LeastSquares => (fake - 1.0)?.sqr()?.mean_all()? * 0.5,
        GanLoss::Hinge | GanLoss::Wasserstein => fake.mean_all()?.neg(),
    }
}

/// Reconstruction BCE summed over each item's values and averaged over the batch. `logits` are the decoder's
/// pre-sigmoid outputs and `target` lies in [0, 1] (it gets no gradient).
pub fn bce_sum_per_item(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let batch = logits.dim(0)? as f64;
    let target = target.broadcast_as(logits.shape())?.contiguous()?;
    logits.contiguous()?.apply_op2(&target, BceSum)? / batch
}

/// Σ BCE(logits, target) over every element in one pass, and its logits gradient, σ(l) - y, in one more
/// (written as tensor ops it is about ten passes each way over the decoder's whole output). Both passes are
/// shared over Gantry's threads and built for the CPU's widest vectors.
struct BceSum;

/// Elements summed in f32 (in `LANES` running sums) before the f64 total takes them.
const BCE_CHUNK: usize = 1 << 14;

/// Running sums side by side: one vector register's worth, so that the sum vectorises.
const LANES: usize = 16;

/// Below this many elements a BCE pass runs on the calling thread alone.
const BCE_PARALLEL_MIN: usize = 1 << 14;

/// `max(l, 0) - l y + ln(1 + e^-|l|)`: finite for any logit. `1 + e^-|l|` lies in (1, 2], where `ln` is
/// as exact as the (slower) `ln_1p` to within 1e-7 per element.
#[inline(always)]
fn bce_term(l: f32, y: f32) -> f32 {
    l.max(0.0) - l * y + elementary::ln(1.0 + elementary::exp(-l.abs()))
}

/// σ(l) without overflow for large |l|: with e = e^-|l|, 1 / (1 + e) for l ≥ 0 and e / (1 + e) below.
#[inline(always)]
fn sigmoid(l: f32) -> f32 {
    let e = elementary::exp(-l.abs());
    (if l >= 0.0 { 1.0 } else { e }) / (1.0 + e)
}

/// Σ `bce_term` over a span, in f32 lanes per chunk and f64 across chunks.
fn bce_sum(logits: &[f32], target: &[f32]) -> f64 {
    crate::cpu::widest(
        #[inline(always)]
        || {
            let mut total = 0.0;
            for (l, y) in logits.chunks(BCE_CHUNK).zip(target.chunks(BCE_CHUNK)) {
                let ((l_lanes, l_rest), (y_lanes, y_rest)) = (l.as_chunks::<LANES>(), y.as_chunks::<LANES>());
                let mut lanes = [0f32; LANES];
                for (l, y) in l_lanes.iter().zip(y_lanes) {
                    for i in 0..LANES {
                        lanes[i] += bce_term(l[i], y[i]);
                    }
                }
                let rest: f32 = l_rest.iter().zip(y_rest).map(|(l, y)| bce_term(*l, *y)).sum();
                total += (lanes.iter().sum::<f32>() + rest) as f64;
            }
            total
        },
    )
}

/// The spans of `len` elements that a BCE pass shares out over the threads (from fewer elements than
/// `threads::in_spans` shares: each costs an `exp` and a `ln`).
fn bce_span(len: usize) -> usize {
    crate::threads::span_len(len, LANES, BCE_PARALLEL_MIN)
}

impl CustomOp2 for BceSum {
    fn name(&self) -> &'static str {
        "gantry-bce-sum"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (logits, target) = (slice(s1, l1)?, slice(s2, l2)?);
        let span = bce_span(logits.len());
        let parts = logits.chunks(span).zip(target.chunks(span)).collect();
        let total: f64 = crate::threads::map_parts(parts, |_, (l, y)| bce_sum(l, y))
            .into_iter()
            .sum();
        Ok((CpuStorage::F32(vec![total as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        target: &Tensor,
        _sum: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let scale = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let dlogits = logits.apply_op2_no_bwd(target, &BceGradient { scale })?;
        Ok((Some(dlogits), None))
    }
}

/// `scale * (σ(l) - y)` per element: the gradient of `scale * BceSum`.
struct BceGradient {
    scale: f32,
}

impl CustomOp2 for BceGradient {
    fn name(&self) -> &'static str {
        "gantry-bce-sum-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (logits, target) = (slice(s1, l1)?, slice(s2, l2)?);
        let mut out = unwritten(logits.len());
        let span = bce_span(logits.len());
        let parts = out
            .chunks_mut(span)
            .zip(logits.chunks(span).zip(target.chunks(span)))
            .collect();
        crate::threads::for_each_part(parts, |_, (out, (l, y)): (&mut [f32], (&[f32], &[f32]))| {
            crate::cpu::widest(
                #[inline(always)]
                || {
                    for (o, (l, y)) in out.iter_mut().zip(l.iter().zip(y)) {
                        *o = self.scale * (sigmoid(*l) - y);
                    }
                },
            )
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Squared error summed over each item's values and averaged over the batch.
pub fn mse_sum_per_item(output: &Tensor, target: &Tensor) -> Result<Tensor> {
    let batch = output.dim(0)? as f64;
    (output - target)?.sqr()?.sum_all()? / batch
}

/// KL(q(z|x) || N(0, I)) summed over latent dims, averaged over the batch.
pub fn kl_per_item(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let batch = mu.dim(0)? as f64;
    let terms = ((logvar + 1.0)? - mu.sqr()? - logvar.exp()?)?;
    terms.sum_all()? * (-0.5 / batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn scalar(t: Tensor) -> f32 {
        t.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn bce_is_finite_and_right_for_huge_logits() {
        let l = Tensor::new(&[1000f32, -1000.0, 0.0], &Device::Cpu).unwrap();
        let ones = scalar(bce_with_logits(&l, 1.0).unwrap());
        // Per element: 0, 1000, ln 2.
        assert!((ones - (1000.0 + std::f32::consts::LN_2) / 3.0).abs() < 1e-3, "{ones}");
    }

    #[test]
    fn minimax_and_non_saturating_differ_as_expected() {
        let fake = Tensor::new(&[-3f32], &Device::Cpu).unwrap();
        let ns = scalar(generator_loss(GanLoss::NonSaturating, &fake).unwrap());
        let mm = scalar(generator_loss(GanLoss::Minimax, &fake).unwrap());
        // D(G(z)) = sigmoid(-3) ≈ 0.047: -log(0.047) ≈ 3.05 and log(1 - 0.047) ≈ -0.049.
        assert!((ns - 3.0486).abs() < 1e-3, "{ns}");
        assert!((mm + 0.0486).abs() < 1e-3, "{mm}");
    }

    /// The BCE written as tensor ops, as candle differentiates it.
    fn bce_sum_by_tensor_ops(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
        let batch = logits.dim(0)? as f64;
        let softplus_neg_abs = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
        ((logits.relu()? - (logits * target)?)? + softplus_neg_abs)?.sum_all()? / batch
    }

    #[test]
    fn fused_bce_matches_the_tensor_ops_in_value_and_gradient() {
        use candle_core::Var;
        // Several f32 partial sums, logits from -40 to 40 and targets in [0, 1].
        let (batch, width) = (7, 5003);
        let n = batch * width;
        let logits: Vec<f32> = (0..n).map(|i| ((i * 7919) % 8001) as f32 / 100.0 - 40.0).collect();
        let target: Vec<f32> = (0..n).map(|i| ((i * 104_729) % 1001) as f32 / 1000.0).collect();
        let target = Tensor::from_vec(target, (batch, width), &Device::Cpu).unwrap();
        let loss_and_grad = |f: fn(&Tensor, &Tensor) -> Result<Tensor>| {
            let l = Var::from_vec(logits.clone(), (batch, width), &Device::Cpu).unwrap();
            let loss = (f(l.as_tensor(), &target).unwrap() * 3.0).unwrap();
            let grad = loss
                .backward()
                .unwrap()
                .get(l.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap();
            (scalar(loss), grad.to_vec1::<f32>().unwrap())
        };
        let (fused, fused_grad) = loss_and_grad(bce_sum_per_item);
        let (reference, reference_grad) = loss_and_grad(bce_sum_by_tensor_ops);
        assert!(
            (fused - reference).abs() <= 1e-4 * reference.abs(),
            "{fused} vs {reference}"
        );
        for (a, b) in fused_grad.iter().zip(&reference_grad) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1e-3), "gradient {a} vs {b}");
        }
    }

    #[test]
    fn a_nan_logit_makes_the_fused_bce_nan() {
        let logits = Tensor::new(&[[0.5f32, f32::NAN, -2.0]], &Device::Cpu).unwrap();
        let target = Tensor::new(&[[1f32, 0.0, 0.5]], &Device::Cpu).unwrap();
        assert!(scalar(bce_sum_per_item(&logits, &target).unwrap()).is_nan());
    }

    #[test]
    fn kl_is_zero_for_the_prior() {
        let z = Tensor::zeros((4, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(scalar(kl_per_item(&z, &z).unwrap()), 0.0);
    }
}
