//! burn's AdamW on the device, with PyTorch's global gradient-norm clipping folded into its
//! per-parameter step, for accelerator backends (CPU backends use [`crate::optim::HostAdamW`]).
//!
//! PyTorch clips with two multi-tensor kernels (`_foreach_norm`, `_foreach_mul_`). burn 0.21 has
//! no multi-tensor ops, and a GPU step of a small model is bound by kernel launches, so where the
//! ops go decides how many launches there are: the norm is one reduction over all gradients laid
//! end to end ([`global_grad_norm`]), and the clip factor, shaped for each parameter rank ahead
//! of the step, multiplies each gradient inside that parameter's AdamW update, where burn-fusion
//! fuses it with the update's own element-wise ops. Counted on lavapipe (a tiny BERT, 63 steps):
//! clipping cost ≈ 174 kernel launches per step before (a square, one or two reductions, an add
//! and a multiply per parameter), ≈ 60 after. No maintained crate clips burn gradients by their
//! global norm (burn's `GradientClipping::Norm` clips each parameter on its own), hence this file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, GradientsParams, Optimizer, SimpleOptimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use crate::optim::AdamWParams;

/// The L2 norm over all of `model`'s gradients in `grads`, on the device (nothing is read
/// back); `None` when no parameter has a gradient.
///
/// The gradients are laid end to end (one copy each) and reduced in stages along rows of
/// [`NORM_ROW`] values: a handful of launches whatever the model's size, where one `square` and
/// one or two reductions per parameter took two to three each. Rows, not one full `sum`: on
/// burn 0.21's wgpu runtime (Mesa lavapipe, measured) a reduction along an axis longer than
/// 65,532 values drops the rest (`sum` of 10⁶ ones: 262,132; `sum_dim` over 70,001: 65,532), so
/// the norm of a 12-million-value embedding matrix came out short; every axis reduced here is at
/// most [`NORM_ROW`] long (the test `the_global_norm_of_large_gradients_is_exact` holds it there).
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &GradientsParams,
) -> Option<Tensor<B::InnerBackend, 1>> {
    struct Flatten<'a, B: AutodiffBackend> {
        grads: &'a GradientsParams,
        flat: Vec<Tensor<B::InnerBackend, 1>>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                let n = g.shape().num_elements();
                self.flat.push(g.reshape([n]));
            }
        }
    }
    let mut all = Flatten::<B> { grads, flat: Vec::new() };
    model.visit(&mut all);
    let device = all.flat.first()?.device();
    Some(sum_by_rows(all.flat, NORM_ROW, &device).sqrt())
}

/// The longest axis [`global_grad_norm`] reduces along (a power of two, far below 65,532).
pub const NORM_ROW: usize = 32_768;

/// `Σ x²` over all values of `parts`, as a one-element tensor: the parts and enough zeros to fill
/// the last row are concatenated, squared, and summed along rows of `row` values until one
/// value is left.
fn sum_by_rows<B: Backend>(mut parts: Vec<Tensor<B, 1>>, row: usize, device: &B::Device) -> Tensor<B, 1> {
    let pad = |n: usize| if n > row { n.div_ceil(row) * row - n } else { 0 };
    let n: usize = parts.iter().map(|p| p.dims()[0]).sum();
    if pad(n) > 0 {
        parts.push(Tensor::zeros([pad(n)], device));
    }
    let mut x = Tensor::cat(parts, 0).square();
    loop {
        let n = x.dims()[0];
        if n <= row {
            return x.reshape([1, n]).sum_dim(1).reshape([1]);
        }
        let rows = n / row; // `n` is a whole number of rows (padded above or below)
        x = x.reshape([rows, row]).sum_dim(1).reshape([rows]);
        if pad(rows) > 0 {
            x = Tensor::cat(vec![x, Tensor::zeros([pad(rows)], device)], 0);
        }
    }
}

