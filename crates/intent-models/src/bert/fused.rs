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
mod tests;
