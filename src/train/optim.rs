//! Optimisers over our own parameter lists, with PyTorch's update rules. Their hyperparameters can change
//! between steps, and their state is saved in checkpoints.

use crate::config::{OptimizerConfig, OptimizerKind};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Result, Tensor, Var};
use std::cell::{Cell, RefCell};

/// The hyperparameters one optimiser uses; the learning rate differs between G and D.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub alpha: f64,
}

impl Hyper {
    pub fn new(config: &OptimizerConfig, lr: f64) -> Hyper {
        Hyper {
            lr,
            beta1: config.beta1,
            beta2: config.beta2,
            eps: config.eps,
            weight_decay: config.weight_decay,
            momentum: config.momentum,
            alpha: config.alpha,
        }
    }
}

pub struct Optimizer {
    kind: OptimizerKind,
    pub hyper: Hyper,
    vars: Vec<Var>,
    /// State slots per variable: Adam (m, v), SGD (momentum buffer), RMSprop (square average, momentum buffer).
    slots: usize,
    /// Per variable, its slots; empty (all zeros) until its first update, so that a session that never trains
    /// (the quality metric's shadow) holds no optimiser state.
    state: Vec<Vec<Vec<f32>>>,
    steps: u64,
    /// Per variable, the sum of squared gradients of the last step (before any clipping).
    grad_sq: Vec<f64>,
    /// The global gradient norm above which gradients are scaled down to it; 0 = no clipping.
    pub max_grad_norm: f64,
}

/// Elements per parallel task of an update.
const CHUNK: usize = 1 << 15;

/// The update rule of one step.
#[derive(Clone, Copy)]
struct Rule {
    kind: OptimizerKind,
    hyper: Hyper,
    /// 1-based step number, for Adam's bias correction and SGD's first momentum buffer.
    step: i32,
    /// Gradients are multiplied by this (below 1 when clipped to the global norm).
    grad_scale: f32,
}

/// One variable's update, applied in place in a single pass over its values, gradient and state.
struct Update<'a> {
    rule: Rule,
    state: RefCell<&'a mut [Vec<f32>]>,
    /// Receives the sum of squared gradients, for the gradient norm.
    grad_sq: Cell<f64>,
}

impl Rule {
    /// Updates one chunk of values `theta` from gradients `grad` and the matching chunks of state; returns
    /// the chunk's sum of squared gradients. The loops zip their slices (no bounds checks) and keep no
    /// running sum, so they vectorise; the sum is a separate pass.
    fn chunk(&self, theta: &mut [f32], grad: &[f32], s0: &mut [f32], s1: &mut [f32]) -> f64 {
        crate::cpu::widest(
            #[inline(always)]
            || self.update(theta, grad, s0, s1),
        )
    }

    #[inline(always)]
    fn update(&self, theta: &mut [f32], grad: &[f32], s0: &mut [f32], s1: &mut [f32]) -> f64 {
        let h = self.hyper;
        let (lr, wd, eps, scale) = (h.lr as f32, h.weight_decay as f32, h.eps as f32, self.grad_scale);
        match self.kind {
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                let (b1, b2) = (h.beta1 as f32, h.beta2 as f32);
                let bc1 = 1.0 - h.beta1.powi(self.step);
                let bc2_sqrt = (1.0 - h.beta2.powi(self.step)).sqrt() as f32;
                let step_size = (h.lr / bc1) as f32;
                // AdamW decays the weights directly; Adam adds the L2 penalty to the gradient.
                let (decay, penalty) = match self.kind {
                    OptimizerKind::AdamW => (1.0 - lr * wd, 0.0),
                    _ => (1.0, wd),
                };
                let state = s0.iter_mut().zip(s1.iter_mut());
                for ((t, &raw), (m, v)) in theta.iter_mut().zip(grad).zip(state) {
                    let g = raw * scale + penalty * *t;
                    *t *= decay;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *t -= step_size * *m / (v.sqrt() / bc2_sqrt + eps);
                }
            }
            OptimizerKind::Sgd => {
                let momentum = h.momentum as f32;
                if momentum == 0.0 {
                    for (t, &raw) in theta.iter_mut().zip(grad) {
                        *t -= lr * (raw * scale + wd * *t);
                    }
                } else {
                    // PyTorch starts the buffer at the first gradient.
                    let keep = if self.step == 1 { 0.0 } else { momentum };
                    for ((t, &raw), buffer) in theta.iter_mut().zip(grad).zip(s0.iter_mut()) {
                        *buffer = keep * *buffer + (raw * scale + wd * *t);
                        *t -= lr * *buffer;
                    }
                }
            }
            OptimizerKind::Rmsprop => {
                let (alpha, momentum) = (h.alpha as f32, h.momentum as f32);
                let state = s0.iter_mut().zip(s1.iter_mut());
                for ((t, &raw), (square, buffer)) in theta.iter_mut().zip(grad).zip(state) {
                    let g = raw * scale + wd * *t;
                    *square = alpha * *square + (1.0 - alpha) * g * g;
                    let scaled = g / (square.sqrt() + eps);
                    // With momentum 0 the buffer is just the scaled gradient.
                    *buffer = momentum * *buffer + scaled;
                    *t -= lr * *buffer;
                }
            }
        }
        sum_of_squares(grad)
    }
}

