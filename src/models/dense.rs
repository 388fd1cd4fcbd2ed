//! Bias + ReLU / leaky ReLU of a dense layer as one op: one pass forward and one backward, where the tensor
//! ops take a broadcast add, the activation and about five more passes for their gradients.

use super::slice;
use crate::config::Activation;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// The slope of leaky ReLU below zero (PyTorch's DCGAN and GAN examples use 0.2).
pub const LEAKY_SLOPE: f32 = 0.2;

/// An activation the fused op has (those whose gradient follows from the output's sign).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rectifier {
    Relu,
    Leaky,
}

impl Rectifier {
    fn of(activation: Activation) -> Option<Rectifier> {
        match activation {
            Activation::Relu => Some(Rectifier::Relu),
            Activation::LeakyRelu => Some(Rectifier::Leaky),
            Activation::Gelu | Activation::Silu => None,
        }
    }

    /// The slope below zero.
    fn negative_slope(self) -> f32 {
        match self {
            Rectifier::Relu => 0.0,
            Rectifier::Leaky => LEAKY_SLOPE,
        }
    }
}

/// `activation(z + bias)` for `z` (batch x features) and `bias` (features), fused where the activation is
/// ReLU or leaky ReLU; `None` for activations it does not have.
pub fn bias_activation(z: &Tensor, bias: &Tensor, activation: Activation) -> Option<Result<Tensor>> {
    let rectifier = Rectifier::of(activation)?;
    Some((|| {
        z.contiguous()?.apply_op2(&bias.contiguous()?, BiasRectifier(rectifier))
    })())
}

struct BiasRectifier(Rectifier);

impl CustomOp2 for BiasRectifier {
    fn name(&self) -> &'static str {
        "gantry-bias-rectifier"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (z, bias) = (slice(s1, l1)?, slice(s2, l2)?);
        if bias.is_empty() || z.len() % bias.len() != 0 {
            return Err(candle_core::Error::msg(
                "bias length does not divide the layer's output",
            ));
        }
        let slope = self.0.negative_slope();
        let mut y = vec![0f32; z.len()];
        for (y, z) in y.chunks_exact_mut(bias.len()).zip(z.chunks_exact(bias.len())) {
            for ((y, z), b) in y.iter_mut().zip(z).zip(bias) {
                let pre = z + b;
                *y = if pre > 0.0 { pre } else { slope * pre };
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, _z: &Tensor, _bias: &Tensor, y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Both rectifiers keep the sign, so the output says which side of zero the input was on.
        let dz = y.apply_op2_no_bwd(&dy.contiguous()?, &RectifierGradient(self.0))?;
        let dbias = dz.sum(0)?;
        Ok((Some(dz), Some(dbias)))
    }
}

/// dz = dy where y > 0, else slope * dy.
struct RectifierGradient(Rectifier);

impl CustomOp2 for RectifierGradient {
    fn name(&self) -> &'static str {
        "gantry-bias-rectifier-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let slope = self.0.negative_slope();
        let dz = y
            .iter()
            .zip(dy)
            .map(|(y, dy)| if *y > 0.0 { *dy } else { slope * dy })
            .collect();
        Ok((CpuStorage::F32(dz), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The same layer as tensor ops, as candle differentiates them.
    fn unfused(z: &Tensor, bias: &Tensor, activation: Activation) -> Tensor {
        let pre = z.broadcast_add(bias).unwrap();
        super::super::layers::activate(&pre, activation).unwrap()
    }

    #[test]
    fn fused_bias_and_rectifier_match_the_tensor_ops_in_value_and_gradients() {
        let (batch, features) = (5, 7);
        let values = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + seed) % 1009) as f32 / 1009.0 - 0.5) * 4.0)
                .collect()
        };
        for activation in [Activation::Relu, Activation::LeakyRelu] {
            let z = Var::from_vec(values(batch * features, 1), (batch, features), &Device::Cpu).unwrap();
            let b = Var::from_vec(values(features, 2), features, &Device::Cpu).unwrap();
            let probe = Tensor::from_vec(values(batch * features, 3), (batch, features), &Device::Cpu).unwrap();
            let run = |y: Tensor| {
                let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                let grad = |v: &Var| {
                    grads
                        .get(v.as_tensor())
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                };
                (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), grad(&z), grad(&b))
            };
            let fused = run(bias_activation(z.as_tensor(), b.as_tensor(), activation)
                .unwrap()
                .unwrap());
            let reference = run(unfused(z.as_tensor(), b.as_tensor(), activation));
            for (name, ours, theirs) in [
                ("value", &fused.0, &reference.0),
                ("dz", &fused.1, &reference.1),
                ("dbias", &fused.2, &reference.2),
            ] {
                for (a, r) in ours.iter().zip(theirs) {
                    assert!((a - r).abs() < 1e-5, "{activation:?} {name}: {a} vs {r}");
                }
            }
        }
        assert!(bias_activation(
            &Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
            &Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
            Activation::Gelu
        )
        .is_none());
    }
}
