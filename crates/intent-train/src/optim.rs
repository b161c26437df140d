//! AdamW computed on the host in one fused pass per parameter, for CPU backends.
//!
//! burn's `AdamW` runs about fifteen element-wise tensor ops per parameter and step, each a
//! full pass over memory; on a CPU backend that, not the matrix products, dominates a step of
//! the bag-of-words MLP (profiled: ~60% of the time in element-wise kernels). This optimizer
//! does the same update (PyTorch's `torch.optim.AdamW`: decoupled weight decay, bias-corrected
//! moments, ε outside the square root) in a single multi-threaded loop over host buffers. No
//! maintained crate offers a fused optimizer step for burn 0.21 tensors, hence this file. GPU
//! backends use burn's `AdamW` on the device ([`crate::device_adamw`]).

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rayon::prelude::*;

/// AdamW hyperparameters (PyTorch's meaning).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// β1.
    pub beta_1: f32,
    /// β2.
    pub beta_2: f32,
    /// ε, added to the square root of the second moment.
    pub epsilon: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
}

/// Host state of one parameter: a master copy of its values and the two moments.
struct State {
    value: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

/// Fused host AdamW. The state lives in host memory, keyed by parameter id; the master copy of
/// each parameter saves reading the parameter back from the backend every step.
pub struct HostAdamW {
    params: AdamWParams,
    states: HashMap<ParamId, State>,
    time: i32,
    /// Learning-rate factors of some parameters (a fresh head trained faster than the encoder).
    lr_factors: HashMap<ParamId, f64>,
}

/// One parameter's id with its first and second moments.
pub type ParamMoments<'a> = (ParamId, &'a [f32], &'a [f32]);

impl HostAdamW {
    /// A fresh optimizer (moments start at zero, as in PyTorch).
    pub fn new(params: AdamWParams) -> Self {
        HostAdamW { params, states: HashMap::new(), time: 0, lr_factors: HashMap::new() }
    }

    /// Multiplies the learning rate of the parameters named here (PyTorch's parameter groups).
    pub fn set_lr_factors(&mut self, factors: HashMap<ParamId, f64>) {
        self.lr_factors = factors;
    }

    /// One update of every parameter that has a gradient. With `max_grad_norm`, the gradients
    /// are first scaled as PyTorch's `clip_grad_norm_` does (one L2 norm over all of them,
    /// factor `max / (norm + 1e-6)` when the norm exceeds `max`). Returns the model and the
    /// gradients' global norm before clipping.
    pub fn step<B: AutodiffBackend, M: AutodiffModule<B>>(
        &mut self,
        lr: f64,
        model: M,
        mut grads: GradientsParams,
        max_grad_norm: Option<f64>,
    ) -> (M, f64) {
        self.time += 1;
        let mut host =
            HostGrads::<B> { grads: &mut grads, out: HashMap::new(), _b: std::marker::PhantomData };
        model.visit(&mut host);
        let host = host.out;
        let norm = host
            .values()
            .map(|g| {
                g.par_chunks(1 << 16)
                    .map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
                    .sum::<f64>()
            })
            .sum::<f64>()
            .sqrt();
        let scale = clip_factor(norm, max_grad_norm);
        let mut mapper =
            Mapper::<B> { opt: self, lr: lr as f32, grads: host, scale, _b: std::marker::PhantomData };
        (model.map(&mut mapper), norm)
    }

    /// The optimizer's step count and moments, for a checkpoint.
    pub fn moments(&self) -> (i32, Vec<ParamMoments<'_>>) {
        (self.time, self.states.iter().map(|(id, s)| (*id, s.m.as_slice(), s.v.as_slice())).collect())
    }

    /// An optimizer continuing from [`HostAdamW::moments`]; the parameter values are read from
    /// the model at the next step.
    pub fn restore(
        params: AdamWParams,
        time: i32,
        moments: impl IntoIterator<Item = (ParamId, Vec<f32>, Vec<f32>)>,
    ) -> Self {
        let states = moments.into_iter().map(|(id, m, v)| (id, State { value: Vec::new(), m, v })).collect();
        HostAdamW { params, states, time, lr_factors: HashMap::new() }
    }

    /// The update of one flat parameter, in place.
    pub fn update(&self, lr: f32, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        self.update_scaled(lr, p, g, 1.0, m, v)
    }

    /// [`HostAdamW::update`] with the gradient multiplied by `scale` (clipping).
    fn update_scaled(&self, lr: f32, p: &mut [f32], g: &[f32], scale: f32, m: &mut [f32], v: &mut [f32]) {
        let (params, time) = (self.params, self.time);
        let kernel = |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
            adamw_update(params, time, lr, scale, p, g, m, v)
        };
        // Below a million values, waking the thread pool costs more than it saves.
        const PARALLEL_FROM: usize = 1 << 20;
        const CHUNK: usize = 1 << 16;
        if p.len() < PARALLEL_FROM {
            kernel(p, m, v, g);
        } else {
            p.par_chunks_mut(CHUNK)
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .zip(g.par_chunks(CHUNK))
                .for_each(|(((p, m), v), g)| kernel(p, m, v, g));
        }
    }
}

