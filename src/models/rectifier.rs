//! ReLU and leaky ReLU as fused ops, alone or after a dense layer's bias: one pass forward and one
//! backward, where candle's tensor ops take a broadcast add, the activation (leaky ReLU alone is five ops)
//! and about five more passes for their gradients.

use super::slice;
use crate::config::Activation;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// The slope of leaky ReLU below zero (PyTorch's DCGAN and GAN examples use 0.2).
pub const LEAKY_SLOPE: f32 = 0.2;

/// Below this many values a pass runs on the calling thread: handing it to the pool costs more.
const PARALLEL_MIN: usize = 1 << 17;

/// An activation the fused ops have (those whose gradient follows from the output's sign).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Rectifier {
    Relu,
    Leaky,
}

impl Rectifier {
    pub(super) fn of(activation: Activation) -> Option<Rectifier> {
        match activation {
            Activation::Relu => Some(Rectifier::Relu),
            Activation::LeakyRelu => Some(Rectifier::Leaky),
            Activation::Gelu | Activation::Silu => None,
        }
    }

    /// The slope below zero.
    pub(super) fn negative_slope(self) -> f32 {
        match self {
            Rectifier::Relu => 0.0,
            Rectifier::Leaky => LEAKY_SLOPE,
        }
    }
}

/// Fills `out` by calling `work(offset, span)` on spans of it (multiples of `align` values), on candle's
/// thread pool when `out` is large enough to be worth sharing.
pub(super) fn in_spans(out: &mut [f32], align: usize, work: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let threads = candle_core::utils::get_num_threads();
    if out.len() < PARALLEL_MIN || threads == 1 {
        return work(0, out);
    }
    let align = align.max(1);
    let span = out.len().div_ceil(threads).div_ceil(align) * align;
    candle_core::utils::with_threadpool(|| {
        out.par_chunks_mut(span)
            .enumerate()
            .for_each(|(i, part)| work(i * span, part))
    });
}

/// `rectifier(x)` as one op.
pub(super) fn rectify(x: &Tensor, rectifier: Rectifier) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Rectify(rectifier))
}

struct Rectify(Rectifier);

impl CustomOp1 for Rectify {
    fn name(&self) -> &'static str {
        "gantry-rectifier"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(storage, layout)?;
        let slope = self.0.negative_slope();
        let mut y = vec![0f32; x.len()];
        in_spans(&mut y, 1, move |at, y| {
            for (y, x) in y.iter_mut().zip(&x[at..]) {
                *y = if *x > 0.0 { *x } else { slope * x };
            }
        });
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&dy.contiguous()?, &RectifierGradient(self.0))?))
    }
}

/// `rectifier(z + bias)` as one op, for `z` (batch x features) and `bias` (features).
pub(super) fn bias_rectify(z: &Tensor, bias: &Tensor, rectifier: Rectifier) -> Result<Tensor> {
    z.contiguous()?.apply_op2(&bias.contiguous()?, BiasRectifier(rectifier))
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
        in_spans(&mut y, bias.len(), move |at, y| {
            for (y, z) in y.chunks_exact_mut(bias.len()).zip(z[at..].chunks_exact(bias.len())) {
                for ((y, z), b) in y.iter_mut().zip(z).zip(bias) {
                    let pre = z + b;
                    *y = if pre > 0.0 { pre } else { slope * pre };
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, _z: &Tensor, _bias: &Tensor, y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Both rectifiers keep the sign, so the output says which side of zero the input was on.
        let dz = y.apply_op2_no_bwd(&dy.contiguous()?, &RectifierGradient(self.0))?;
        let dbias = dz.sum(0)?;
        Ok((Some(dz), Some(dbias)))
    }
}

/// dz = dy where y > 0, else slope * dy: the gradient through a rectifier, from its output (y, dy).
pub(super) struct RectifierGradient(pub(super) Rectifier);

impl CustomOp2 for RectifierGradient {
    fn name(&self) -> &'static str {
        "gantry-rectifier-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, dy) = (slice(s1, l1)?, slice(s2, l2)?);
        let slope = self.0.negative_slope();
        let mut dz = vec![0f32; y.len()];
        in_spans(&mut dz, 1, move |at, dz| {
            for ((dz, y), dy) in dz.iter_mut().zip(&y[at..]).zip(&dy[at..]) {
                *dz = if *y > 0.0 { *dy } else { slope * dy };
            }
        });
        Ok((CpuStorage::F32(dz), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::layers::{activate, Kernels};
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_rectifiers_match_the_tensor_ops_in_value_and_gradients() {
        // Inputs and biases on different grids (1009ths and 1013ths) never sum to exactly zero, where the
        // rectifiers' gradient is a matter of convention.
        let values = |n: usize, seed: usize, grid: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + seed) % grid) as f32 / grid as f32 - 0.5) * 4.0)
                .collect()
        };
        // The larger batch (over `PARALLEL_MIN` values) is split into spans over the thread pool.
        for (batch, features) in [(5, 7), (20000, 7)] {
            for activation in [Activation::Relu, Activation::LeakyRelu] {
                let rectifier = Rectifier::of(activation).unwrap();
                let z = Var::from_vec(values(batch * features, 1, 1009), (batch, features), &Device::Cpu).unwrap();
                let b = Var::from_vec(values(features, 2, 1013), features, &Device::Cpu).unwrap();
                let probe =
                    Tensor::from_vec(values(batch * features, 3, 1009), (batch, features), &Device::Cpu).unwrap();
                let run = |y: Tensor| {
                    let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
                    let grad = |v: &Var| {
                        grads
                            .get(v.as_tensor())
                            .map(|g| g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                    };
                    (y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), grad(&z), grad(&b))
                };
                let candle = |x: &Tensor| activate(x, activation, Kernels::Candle).unwrap();
                let pairs = [
                    (
                        "bias + rectifier",
                        run(bias_rectify(&z, &b, rectifier).unwrap()),
                        run(candle(&z.broadcast_add(&b).unwrap())),
                    ),
                    ("rectifier", run(rectify(&z, rectifier).unwrap()), run(candle(&z))),
                ];
                for (op, fused, reference) in pairs {
                    let fields = [
                        ("value", Some(fused.0), Some(reference.0)),
                        ("dz", fused.1, reference.1),
                        ("dbias", fused.2, reference.2),
                    ];
                    for (name, ours, theirs) in fields {
                        assert_eq!(ours.is_some(), theirs.is_some(), "{op} {name}");
                        for (a, r) in ours.iter().flatten().zip(theirs.iter().flatten()) {
                            assert!((a - r).abs() < 1e-5, "{op} {activation:?} {name}: {a} vs {r}");
                        }
                    }
                }
            }
        }
    }
}
