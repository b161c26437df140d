//! Fused training kernels for `Autodiff<Flex>`: self-attention (scores, padding mask, softmax,
//! dropout on the probabilities, context) and residual + LayerNorm, each one autodiff operation
//! with a hand-written backward pass.
//!
//! Why by hand: burn 0.21 has no fused CPU kernels for either. Its autodiff graph runs attention
//! as ~8 tensor ops (with head split/merge copies) and LayerNorm as ~8 more, each a pass over
//! memory and most on one thread; `perf` put those passes at a third of a fine-tuning step of
//! all-MiniLM-L6-v2, against PyTorch's fused kernels. Here attention works per text on the
//! `[tokens, hidden]` projections in place (no split/merge copies), over rayon's threads, and
//! LayerNorm is one pass forward and one backward. The matrix products go through `gemm` (the
//! crate burn's CPU backend uses). Other backends keep burn's ops (see `model.rs`).
//!
//! The backward formulas are the textbook ones (softmax: dS = P ⊙ (dP − rowsum(dP ⊙ P));
//! LayerNorm: dx = rstd · (g·γ − mean(g·γ) − x̂ · mean(g·γ·x̂))); the tests check both against
//! burn's own gradients of the unfused composition.

use std::any::TypeId;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use gemm::{gemm, Parallelism};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::gelu::{from_host, same, to_host, FlexPrimitive};

/// Whether the fused kernels serve backend `B` (training on burn's CPU backend).
pub fn available<B: Backend>() -> bool {
    TypeId::of::<B>() == TypeId::of::<Autodiff<Flex>>()
}

/// `dst [m×n] (+)= alpha · a [m×k] · b [k×n]`, each matrix given by its pointer, row stride and
/// column stride (so transposed and strided views need no copy).
///
/// # Safety
/// Every addressed element must lie inside its buffer, and `dst` must not be written by another
/// thread meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: (*const f32, isize, isize),
    b: (*const f32, isize, isize),
    alpha: f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a.0,
            a.2,
            a.1,
            b.0,
            b.2,
            b.1,
            1.0,
            alpha,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

/// Softmax of each row of `s` (`len` columns) over the kept keys; masked keys get 0 (HF's
/// additive mask of the dtype minimum gives the same). Rows always keep at least [CLS].
fn softmax_rows(s: &mut [f32], keep: &[i64]) {
    let len = keep.len();
    for row in s.chunks_mut(len) {
        let max =
            row.iter().zip(keep).filter(|(_, &k)| k != 0).map(|(x, _)| *x).fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            // No kept key (not produced by tokenizers: [CLS] is always there): uniform, as HF.
            row.iter_mut().for_each(|x| *x = 1.0 / len as f32);
            continue;
        }
        let mut sum = 0.0f32;
        for (x, &k) in row.iter_mut().zip(keep) {
            *x = if k != 0 { (*x - max).exp() } else { 0.0 };
            sum += *x;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|x| *x *= inv);
    }
}

/// The dropout factors (`1/(1−p)` kept, 0 dropped) of one text's one head: a ChaCha8 stream per
/// (text, head), so the mask does not depend on the thread count.
fn dropout_factors(out: &mut [f32], p: f32, seed: u64, stream: u64) {
    let threshold = (p as f64 * 4_294_967_296.0).min(4_294_967_295.0) as u32;
    let scale = 1.0 / (1.0 - p);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut words = vec![0u32; out.len()];
    rng.fill(&mut words[..]);
    out.iter_mut().zip(&words).for_each(|(m, &w)| *m = if w >= threshold { scale } else { 0.0 });
}

/// What the attention backward pass needs.
#[derive(Debug)]
struct AttentionState {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Softmax probabilities before dropout, `[texts, heads, len, len]`.
    probs: Vec<f32>,
    shape: AttentionShape,
    seed: u64,
}

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy)]
struct AttentionShape {
    texts: usize,
    len: usize,
    heads: usize,
    hidden: usize,
    dropout: f32,
}

impl AttentionShape {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }
}