/// One AdamW update of a flat parameter at step `time` (1-based), in place, with the gradient
/// multiplied by `scale`: PyTorch's `AdamW` (and `Adam` when `weight_decay` is 0).
#[allow(clippy::too_many_arguments)]
pub fn adamw_update(
    params: AdamWParams,
    time: i32,
    lr: f32,
    scale: f32,
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let AdamWParams { beta_1: b1, beta_2: b2, epsilon: eps, weight_decay: wd } = params;
    let bc1 = 1.0 - b1.powi(time);
    let inv_bc2_sqrt = 1.0 / (1.0 - b2.powi(time)).sqrt();
    let decay = 1.0 - lr * wd;
    let step = lr / bc1;
    // Iterator form without index checks, so the loop vectorizes.
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let g = g * scale;
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        *p = *p * decay - step * *m / (v.sqrt() * inv_bc2_sqrt + eps);
    }
}

/// PyTorch's `clip_grad_norm_` factor: `max / (norm + 1e-6)` when the norm exceeds `max`.
pub fn clip_factor(norm: f64, max_grad_norm: Option<f64>) -> f32 {
    match max_grad_norm {
        Some(max) if norm > max => (max / (norm + 1e-6)) as f32,
        _ => 1.0,
    }
}

/// Moves every gradient of the model to host memory, keyed by parameter.
struct HostGrads<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    out: HashMap<ParamId, Vec<f32>>,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for HostGrads<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.out.insert(param.id, g.into_data().convert::<f32>().into_vec().expect("f32 after convert"));
        }
    }
}

