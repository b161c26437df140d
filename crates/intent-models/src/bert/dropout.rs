//! Dropout for `Autodiff<Flex>` tensors with a fast mask: burn 0.21 draws each Bernoulli sample
//! through its generic distribution sampler, one element at a time, which `perf` put at ~11 % of
//! a fine-tuning step of all-MiniLM-L6-v2 on CPU (BERT has 19 dropouts per forward pass). Here the
//! mask comes from ChaCha8 words compared with a threshold, over rayon's threads, and the
//! backward pass multiplies by the same mask. The seed of each mask is drawn from burn's backend
//! generator, so `Backend::seed` still fixes every mask (reproducible and resumable training).
//! Other backends use burn's `Dropout`.

use std::any::TypeId;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::nn::Dropout;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorPrimitive};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::gelu::{from_host, same, to_host};

/// Elements per mask chunk (each chunk has its own ChaCha8 stream, so chunks run in parallel
/// and the mask does not depend on the thread count).
const CHUNK: usize = 1 << 14;

/// The kept-and-scaled mask: `1/(1−p)` with probability `1−p`, else 0.
fn mask(n: usize, p: f64, seed: u64) -> Vec<f32> {
    let threshold = (p * 4_294_967_296.0).min(4_294_967_295.0) as u32;
    let scale = (1.0 / (1.0 - p)) as f32;
    let mut m = vec![0.0f32; n];
    m.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(i as u64);
        let mut words = vec![0u32; c.len()];
        rng.fill(&mut words[..]);
        c.iter_mut().zip(&words).for_each(|(m, &w)| *m = if w >= threshold { scale } else { 0.0 });
    });
    m
}

#[derive(Debug)]
struct FastDropout;

impl Backward<Flex, 1> for FastDropout {
    type State = Arc<Vec<f32>>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        if let Some(node) = parent {
            let (mut g, shape) = to_host(grad);
            multiply(&mut g, &ops.state);
            grads.register::<Flex>(node.id, from_host(g, shape));
        }
    }
}

fn multiply(x: &mut [f32], m: &[f32]) {
    x.par_chunks_mut(CHUNK)
        .zip(m.par_chunks(CHUNK))
        .for_each(|(x, m)| x.iter_mut().zip(m).for_each(|(x, m)| *x *= m));
}

/// A mask seed from burn's CPU backend generator (seeded by `Backend::seed`).
pub(crate) fn backend_seed() -> u64 {
    let bits: Vec<f32> = Tensor::<Flex, 1>::random([2], Distribution::Uniform(0.0, 1.0), &Default::default())
        .into_data()
        .to_vec()
        .expect("f32");
    ((bits[0].to_bits() as u64) << 32) | bits[1].to_bits() as u64
}

fn autodiff_flex_dropout<const D: usize>(x: Tensor<Autodiff<Flex>, D>, p: f64) -> Tensor<Autodiff<Flex>, D> {
    let seed = backend_seed();
    let x = x.into_primitive().tensor();
    let (mut v, shape) = to_host(x.primitive.clone());
    let m = Arc::new(mask(v.len(), p, seed));
    multiply(&mut v, &m);
    let y = from_host(v, shape);
    let out = match FastDropout.prepare::<NoCheckpointing>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(m, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `dropout.forward(x)`, with the fast mask on `Autodiff<Flex>` (see the module doc). Identity
/// when not training (backends without autodiff) or when the probability is 0.
pub fn dropout<B: Backend, const D: usize>(dropout: &Dropout, x: Tensor<B, D>) -> Tensor<B, D> {
    if dropout.prob == 0.0 || !B::ad_enabled(&x.device()) {
        return x;
    }
    if TypeId::of::<B>() == TypeId::of::<Autodiff<Flex>>() {
        return same(autodiff_flex_dropout::<D>(same(x), dropout.prob));
    }
    dropout.forward(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;
    use burn::tensor::TensorData;

    #[test]
    fn drops_the_right_share_scales_the_rest_and_routes_gradients_through_the_mask() {
        let _rng = crate::bert::BACKEND_RNG.lock().unwrap_or_else(|p| p.into_inner());
        type AD = Autodiff<Flex>;
        let device = Default::default();
        let n = 100_000;
        let m = mask(n, 0.1, 7);
        let dropped = m.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
        assert!(m.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        assert_eq!(m, mask(n, 0.1, 7), "same seed, same mask");
        assert_ne!(m, mask(n, 0.1, 8));

        let d = DropoutConfig::new(0.25).init();
        AD::seed(&device, 3);
        let x =
            Tensor::<AD, 2>::from_data(TensorData::new(vec![2.0f32; 600], [20, 30]), &device).require_grad();
        let y = dropout(&d, x.clone());
        let yv: Vec<f32> = y.clone().into_data().to_vec().unwrap();
        let g = (y * Tensor::<AD, 2>::from_data(TensorData::new(vec![3.0f32; 600], [20, 30]), &device))
            .sum()
            .backward();
        let gv: Vec<f32> = x.grad(&g).unwrap().into_data().to_vec().unwrap();
        for (y, g) in yv.iter().zip(&gv) {
            // kept: y = 2/0.75, ∂ = 3/0.75; dropped: both 0.
            assert!(
                (*y == 0.0 && *g == 0.0) || ((y - 2.0 / 0.75).abs() < 1e-5 && (g - 3.0 / 0.75).abs() < 1e-5),
                "{y} {g}"
            );
        }
        AD::seed(&device, 3);
        let again: Vec<f32> = dropout(&d, x.clone()).into_data().to_vec().unwrap();
        assert_eq!(yv, again, "the backend seed fixes the mask");
        // Not training: identity.
        let plain = Tensor::<Flex, 2>::from_data(TensorData::new(vec![2.0f32; 6], [2, 3]), &device);
        assert_eq!(dropout(&d, plain).into_data().to_vec::<f32>().unwrap(), vec![2.0; 6]);
    }
}