/// Σ v² in f64, computed as 16 f32 lanes (so it vectorises) added into f64 every 1024 values, which keeps
/// the f32 partial sums short enough to lose nothing a gradient norm shows.
#[inline(always)]
fn sum_of_squares(values: &[f32]) -> f64 {
    const LANES: usize = 16;
    let mut total = 0f64;
    for block in values.chunks(1024) {
        let mut lanes = [0f32; LANES];
        let exact = block.chunks_exact(LANES);
        let rest: f32 = exact.remainder().iter().map(|v| v * v).sum();
        for group in exact {
            for (lane, v) in lanes.iter_mut().zip(group) {
                *lane += v * v;
            }
        }
        total += lanes.iter().map(|l| *l as f64).sum::<f64>() + rest as f64;
    }
    total
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "gantry-optimiser-update"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let not_contiguous = || candle_core::Error::msg("optimiser updates take contiguous tensors");
        let (t0, t1) = l1.contiguous_offsets().ok_or_else(not_contiguous)?;
        let (g0, g1) = l2.contiguous_offsets().ok_or_else(not_contiguous)?;
        let CpuStorage::F32(theta) = s1 else {
            return Err(candle_core::Error::msg("optimiser updates take f32 weights"));
        };
        let (theta, grad) = (&mut theta[t0..t1], &s2.as_slice::<f32>()?[g0..g1]);
        let mut state = self.state.borrow_mut();
        let [s0, s1] = match &mut state[..] {
            [a, b] => [a.as_mut_slice(), b.as_mut_slice()],
            [a] => [a.as_mut_slice(), &mut []],
            _ => unreachable!("optimisers keep one or two state slots"),
        };
        let rule = self.rule;
        let sum = if theta.len() <= CHUNK {
            rule.chunk(theta, grad, s0, pad(s1, theta.len()))
        } else {
            // SGD's empty second slot still needs one (empty) chunk per chunk of the weights.
            let second: Vec<&mut [f32]> = match pad(s1, theta.len()) {
                [] => theta.chunks(CHUNK).map(|_| -> &mut [f32] { &mut [] }).collect(),
                slot => slot.chunks_mut(CHUNK).collect(),
            };
            let chunks = theta
                .chunks_mut(CHUNK)
                .zip(grad.chunks(CHUNK))
                .zip(s0.chunks_mut(CHUNK))
                .zip(second)
                .collect();
            crate::threads::map_parts(chunks, |_, (((t, g), a), b)| rule.chunk(t, g, a, b))
                // Summed in chunk order, so the norm does not depend on how threads split the work.
                .iter()
                .sum()
        };
        self.grad_sq.set(sum);
        Ok(())
    }
}