/// Forward pass: the context `[texts·len, hidden]` and the probabilities.
fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    keep: &[i64],
    sh: AttentionShape,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let (len, heads, d, dh) = (sh.len, sh.heads, sh.hidden, sh.head_dim());
    let mut ctx = vec![0.0f32; sh.texts * len * d];
    let mut probs = vec![0.0f32; sh.texts * heads * len * len];
    ctx.par_chunks_mut(len * d).zip(probs.par_chunks_mut(heads * len * len)).enumerate().for_each(
        |(t, (ctx, probs))| {
            let rows = t * len * d;
            let keep = &keep[t * len..(t + 1) * len];
            let mut dropped = vec![0.0f32; len * len];
            for (h, p) in probs.chunks_mut(len * len).enumerate() {
                let at = rows + h * dh;
                // SAFETY: rows t·len.. of q, k, v (stride d), columns h·dh..(h+1)·dh, are in bounds;
                // `p` is this task's own len × len block; `ctx` is this text's own rows.
                unsafe {
                    product(
                        len,
                        len,
                        dh,
                        p.as_mut_ptr(),
                        len,
                        false,
                        (q[at..].as_ptr(), d as isize, 1),
                        (k[at..].as_ptr(), 1, d as isize),
                        sh.scale(),
                    );
                }
                softmax_rows(p, keep);
                let weights = if sh.dropout > 0.0 {
                    dropout_factors(&mut dropped, sh.dropout, seed, (t * heads + h) as u64);
                    dropped.iter_mut().zip(p.iter()).for_each(|(m, p)| *m *= p);
                    &dropped[..]
                } else {
                    &p[..]
                };
                unsafe {
                    product(
                        len,
                        dh,
                        len,
                        ctx[h * dh..].as_mut_ptr(),
                        d,
                        false,
                        (weights.as_ptr(), len as isize, 1),
                        (v[at..].as_ptr(), d as isize, 1),
                        1.0,
                    );
                }
            }
        },
    );
    (ctx, probs)
}

/// Backward pass: gradients of q, k and v from the context's gradient.
fn attention_backward(s: &AttentionState, g: &[f32]) -> [Vec<f32>; 3] {
    let sh = s.shape;
    let (len, heads, d, dh) = (sh.len, sh.heads, sh.hidden, sh.head_dim());
    let n = sh.texts * len * d;
    let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    dq.par_chunks_mut(len * d)
        .zip(dk.par_chunks_mut(len * d))
        .zip(dv.par_chunks_mut(len * d))
        .enumerate()
        .for_each(|(t, ((dq, dk), dv))| {
            let rows = t * len * d;
            let (mut factors, mut weights, mut dp) =
                (vec![0.0f32; len * len], vec![0.0f32; len * len], vec![0.0f32; len * len]);
            for h in 0..heads {
                let at = rows + h * dh;
                let p = &s.probs[(t * heads + h) * len * len..][..len * len];
                let dropping = sh.dropout > 0.0;
                if dropping {
                    dropout_factors(&mut factors, sh.dropout, s.seed, (t * heads + h) as u64);
                    weights.iter_mut().zip(p).zip(&factors).for_each(|((w, p), m)| *w = p * m);
                }
                let w = if dropping { &weights[..] } else { p };
                // SAFETY: as in the forward pass; dq, dk, dv are this text's own rows.
                unsafe {
                    // dV = Wᵀ·dO
                    product(
                        len,
                        dh,
                        len,
                        dv[h * dh..].as_mut_ptr(),
                        d,
                        false,
                        (w.as_ptr(), 1, len as isize),
                        (g[at..].as_ptr(), d as isize, 1),
                        1.0,
                    );
                    // dP = dO·Vᵀ (then through the dropout factors)
                    product(
                        len,
                        len,
                        dh,
                        dp.as_mut_ptr(),
                        len,
                        false,
                        (g[at..].as_ptr(), d as isize, 1),
                        (s.v[at..].as_ptr(), 1, d as isize),
                        1.0,
                    );
                }
                if dropping {
                    dp.iter_mut().zip(&factors).for_each(|(g, m)| *g *= m);
                }
                // dS = P ⊙ (dP − rowsum(dP ⊙ P)) · scale
                for (dp, p) in dp.chunks_mut(len).zip(p.chunks(len)) {
                    let dot: f32 = dp.iter().zip(p).map(|(a, b)| a * b).sum();
                    dp.iter_mut().zip(p).for_each(|(g, p)| *g = p * (*g - dot) * sh.scale());
                }
                unsafe {
                    // dQ = dS·K, dK = dSᵀ·Q
                    product(
                        len,
                        dh,
                        len,
                        dq[h * dh..].as_mut_ptr(),
                        d,
                        false,
                        (dp.as_ptr(), len as isize, 1),
                        (s.k[at..].as_ptr(), d as isize, 1),
                        1.0,
                    );
                    product(
                        len,
                        dh,
                        len,
                        dk[h * dh..].as_mut_ptr(),
                        d,
                        false,
                        (dp.as_ptr(), 1, len as isize),
                        (s.q[at..].as_ptr(), d as isize, 1),
                        1.0,
                    );
                }
            }
        });
    [dq, dk, dv]
}

#[derive(Debug)]
struct FusedAttention;