/// PyTorch's `clip_grad_norm_` factor on the device: `min(1, max / (norm + 1e-6))`.
pub fn clip_factor_on_device<B: Backend>(norm: Tensor<B, 1>, max_grad_norm: f64) -> Tensor<B, 1> {
    norm.add_scalar(1e-6).recip().mul_scalar(max_grad_norm).clamp_max(1.0)
}

/// Global gradient-norm clipping for device optimizers, as PyTorch's `clip_grad_norm_` does it:
/// the L2 norm over all gradients ([`global_grad_norm`]), then every
/// gradient times `min(1, max / (norm + 1e-6))`, all on the device. No value is read back, so a
/// GPU step never waits for the host (a read-back per step would). Returns the norm (a
/// one-element tensor; `None` without gradients). burn's `GradientClippingConfig::Norm` clips
/// each parameter on its own, not the global norm that `clip_grad_norm_` (and Hugging Face's
/// `max_grad_norm`) uses, hence this function. The engine's [`DeviceAdamW`]
/// does the same inside its step, with fewer kernel launches.
pub fn clip_device_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    grads: &mut GradientsParams,
    max_grad_norm: Option<f64>,
) -> Option<Tensor<B::InnerBackend, 1>> {
    struct Scale<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        factor: Tensor<B::InnerBackend, 1>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                let factor = self.factor.clone().reshape([1; D]);
                self.grads.register::<B::InnerBackend, D>(param.id, g.mul(factor));
            }
        }
    }
    let norm = global_grad_norm::<B, M>(model, grads)?;
    if let Some(max) = max_grad_norm {
        let factor = clip_factor_on_device(norm.clone(), max);
        model.visit(&mut Scale::<B> { grads, factor });
    }
    Some(norm)
}

/// Splits `grads` by learning-rate factor: the gradients of parameters without a factor, then
/// one group per distinct factor (for device optimizers, stepped once per group).
pub fn split_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    model: &M,
    mut grads: GradientsParams,
    factors: &HashMap<ParamId, f64>,
) -> (GradientsParams, Vec<(f64, GradientsParams)>) {
    struct Split<'a, B: AutodiffBackend> {
        grads: &'a mut GradientsParams,
        factors: &'a HashMap<ParamId, f64>,
        groups: Vec<(f64, GradientsParams)>,
        _b: std::marker::PhantomData<B>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Split<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let Some(&f) = self.factors.get(&param.id) else { return };
            let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) else { return };
            let group = match self.groups.iter().position(|(x, _)| *x == f) {
                Some(i) => i,
                None => {
                    self.groups.push((f, GradientsParams::new()));
                    self.groups.len() - 1
                }
            };
            self.groups[group].1.register::<B::InnerBackend, D>(param.id, g);
        }
    }
    let mut split =
        Split::<B> { grads: &mut grads, factors, groups: Vec::new(), _b: std::marker::PhantomData };
    model.visit(&mut split);
    let groups = split.groups;
    (grads, groups)
}

/// The factor the next step multiplies every gradient by (`None`: no clipping), shared between
/// [`DeviceAdamW`] and the [`ScaledAdamW`] inside its adaptor.
type GradScale<B> = Arc<Mutex<Option<ScaleByRank<B>>>>;

/// One clip factor, shaped `[1; D]` for each parameter rank `D` up to [`ScaleByRank::RANKS`]
/// ahead of the optimizer step: a reshape inside the step would end the fused kernel before it,
/// and the multiply would run as a kernel of its own instead of fusing with AdamW's update.
struct ScaleByRank<B: Backend> {
    /// Index `D - 1`: the factor as a `Tensor<B, D>`'s primitive.
    shaped: Vec<burn::tensor::TensorPrimitive<B>>,
    factor: Tensor<B, 1>,
}

impl<B: Backend> Clone for ScaleByRank<B> {
    fn clone(&self) -> Self {
        ScaleByRank { shaped: self.shaped.clone(), factor: self.factor.clone() }
    }
}

