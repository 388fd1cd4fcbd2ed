//! Losses, written in numerically stable forms.

use crate::config::GanLoss;
use candle_core::{Result, Tensor};

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
/// pre-sigmoid outputs and `target` lies in [0, 1].
pub fn bce_sum_per_item(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    let batch = logits.dim(0)? as f64;
    let softplus_neg_abs = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((logits.relu()? - (logits * target)?)? + softplus_neg_abs)?.sum_all()? / batch
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

    #[test]
    fn kl_is_zero_for_the_prior() {
        let z = Tensor::zeros((4, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(scalar(kl_per_item(&z, &z).unwrap()), 0.0);
    }
}