impl Backward<Flex, 3> for FusedAttention {
    type State = Arc<AttentionState>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (g, shape) = to_host(grad);
        let [dq, dk, dv] = attention_backward(&ops.state, &g);
        for (parent, d) in ops.parents.into_iter().zip([dq, dk, dv]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, from_host(d, shape.clone()));
            }
        }
    }
}

/// Self-attention of projected queries, keys and values, each `[texts·len, hidden]` (tokens of
/// text t in rows t·len..(t+1)·len, head h in columns h·d_h..(h+1)·d_h): softmax(q·kᵀ/√d_h, with
/// keys where `keep` (`[texts·len]`, 1 = token, 0 = padding) is 0 left out), with dropout `p` on
/// the probabilities, times v. Returns the context in the same layout. Only for `Autodiff<Flex>`
/// ([`available`]); the dropout mask's seed comes from burn's backend generator.
///
/// # Panics
/// When `B` is not `Autodiff<Flex>` (a programming error: callers check [`available`]).
pub fn attention<B: Backend>(
    q: Tensor<B, 2>,
    k: Tensor<B, 2>,
    v: Tensor<B, 2>,
    keep: &Arc<Vec<i64>>,
    len: usize,
    heads: usize,
    p: f64,
) -> Tensor<B, 2> {
    assert!(available::<B>(), "fused attention serves Autodiff<Flex> only");
    let [rows, hidden] = q.dims();
    assert_eq!(keep.len(), rows, "one mask entry per token");
    let shape = AttentionShape { texts: rows / len, len, heads, hidden, dropout: p as f32 };
    same(attention_ad(same(q), same(k), same(v), keep, shape))
}