impl<B: Backend> ScaleByRank<B> {
    /// Parameters of rank 1 to 4 (all of BERT's, the MLP's and NCF's) get a pre-shaped factor.
    const RANKS: usize = 4;

    fn new(factor: Tensor<B, 1>) -> Self {
        let shaped = vec![
            factor.clone().into_primitive(),
            factor.clone().reshape([1, 1]).into_primitive(),
            factor.clone().reshape([1, 1, 1]).into_primitive(),
            factor.clone().reshape([1, 1, 1, 1]).into_primitive(),
        ];
        debug_assert_eq!(shaped.len(), Self::RANKS);
        ScaleByRank { shaped, factor }
    }

    /// The factor shaped `[1; D]`.
    fn of_rank<const D: usize>(&self) -> Tensor<B, D> {
        match self.shaped.get(D.wrapping_sub(1)) {
            // `shaped[D - 1]` was made by reshaping to `[1; D]`: a rank-D primitive.
            Some(p) => Tensor::from_primitive(p.clone()),
            None => self.factor.clone().reshape([1; D]),
        }
    }
}

/// burn's [`AdamW`] with each gradient first multiplied by a one-element factor when one is set.
/// Its state is AdamW's, so its checkpoints are AdamW's records.
#[derive(Clone)]
pub struct ScaledAdamW<B: Backend> {
    adamw: AdamW,
    scale: GradScale<B>,
}

impl<B: Backend> SimpleOptimizer<B> for ScaledAdamW<B> {
    type State<const D: usize> = <AdamW as SimpleOptimizer<B>>::State<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let factor = self.scale.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| s.of_rank::<D>());
        let grad = match factor {
            Some(f) => grad * f,
            None => grad,
        };
        self.adamw.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <AdamW as SimpleOptimizer<B>>::to_device(state, device)
    }
}

/// The device optimizer of [`crate::engine`]: AdamW with PyTorch's global gradient-norm
/// clipping and per-parameter learning-rate factors.
pub struct DeviceAdamW<B: AutodiffBackend, M: AutodiffModule<B>> {
    adaptor: OptimizerAdaptor<ScaledAdamW<B::InnerBackend>, M, B>,
    scale: GradScale<B::InnerBackend>,
}

/// The record of a [`DeviceAdamW`] (AdamW's moments per parameter), for checkpoints.
pub type DeviceAdamWRecord<B, M> =
    <OptimizerAdaptor<ScaledAdamW<<B as AutodiffBackend>::InnerBackend>, M, B> as Optimizer<M, B>>::Record;

impl<B: AutodiffBackend, M: AutodiffModule<B>> DeviceAdamW<B, M> {
    /// AdamW with `params` (PyTorch's meaning of each), no state yet.
    pub fn new(params: AdamWParams) -> Self {
        let adamw = burn::optim::AdamWConfig::new()
            .with_beta_1(params.beta_1)
            .with_beta_2(params.beta_2)
            .with_epsilon(params.epsilon)
            .with_weight_decay(params.weight_decay)
            .build();
        let scale = GradScale::default();
        let adaptor = OptimizerAdaptor::from(ScaledAdamW { adamw, scale: scale.clone() });
        DeviceAdamW { adaptor, scale }
    }

    /// One update of every parameter with a gradient: the gradients are first clipped to
    /// `max_grad_norm` as `clip_grad_norm_` does (when set), and parameters in `lr_factors` step
    /// at `lr` times their factor. Nothing is read back from the device.
    pub fn step(
        &mut self,
        lr: f64,
        model: M,
        grads: GradientsParams,
        max_grad_norm: Option<f64>,
        lr_factors: &HashMap<ParamId, f64>,
    ) -> M {
        let factor = max_grad_norm.and_then(|max| {
            global_grad_norm::<B, M>(&model, &grads).map(|n| ScaleByRank::new(clip_factor_on_device(n, max)))
        });
        *self.scale.lock().unwrap_or_else(|e| e.into_inner()) = factor;
        let model = if lr_factors.is_empty() {
            self.adaptor.step(lr, model, grads)
        } else {
            // Parameters with their own rate: one more step per factor, over their gradients alone.
            let (rest, groups) = split_grads::<B, M>(&model, grads, lr_factors);
            let mut model = self.adaptor.step(lr, model, rest);
            for (f, g) in groups {
                model = self.adaptor.step(lr * f, model, g);
            }
            model
        };
        *self.scale.lock().unwrap_or_else(|e| e.into_inner()) = None;
        model
    }