struct Mapper<'a, B: AutodiffBackend> {
    opt: &'a mut HostAdamW,
    lr: f32,
    grads: HashMap<ParamId, Vec<f32>>,
    scale: f32,
    _b: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Mapper<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(g) = self.grads.remove(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let inner = tensor.inner();
        let device = inner.device();
        let shape = inner.shape();
        let n = g.len();
        let mut state = self.opt.states.remove(&id).unwrap_or_else(|| State {
            value: Vec::new(),
            m: vec![0.0; n],
            v: vec![0.0; n],
        });
        if state.value.is_empty() {
            state.value = inner.into_data().convert::<f32>().into_vec().expect("f32 after convert");
        }
        let lr = self.opt.lr_factors.get(&id).map_or(self.lr, |f| (self.lr as f64 * f) as f32);
        self.opt.update_scaled(lr, &mut state.value, &g, self.scale, &mut state.m, &mut state.v);
        let updated =
            Tensor::<B::InnerBackend, D>::from_data(TensorData::new(state.value.clone(), shape), &device);
        self.opt.states.insert(id, state);
        Param::from_mapped_value(id, Tensor::from_inner(updated).require_grad(), mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device_adamw::{clip_device_grads, split_grads};

    #[test]
    fn matches_pytorch_adamw_by_hand() {
        // One parameter, two steps, lr 0.1, wd 0.01, betas (0.9, 0.999), eps 1e-8.
        let mut opt =
            HostAdamW::new(AdamWParams { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: 0.01 });
        let (mut p, mut m, mut v) = (vec![1.0f32], vec![0.0f32], vec![0.0f32]);
        opt.time = 1;
        opt.update(0.1, &mut p, &[0.5], &mut m, &mut v);
        // step 1: p = 1·(1 − 0.001) − 0.1·(0.05/0.1)/(sqrt(0.00025/0.001) + 1e-8) = 0.999 − 0.1 = 0.899
        assert!((p[0] - 0.899).abs() < 1e-6, "{}", p[0]);
        opt.time = 2;
        opt.update(0.1, &mut p, &[-0.5], &mut m, &mut v);
        // m = 0.9·0.05 − 0.05 = −0.005; v = 0.999·0.00025 + 0.00025 = 0.00049975
        // m̂ = −0.005/0.19 ; √v̂ = √(0.00049975/0.001999) ; p = 0.899·0.999 − 0.1·m̂/√v̂
        let mh = -0.005f64 / 0.19;
        let vh = (0.000_499_75f64 / (1.0 - 0.999f64.powi(2))).sqrt();
        let expect = 0.899f64 * 0.999 - 0.1 * mh / vh;
        assert!((p[0] as f64 - expect).abs() < 1e-5, "{} vs {expect}", p[0]);
    }

    #[test]
    fn global_norm_clipping_matches_clip_grad_norm() {
        use burn::backend::{Autodiff, Flex};
        type AD = Autodiff<Flex>;
        assert_eq!(clip_factor(0.5, Some(1.0)), 1.0);
        assert_eq!(clip_factor(5.0, None), 1.0);
        assert!((clip_factor(5.0, Some(1.0)) - 1.0 / (5.0 + 1e-6)).abs() < 1e-9);
        // loss = x·w + b + 11·b with x = (3, 4) gives ∂w = (3, 4), ∂b = 12: global norm
        // √(9 + 16 + 144) = 13.
        let device = Default::default();
        let mut lin = burn::nn::LinearConfig::new(2, 1).init::<AD>(&device);
        lin.weight = Param::from_tensor(Tensor::<AD, 2>::zeros([2, 1], &device));
        let x = Tensor::<AD, 2>::from_data([[3.0f32, 4.0]], &device);
        let loss = lin.forward(x).sum() + lin.bias.as_ref().unwrap().val().sum().mul_scalar(11.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &lin);
        let norm = clip_device_grads::<AD, _>(&lin, &mut grads, Some(1.3)).unwrap().into_scalar();
        assert!((norm - 13.0).abs() < 1e-5, "{norm}");
        let gw: Vec<f32> = grads.get::<Flex, 2>(lin.weight.id).unwrap().into_data().to_vec().unwrap();
        let gb: Vec<f32> =
            grads.get::<Flex, 1>(lin.bias.as_ref().unwrap().id).unwrap().into_data().to_vec().unwrap();
        let f = 1.3 / (13.0 + 1e-6);
        assert!(
            (gw[0] - 3.0 * f).abs() < 1e-5
                && (gw[1] - 4.0 * f).abs() < 1e-5
                && (gb[0] - 12.0 * f).abs() < 1e-5,
            "{gw:?} {gb:?}"
        );
        // Below the maximum the gradients stay as they are (the factor is clamped at 1).
        let loss = lin.forward(Tensor::<AD, 2>::from_data([[3.0f32, 4.0]], &device)).sum()
            + lin.bias.as_ref().unwrap().val().sum().mul_scalar(11.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &lin);
        clip_device_grads::<AD, _>(&lin, &mut grads, Some(13.5));
        let gw: Vec<f32> = grads.get::<Flex, 2>(lin.weight.id).unwrap().into_data().to_vec().unwrap();
        assert_eq!(gw, [3.0, 4.0]);
        // The host optimizer reports the same norm before clipping.
        let loss = lin.forward(Tensor::<AD, 2>::from_data([[3.0f32, 4.0]], &device)).sum()
            + lin.bias.as_ref().unwrap().val().sum().mul_scalar(11.0);
        let grads = GradientsParams::from_grads(loss.backward(), &lin);
        let mut opt =
            HostAdamW::new(AdamWParams { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: 0.0 });
        let (_, host_norm) = opt.step::<AD, _>(0.1, lin, grads, Some(1.3));
        assert!((host_norm - 13.0).abs() < 1e-5, "{host_norm}");
    }

    /// A parameter with a learning-rate factor moves that many times further on its first Adam
    /// step (which moves every weight by lr·sign(g)), on the host optimizer and on burn's device
    /// optimizer through [`crate::device_adamw::split_grads`].
    #[test]
    fn lr_factors_scale_the_step_of_their_parameters() {
        use burn::backend::{Autodiff, Flex};
        use burn::optim::{AdamWConfig, Optimizer};
        type AD = Autodiff<Flex>;
        let device = Default::default();
        let lin = || {
            let mut l = burn::nn::LinearConfig::new(2, 1).init::<AD>(&device);
            l.weight = Param::from_tensor(Tensor::<AD, 2>::zeros([2, 1], &device));
            l.bias = Some(Param::from_tensor(Tensor::<AD, 1>::zeros([1], &device)));
            l
        };
        let grads_of = |l: &burn::nn::Linear<AD>| {
            let loss = l.forward(Tensor::<AD, 2>::from_data([[3.0f32, 4.0]], &device)).sum();
            GradientsParams::from_grads(loss.backward(), l)
        };
        let moved = |l: &burn::nn::Linear<AD>| {
            let w: Vec<f32> = l.weight.val().into_data().to_vec().unwrap();
            let b: Vec<f32> = l.bias.as_ref().unwrap().val().into_data().to_vec().unwrap();
            (w[0], b[0])
        };
        let params = AdamWParams { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: 0.0 };
        // Host: the bias at 10× the rate.
        let l = lin();
        let factors: HashMap<ParamId, f64> = [(l.bias.as_ref().unwrap().id, 10.0)].into();
        let grads = grads_of(&l);
        let mut opt = HostAdamW::new(params);
        opt.set_lr_factors(factors.clone());
        let (l, _) = opt.step::<AD, _>(0.01, l, grads, None);
        let (w, b) = moved(&l);
        assert!((w + 0.01).abs() < 1e-5 && (b + 0.1).abs() < 1e-4, "host: w {w}, b {b}");
        // Device: split the gradients and step each group at its rate.
        let l = lin();
        let factors: HashMap<ParamId, f64> = [(l.bias.as_ref().unwrap().id, 10.0)].into();
        let grads = grads_of(&l);
        let (rest, groups) = split_grads::<AD, _>(&l, grads, &factors);
        assert_eq!(groups.len(), 1);
        let mut o = AdamWConfig::new().with_weight_decay(0.0).init::<AD, burn::nn::Linear<AD>>();
        let mut l = o.step(0.01, l, rest);
        for (f, g) in groups {
            l = o.step(0.01 * f, l, g);
        }
        let (w, b) = moved(&l);
        assert!((w + 0.01).abs() < 1e-5 && (b + 0.1).abs() < 1e-4, "device: w {w}, b {b}");
    }
}
