//! The fused kernels against burn's own ops: values and gradients (tests of `super`).

use super::*;
use burn::nn::LayerNormConfig;
use burn::tensor::activation::softmax;
use burn::tensor::{Distribution, TensorData};

type AD = Autodiff<Flex>;

fn random(shape: [usize; 2], seed: u64) -> Tensor<AD, 2> {
    let _rng = crate::bert::BACKEND_RNG.lock().unwrap_or_else(|p| p.into_inner());
    AD::seed(&Default::default(), seed);
    Tensor::<AD, 2>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default()).require_grad()
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0f32, f32::max);
    assert!(worst < tol, "{what}: worst relative difference {worst}");
}

/// burn's composition: split heads, scores, mask, softmax, (fixed dropout factors), · v.
fn reference(
    q: Tensor<AD, 2>,
    k: Tensor<AD, 2>,
    v: Tensor<AD, 2>,
    keep: &[i64],
    texts: usize,
    heads: usize,
    factors: Option<Vec<f32>>,
) -> Tensor<AD, 2> {
    let [rows, d] = q.dims();
    let len = rows / texts;
    let split = |t: Tensor<AD, 2>| t.reshape([texts, len, heads, d / heads]).swap_dims(1, 2);
    let device = Default::default();
    let pad = Tensor::<AD, 1, burn::tensor::Int>::from_data(TensorData::new(keep.to_vec(), [rows]), &device)
        .equal_elem(0)
        .reshape([texts, 1, 1, len])
        .expand([texts, heads, len, len]);
    let scores = split(q)
        .matmul(split(k).swap_dims(2, 3))
        .mul_scalar(1.0 / ((d / heads) as f64).sqrt())
        .mask_fill(pad, f32::MIN);
    let mut p = softmax(scores, 3);
    if let Some(f) = factors {
        p = p * Tensor::<AD, 4>::from_data(TensorData::new(f, [texts, heads, len, len]), &device);
    }
    p.matmul(split(v)).swap_dims(1, 2).reshape([rows, d])
}

#[test]
fn attention_matches_burns_ops_forward_and_backward_with_and_without_dropout() {
    let (texts, len, heads, d) = (3, 5, 2, 8);
    let rows = texts * len;
    // Text 0 full, text 1 two padded keys, text 2 only [CLS] kept.
    let keep: Vec<i64> = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]].concat();
    let keep = Arc::new(keep);
    let weights = random([rows, d], 9);
    for p in [0.0f32, 0.3] {
        let (q, k, v) = (random([rows, d], 1), random([rows, d], 2), random([rows, d], 3));
        let shape = AttentionShape { texts, len, heads, hidden: d, dropout: p };
        let seed = 77;
        let (qh, kh, vh) = (values(q.clone()), values(k.clone()), values(v.clone()));
        let (ctx, probs) = attention_forward(&qh, &kh, &vh, &keep, shape, seed);
        let factors = (p > 0.0).then(|| {
            let mut all = vec![0.0f32; texts * heads * len * len];
            for (s, c) in all.chunks_mut(len * len).enumerate() {
                dropout_factors(c, p, seed, s as u64);
            }
            assert!(all.contains(&0.0) && all.iter().any(|&m| m > 1.0));
            all
        });
        let want = reference(q.clone(), k.clone(), v.clone(), &keep, texts, heads, factors);
        close(&ctx, &values(want.clone()), 1e-5, "context");
        // Loss Σ ctx ⊙ w: its gradient wrt ctx is w.
        let grads = (want * weights.clone().detach()).sum().backward();
        let state = AttentionState { q: qh, k: kh, v: vh, probs, shape, seed };
        let [dq, dk, dv] = attention_backward(&state, &values(weights.clone()));
        close(&dq, &values(q.grad(&grads).unwrap()), 1e-4, "dq");
        close(&dk, &values(k.grad(&grads).unwrap()), 1e-4, "dk");
        close(&dv, &values(v.grad(&grads).unwrap()), 1e-4, "dv");
        // Through the autodiff op itself (the seed then comes from the backend).
        let out = attention(q.clone(), k.clone(), v.clone(), &keep, len, heads, p as f64);
        if p == 0.0 {
            close(&values(out.clone()), &ctx, 1e-6, "op forward");
            let g = (out * weights.clone().detach()).sum().backward();
            close(&values(q.grad(&g).unwrap()), &dq, 1e-6, "op dq");
        }
    }
}

#[test]
fn add_layer_norm_matches_burns_layer_norm_forward_and_backward() {
    let (rows, d) = (150, 24); // more than one task of NORM_ROWS rows
    let device = Default::default();
    let mut norm = LayerNormConfig::new(d).with_epsilon(1e-12).init::<AD>(&device);
    norm.gamma = burn::module::Param::from_tensor(
        random([1, d], 4).reshape([d]).add_scalar(1.0).detach().require_grad(),
    );
    norm.beta =
        Some(burn::module::Param::from_tensor(random([1, d], 5).reshape([d]).detach().require_grad()));
    let (x, r, w) = (
        random([rows, d], 6).mul_scalar(3.0).add_scalar(2.0).detach().require_grad(),
        random([rows, d], 7),
        random([rows, d], 8).detach(),
    );
    let fused = add_layer_norm(x.clone(), r.clone(), &norm, 1e-12);
    let plain = norm.forward(x.clone() + r.clone());
    close(&values(fused.clone()), &values(plain.clone()), 1e-5, "forward");
    let gf = (fused * w.clone()).sum().backward();
    let gp = (plain * w).sum().backward();
    close(&values(x.grad(&gf).unwrap()), &values(x.grad(&gp).unwrap()), 1e-4, "dx");
    close(&values(r.grad(&gf).unwrap()), &values(r.grad(&gp).unwrap()), 1e-4, "dresidual");
    let (gamma, beta) = (norm.gamma.val(), norm.beta.as_ref().unwrap().val());
    close(&values(gamma.grad(&gf).unwrap()), &values(gamma.grad(&gp).unwrap()), 1e-4, "dgamma");
    close(&values(beta.grad(&gf).unwrap()), &values(beta.grad(&gp).unwrap()), 1e-4, "dbeta");
}