/// SGD keeps one state slot; its update never reads the second, so an empty slice stands in for it.
fn pad(slot: &mut [f32], len: usize) -> &mut [f32] {
    if slot.is_empty() {
        &mut []
    } else {
        debug_assert_eq!(slot.len(), len);
        slot
    }
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, hyper: Hyper, vars: Vec<Var>) -> Result<Optimizer> {
        let slots = match kind {
            OptimizerKind::Adam | OptimizerKind::AdamW | OptimizerKind::Rmsprop => 2,
            OptimizerKind::Sgd => 1,
        };
        Ok(Optimizer {
            kind,
            hyper,
            grad_sq: vec![0.0; vars.len()],
            state: vec![Vec::new(); vars.len()],
            vars,
            slots,
            steps: 0,
            max_grad_norm: 0.0,
        })
    }

    /// Applies one update from the gradients in `grads` (variables without one stay as they are) and returns
    /// the L2 norm of all the gradients (before clipping).
    pub fn step(&mut self, grads: &GradStore) -> Result<f64> {
        self.steps += 1;
        // Clipping needs the global norm before any variable is updated: one more pass over the gradients,
        // only when it is on (the update computes the norm in the same pass otherwise).
        let grad_scale = if self.max_grad_norm > 0.0 {
            let mut total = 0.0;
            for var in &self.vars {
                if let Some(grad) = grads.get(var) {
                    total += grad
                        .sqr()?
                        .sum_all()?
                        .to_dtype(candle_core::DType::F64)?
                        .to_scalar::<f64>()?;
                }
            }
            (self.max_grad_norm / total.sqrt()).min(1.0) as f32
        } else {
            1.0
        };
        for ((var, state), grad_sq) in self.vars.iter().zip(self.state.iter_mut()).zip(&mut self.grad_sq) {
            *grad_sq = 0.0;
            let Some(grad) = grads.get(var) else { continue };
            if state.is_empty() {
                *state = vec![vec![0f32; var.elem_count()]; self.slots];
            }
            let update = Update {
                rule: Rule {
                    kind: self.kind,
                    hyper: self.hyper,
                    step: self.steps as i32,
                    grad_scale,
                },
                state: RefCell::new(state.as_mut_slice()),
                grad_sq: Cell::new(0.0),
            };
            var.as_tensor().inplace_op2(&grad.contiguous()?, &update)?;
            *grad_sq = update.grad_sq.get();
        }
        Ok(self.grad_sq.iter().sum::<f64>().sqrt())
    }

    /// Per variable (in the order given to `new`), the sum of squared gradients of the last step.
    pub fn grad_squares(&self) -> &[f64] {
        &self.grad_sq
    }

    /// Named state tensors (and the step count) for a checkpoint.
    pub fn state_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![(
            format!("{prefix}/steps"),
            Tensor::new(&[self.steps as i64], &Device::Cpu)?,
        )];
        for (i, (slots, var)) in self.state.iter().zip(&self.vars).enumerate() {
            for j in 0..self.slots {
                let values = match slots.get(j) {
                    Some(slot) => Tensor::from_slice(slot, var.dims(), &Device::Cpu)?,
                    None => Tensor::zeros(var.dims(), DType::F32, &Device::Cpu)?,
                };
                out.push((format!("{prefix}/{i}/{j}"), values));
            }
        }
        Ok(out)
    }

    /// Restores what `state_tensors` saved; `get` looks a name up in the checkpoint.
    pub fn load_state(&mut self, prefix: &str, get: &dyn Fn(&str) -> Option<Tensor>) -> Result<()> {
        let missing = |name: &str| candle_core::Error::msg(format!("checkpoint lacks optimiser state '{name}'"));
        let steps_name = format!("{prefix}/steps");
        let steps = get(&steps_name).ok_or_else(|| missing(&steps_name))?;
        self.steps = steps.to_vec1::<i64>()?[0] as u64;
        for (i, (slots, var)) in self.state.iter_mut().zip(&self.vars).enumerate() {
            slots.resize(self.slots, Vec::new());
            for (j, slot) in slots.iter_mut().enumerate() {
                let name = format!("{prefix}/{i}/{j}");
                let t = get(&name).ok_or_else(|| missing(&name))?;
                if t.dims() != var.dims() {
                    return Err(candle_core::Error::msg(format!(
                        "optimiser state '{name}' has shape {:?}, expected {:?}",
                        t.dims(),
                        var.dims()
                    )));
                }
                *slot = t.flatten_all()?.to_vec1::<f32>()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OptimizerConfig;
    use candle_core::Device;
    use std::collections::HashMap;

    /// Minimises Σ (x - 3)² over `size` values from x = 0 and returns x after `steps` updates, with the
    /// gradient norm the last update reported.
    fn descend_values(kind: OptimizerKind, lr: f64, steps: usize, size: usize) -> (Vec<f32>, f64) {
        let x = Var::new(vec![0f32; size], &Device::Cpu).unwrap();
        let config = OptimizerConfig {
            kind,
            momentum: 0.5,
            ..OptimizerConfig::default()
        };
        let mut opt = Optimizer::new(kind, Hyper::new(&config, lr), vec![x.clone()]).unwrap();
        let mut norm = 0.0;
        for _ in 0..steps {
            let loss = (x.as_tensor() - 3.0).unwrap().sqr().unwrap().sum_all().unwrap();
            norm = opt.step(&loss.backward().unwrap()).unwrap();
        }
        (x.to_vec1::<f32>().unwrap(), norm)
    }

    fn descend(kind: OptimizerKind, lr: f64, steps: usize) -> f32 {
        descend_values(kind, lr, steps, 1).0[0]
    }

    const KINDS: [OptimizerKind; 4] = [
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
        OptimizerKind::Sgd,
        OptimizerKind::Rmsprop,
    ];

    #[test]
    fn every_optimiser_finds_a_quadratics_minimum() {
        for kind in KINDS {
            let x = descend(kind, 0.05, 400);
            assert!((x - 3.0).abs() < 0.05, "{kind:?} ended at {x}");
        }
    }

    #[test]
    fn tensors_larger_than_a_chunk_update_every_value_and_report_the_norm() {
        // Split into parallel chunks (and a short last one).
        let size = 3 * CHUNK + 5;
        for kind in KINDS {
            let (x, norm) = descend_values(kind, 0.05, 1, size);
            assert!(
                x.iter().all(|v| *v > 0.0 && *v == x[0]),
                "{kind:?} left values unchanged or unequal"
            );
            // The first gradient is -6 everywhere.
            let expected = 6.0 * (size as f64).sqrt();
            assert!(
                (norm - expected).abs() < 1e-6 * expected,
                "{kind:?}: norm {norm}, expected {expected}"
            );
        }
    }

    #[test]
    fn gradients_above_the_global_norm_are_scaled_down_to_it() {
        let (a, b) = (
            Var::new(vec![0f32; 3], &Device::Cpu).unwrap(),
            Var::new(vec![0f32; 1], &Device::Cpu).unwrap(),
        );
        let config = OptimizerConfig {
            momentum: 0.0,
            ..OptimizerConfig::default()
        };
        let mut opt = Optimizer::new(OptimizerKind::Sgd, Hyper::new(&config, 1.0), vec![a.clone(), b.clone()]).unwrap();
        opt.max_grad_norm = 1.2;
        // d/dx Σ (x - 3)² = -6 for each of 4 values: norm 12, scaled by 0.1.
        let loss = ((a.as_tensor() - 3.0).unwrap().sqr().unwrap().sum_all().unwrap()
            + (b.as_tensor() - 3.0).unwrap().sqr().unwrap().sum_all().unwrap())
        .unwrap();
        let norm = opt.step(&loss.backward().unwrap()).unwrap();
        assert!(
            (norm - 12.0).abs() < 1e-6,
            "the norm reported is the one before clipping: {norm}"
        );
        assert_eq!(opt.grad_squares(), [108.0, 36.0]);
        for value in [a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap()].concat() {
            assert!((value - 0.6).abs() < 1e-6, "{value}");
        }
        // Below the limit gradients pass unscaled.
        opt.max_grad_norm = 100.0;
        let loss = (a.as_tensor() - 3.0).unwrap().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        assert!((a.to_vec1::<f32>().unwrap()[0] - (0.6 + 4.8)).abs() < 1e-5);
    }

    #[test]
    fn adam_first_step_moves_by_the_learning_rate() {
        // With bias correction the first Adam step is lr * sign(grad).
        let x = descend(OptimizerKind::Adam, 0.1, 1);
        assert!((x - 0.1).abs() < 1e-5, "{x}");
    }

    #[test]
    fn state_is_held_only_once_a_variable_is_updated_and_checkpoints_the_same_either_way() {
        let config = OptimizerConfig::default();
        let (x, y) = (
            Var::new(&[1f32, 2.0], &Device::Cpu).unwrap(),
            Var::new(&[5f32], &Device::Cpu).unwrap(),
        );
        let mut opt = Optimizer::new(OptimizerKind::Adam, Hyper::new(&config, 0.1), vec![x.clone(), y]).unwrap();
        // A session that never trains (the quality metric's shadow) holds no state.
        assert!(opt.state.iter().all(Vec::is_empty));
        let fresh: HashMap<String, Tensor> = opt.state_tensors("o").unwrap().into_iter().collect();
        // Only x gets a gradient: y's state stays unheld.
        let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        assert_eq!(opt.state.iter().map(|s| s.len()).collect::<Vec<_>>(), [2, 0]);
        let saved: HashMap<String, Tensor> = opt.state_tensors("o").unwrap().into_iter().collect();
        let values = |t: &HashMap<String, Tensor>, name: &str| t[name].to_vec1::<f32>().unwrap();
        // An unheld slot saves as the zeros it stands for, in the shape of its variable.
        assert_eq!(
            (values(&fresh, "o/0/1"), values(&saved, "o/1/0")),
            (vec![0.0, 0.0], vec![0.0])
        );
        assert_ne!(values(&saved, "o/0/0"), [0.0, 0.0]);
        // Loaded into an optimiser that never stepped, the state is all there.
        let mut other = Optimizer::new(OptimizerKind::Adam, Hyper::new(&config, 0.1), opt.vars.clone()).unwrap();
        other.load_state("o", &|name| saved.get(name).cloned()).unwrap();
        let reloaded: HashMap<String, Tensor> = other.state_tensors("o").unwrap().into_iter().collect();
        assert_eq!(other.steps, 1);
        for name in ["o/0/0", "o/0/1", "o/1/0", "o/1/1"] {
            assert_eq!(values(&reloaded, name), values(&saved, name), "{name}");
        }
    }
}