    /// The optimizer's state, for a checkpoint.
    pub fn to_record(&self) -> DeviceAdamWRecord<B, M> {
        self.adaptor.to_record()
    }

    /// This optimizer with the state of a checkpoint.
    pub fn load_record(mut self, record: DeviceAdamWRecord<B, M>) -> Self {
        self.adaptor = self.adaptor.load_record(record);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::optim::AdamWConfig;

    type AD = Autodiff<Flex>;

    /// Staged sums against the sum of squares done by hand, with rows of 4 so that the parts
    /// need padding at each of three stages (23 values → 6 rows → 2 rows → 1).
    #[test]
    fn sums_of_squares_by_rows_match_the_hand_sum() {
        let device = Default::default();
        let parts = |lens: &[usize]| -> (Vec<Tensor<Flex, 1>>, f64) {
            let mut k = 0.0f32;
            let mut expect = 0.0f64;
            let mut out = Vec::new();
            for &n in lens {
                let v: Vec<f32> = (0..n)
                    .map(|_| {
                        k += 1.0;
                        k * 0.5 - 3.0
                    })
                    .collect();
                expect += v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
                out.push(Tensor::from_data(burn::tensor::TensorData::new(v, [n]), &device));
            }
            (out, expect)
        };
        for lens in [&[23][..], &[3, 9, 11], &[4], &[1], &[2, 2], &[17, 64, 5]] {
            let (p, expect) = parts(lens);
            let got: f32 = sum_by_rows(p, 4, &device).into_scalar().elem();
            assert!((got as f64 - expect).abs() < 1e-4 * expect.max(1.0), "{lens:?}: {got} vs {expect}");
        }
        let (p, expect) = parts(&[70_001, 3]);
        let got: f32 = sum_by_rows(p, NORM_ROW, &device).into_scalar().elem();
        assert!((got as f64 - expect).abs() < 1e-5 * expect, "{got} vs {expect}");
    }

    /// A linear layer and the gradients of `Σ (x·W + b)·s` for a scale `s`: ∂W = xᵀ·s, ∂b = s.
    fn grads_scaled(lin: &burn::nn::Linear<AD>, s: f32) -> GradientsParams {
        let device = Default::default();
        let x = Tensor::<AD, 2>::from_data([[3.0f32, -4.0, 1.0]], &device);
        let loss = lin.forward(x).sum().mul_scalar(s);
        GradientsParams::from_grads(loss.backward(), lin)
    }

    /// A 3 → 2 linear layer with set weights (a fresh layer's lazily drawn weights could differ
    /// between clones).
    fn layer() -> burn::nn::Linear<AD> {
        let device = Default::default();
        let mut l = burn::nn::LinearConfig::new(3, 2).init::<AD>(&device);
        l.weight =
            Param::from_tensor(Tensor::from_data([[0.1f32, -0.2], [0.3, 0.05], [-0.4, 0.25]], &device));
        l.bias = Some(Param::from_tensor(Tensor::from_data([0.01f32, -0.02], &device)));
        l
    }

    fn values(lin: &burn::nn::Linear<AD>) -> Vec<f32> {
        let mut v: Vec<f32> = lin.weight.val().into_data().to_vec().unwrap();
        v.extend(lin.bias.as_ref().unwrap().val().into_data().to_vec::<f32>().unwrap());
        v
    }

    /// Clipping inside the step is `clip_grad_norm_` then AdamW: two steps with gradients above
    /// and below the maximum match burn's AdamW on gradients clipped beforehand, and differ from
    /// AdamW without clipping (Adam's first step ignores a gradient's scale, its second does not).
    #[test]
    fn clipping_inside_the_step_matches_clipping_before_it() {
        let params = AdamWParams { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: 0.01 };
        let start = layer();
        let lr = 0.05;
        // Step 1: ‖g‖ = 20·√(2·(9 + 16 + 1) + 2) ≈ 147 > 2 (clipped); step 2: ‖g‖ ≈ 0.74 < 2.
        let (s1, s2, max) = (20.0, 0.1, 2.0);
        let mut ours = DeviceAdamW::<AD, burn::nn::Linear<AD>>::new(params);
        let none = HashMap::new();
        let m = ours.step(lr, start.clone(), grads_scaled(&start, s1), Some(max), &none);
        let m = ours.step(lr, m.clone(), grads_scaled(&m, s2), Some(max), &none);
        let adamw = || {
            AdamWConfig::new()
                .with_beta_1(params.beta_1)
                .with_beta_2(params.beta_2)
                .with_epsilon(params.epsilon)
                .with_weight_decay(params.weight_decay)
                .init::<AD, burn::nn::Linear<AD>>()
        };
        let (mut reference, mut unclipped) = (adamw(), adamw());
        let stepped = |o: &mut burn::optim::adaptor::OptimizerAdaptor<AdamW, _, AD>, clip: bool| {
            let mut r = start.clone();
            for s in [s1, s2] {
                let mut g = grads_scaled(&r, s);
                if clip {
                    clip_device_grads::<AD, _>(&r, &mut g, Some(max));
                }
                r = o.step(lr, r, g);
            }
            values(&r)
        };
        let (want, plain, got) = (stepped(&mut reference, true), stepped(&mut unclipped, false), values(&m));
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "ours {got:?}\nreference {want:?}");
        }
        let apart = got.iter().zip(&plain).map(|(g, p)| (g - p).abs()).fold(0.0f32, f32::max);
        assert!(apart > 1e-3, "clipping made no difference: {got:?} vs {plain:?}");
        // Without a maximum the step is AdamW's own.
        let mut ours = DeviceAdamW::<AD, burn::nn::Linear<AD>>::new(params);
        let m = ours.step(lr, start.clone(), grads_scaled(&start, s1), None, &none);
        let m = ours.step(lr, m.clone(), grads_scaled(&m, s2), None, &none);
        for (g, p) in values(&m).iter().zip(&plain) {
            assert!((g - p).abs() < 1e-6, "{g} vs {p}");
        }
    }

    /// The record round-trips: a step after loading continues as the uninterrupted optimizer.
    #[test]
    fn a_loaded_record_continues_the_run() {
        let params = AdamWParams { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: 0.0 };
        let start = layer();
        let none = HashMap::new();
        let mut a = DeviceAdamW::<AD, burn::nn::Linear<AD>>::new(params);
        let m = a.step(0.1, start.clone(), grads_scaled(&start, 5.0), Some(1.0), &none);
        let mut b = DeviceAdamW::<AD, burn::nn::Linear<AD>>::new(params).load_record(a.to_record());
        let next_a = a.step(0.1, m.clone(), grads_scaled(&m, 0.2), Some(1.0), &none);
        let next_b = b.step(0.1, m.clone(), grads_scaled(&m, 0.2), Some(1.0), &none);
        let mut fresh = DeviceAdamW::<AD, burn::nn::Linear<AD>>::new(params);
        let next_fresh = fresh.step(0.1, m.clone(), grads_scaled(&m, 0.2), Some(1.0), &none);
        assert_eq!(values(&next_a), values(&next_b));
        assert_ne!(values(&next_a), values(&next_fresh), "the moments matter");
    }
}