fn attention_ad(
    q: Tensor<Autodiff<Flex>, 2>,
    k: Tensor<Autodiff<Flex>, 2>,
    v: Tensor<Autodiff<Flex>, 2>,
    keep: &Arc<Vec<i64>>,
    shape: AttentionShape,
) -> Tensor<Autodiff<Flex>, 2> {
    let seed = if shape.dropout > 0.0 { super::dropout::backend_seed() } else { 0 };
    let (q, k, v) = (q.into_primitive().tensor(), k.into_primitive().tensor(), v.into_primitive().tensor());
    let (qh, dims) = to_host(q.primitive.clone());
    let (kh, _) = to_host(k.primitive.clone());
    let (vh, _) = to_host(v.primitive.clone());
    let (ctx, probs) = attention_forward(&qh, &kh, &vh, keep, shape, seed);
    let out = from_host(ctx, dims);
    let out = match FusedAttention
        .prepare::<NoCheckpointing>([q.node.clone(), k.node.clone(), v.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            prep.finish(Arc::new(AttentionState { q: qh, k: kh, v: vh, probs, shape, seed }), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// Rows per LayerNorm task (fixed, so that the γ/β gradient sums do not depend on the threads).
const NORM_ROWS: usize = 64;

/// What the LayerNorm backward pass needs.
#[derive(Debug)]
struct NormState {
    /// The normalised input x̂ `[rows, d]`.
    xhat: Vec<f32>,
    /// 1/√(var + ε) per row.
    rstd: Vec<f32>,
    gamma: Vec<f32>,
}

/// `LayerNorm(x + residual)` row by row: the output, x̂ and 1/σ.
fn add_norm_forward(
    x: &[f32],
    r: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let (mut y, mut xhat, mut rstd) =
        (vec![0.0f32; x.len()], vec![0.0f32; x.len()], vec![0.0f32; x.len() / d]);
    y.par_chunks_mut(d * NORM_ROWS)
        .zip(xhat.par_chunks_mut(d * NORM_ROWS))
        .zip(rstd.par_chunks_mut(NORM_ROWS))
        .enumerate()
        .for_each(|(c, ((y, xhat), rstd))| {
            let base = c * d * NORM_ROWS;
            for (i, ((y, xh), rs)) in y.chunks_mut(d).zip(xhat.chunks_mut(d)).zip(rstd.iter_mut()).enumerate()
            {
                let (xr, rr) = (&x[base + i * d..][..d], &r[base + i * d..][..d]);
                xh.iter_mut().zip(xr).zip(rr).for_each(|((h, a), b)| *h = a + b);
                let mean = xh.iter().sum::<f32>() / d as f32;
                let var = xh.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
                *rs = 1.0 / (var + eps).sqrt();
                for (((y, h), g), b) in y.iter_mut().zip(xh.iter_mut()).zip(gamma).zip(beta) {
                    *h = (*h - mean) * *rs;
                    *y = *h * g + b;
                }
            }
        });
    (y, xhat, rstd)
}

/// Gradients of the input (shared by x and the residual), γ and β.
fn add_norm_backward(s: &NormState, g: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = s.gamma.len();
    let mut dx = vec![0.0f32; g.len()];
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(d * NORM_ROWS)
        .enumerate()
        .map(|(c, dx)| {
            let (mut dgamma, mut dbeta) = (vec![0.0f32; d], vec![0.0f32; d]);
            let mut gg = vec![0.0f32; d];
            for (i, dx) in dx.chunks_mut(d).enumerate() {
                let row = c * NORM_ROWS + i;
                let (gr, xh) = (&g[row * d..][..d], &s.xhat[row * d..][..d]);
                let (mut mean_gg, mut mean_ggx) = (0.0f32, 0.0f32);
                for j in 0..d {
                    dgamma[j] += gr[j] * xh[j];
                    dbeta[j] += gr[j];
                    gg[j] = gr[j] * s.gamma[j];
                    mean_gg += gg[j];
                    mean_ggx += gg[j] * xh[j];
                }
                let (mean_gg, mean_ggx) = (mean_gg / d as f32, mean_ggx / d as f32);
                let rs = s.rstd[row];
                for j in 0..d {
                    dx[j] = rs * (gg[j] - mean_gg - xh[j] * mean_ggx);
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![0.0f32; d], vec![0.0f32; d]);
    for (pg, pb) in &partials {
        dgamma.iter_mut().zip(pg).for_each(|(a, b)| *a += b);
        dbeta.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    (dx, dgamma, dbeta)
}

#[derive(Debug)]
struct FusedAddNorm;

impl Backward<Flex, 4> for FusedAddNorm {
    type State = Arc<NormState>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let (g, shape) = to_host(grad);
        let (dx, dgamma, dbeta) = add_norm_backward(&ops.state, &g);
        let [x, r, gamma, beta] = ops.parents;
        let d = dgamma.len();
        let wide = |v: Vec<f32>| from_host(v, shape.clone());
        match (x, r) {
            (Some(x), Some(r)) => {
                grads.register::<Flex>(x.id, wide(dx.clone()));
                grads.register::<Flex>(r.id, wide(dx));
            }
            (Some(node), None) | (None, Some(node)) => grads.register::<Flex>(node.id, wide(dx)),
            (None, None) => {}
        }
        if let Some(node) = gamma {
            grads.register::<Flex>(node.id, from_host(dgamma, burn::tensor::Shape::new([d])));
        }
        if let Some(node) = beta {
            grads.register::<Flex>(node.id, from_host(dbeta, burn::tensor::Shape::new([d])));
        }
    }
}

/// `norm.forward(x + residual)` for `[rows, d]` tensors, as one operation on `Autodiff<Flex>`
/// (see the module doc) and as burn's ops elsewhere or when the norm has no β.
pub fn add_layer_norm<B: Backend>(
    x: Tensor<B, 2>,
    residual: Tensor<B, 2>,
    norm: &LayerNorm<B>,
    eps: f64,
) -> Tensor<B, 2> {
    match &norm.beta {
        Some(beta) if available::<B>() => {
            same(add_norm_ad(same(x), same(residual), same(norm.gamma.val()), same(beta.val()), eps as f32))
        }
        _ => norm.forward(x + residual),
    }
}

fn add_norm_ad(
    x: Tensor<Autodiff<Flex>, 2>,
    r: Tensor<Autodiff<Flex>, 2>,
    gamma: Tensor<Autodiff<Flex>, 1>,
    beta: Tensor<Autodiff<Flex>, 1>,
    eps: f32,
) -> Tensor<Autodiff<Flex>, 2> {
    let (x, r) = (x.into_primitive().tensor(), r.into_primitive().tensor());
    let (gamma, beta) = (gamma.into_primitive().tensor(), beta.into_primitive().tensor());
    let (xh, shape) = to_host(x.primitive.clone());
    let (rh, _) = to_host(r.primitive.clone());
    let (gh, _) = to_host(gamma.primitive.clone());
    let (bh, _) = to_host(beta.primitive.clone());
    let (y, xhat, rstd) = add_norm_forward(&xh, &rh, &gh, &bh, eps);
    let out: FlexPrimitive = from_host(y, shape);
    let out = match FusedAddNorm
        .prepare::<NoCheckpointing>([x.node.clone(), r.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(Arc::new(NormState { xhat, rstd, gamma: gh }), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[cfg(test)]
mod tests {
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
        let pad =
            Tensor::<AD, 1, burn::tensor::Int>::from_data(TensorData::new(keep.to_vec(), [rows]), &device)
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
}
