//! The CPU inference engine of the BERT encoder: the same arithmetic as [`BertModel::forward`]
//! on host buffers, with the weights read once from the loaded burn module.
//!
//! Why hand-written, next to the burn model (which stays the one implementation for training
//! and for GPU backends): measured with `perf` on the all-MiniLM-L6-v2 benchmarks (2-core
//! AVX-512 Xeon), burn 0.21's flex backend spent under 60 % of a query in matrix products and
//! the rest in per-op overhead: an output buffer per op, strided copies to split and merge
//! attention heads, GELU through scalar `libm::erff` (~10 %), and matrix products that stay on
//! one thread below 192³ multiply-adds (every product of a short query) or, for a batch, run as
//! one small product per row because `Linear` broadcasts its weight over the batch dimension.
//! That made single queries slower than PyTorch eager. Here the matrix products still go through
//! the `gemm` crate (the kernels flex uses), called once per product with strides, so heads are
//! read in place; products are split by output columns over rayon's threads; GELU, residual
//! and LayerNorm are fused loops over rows. No maintained crate runs a BERT checkpoint on the
//! CPU from Rust without a C++ runtime (candle uses the same `gemm` kernels behind its own
//! tensor type; `ort` needs the ONNX Runtime library and an exported graph).

use burn::prelude::*;
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::config::{Activation, BertConfig, Pooling, PoolingMode};
use super::model::BertModel;
use super::tokenizer::TokenBatch;
use crate::error::{ModelError, Result};

/// A linear layer: `y = x·W + b` with `W` `[inputs, outputs]` row-major (burn's layout).
#[derive(Debug, Clone)]
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

/// LayerNorm's scale, shift and epsilon.
#[derive(Debug, Clone)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

#[derive(Debug, Clone)]
struct Layer {
    /// Query, key and value side by side: `[hidden, 3·hidden]`.
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    up: Dense,
    down: Dense,
    out_norm: Norm,
}

/// The encoder's weights on the host, and its forward pass.
#[derive(Debug, Clone)]
pub struct HostBert {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    activation: Activation,
    vocab: usize,
    positions: usize,
    types: usize,
}

fn host_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| ModelError::Fit(format!("reading weights: {e:?}")))
}

fn dense<B: Backend>(l: &burn::nn::Linear<B>) -> Result<Dense> {
    let [inputs, outputs] = l.weight.dims();
    let bias = match &l.bias {
        Some(b) => host_vec(b.val())?,
        None => vec![0.0; outputs],
    };
    Ok(Dense { weight: host_vec(l.weight.val())?, bias, inputs, outputs })
}

fn norm<B: Backend>(n: &burn::nn::LayerNorm<B>, eps: f64) -> Result<Norm> {
    let gamma = host_vec(n.gamma.val())?;
    let beta = match &n.beta {
        Some(b) => host_vec(b.val())?,
        None => vec![0.0; gamma.len()],
    };
    Ok(Norm { gamma, beta, eps: eps as f32 })
}

/// Query, key and value weights as one `[d, 3d]` matrix (one product instead of three).
fn fused_qkv(q: Dense, k: Dense, v: Dense) -> Dense {
    let (d, n) = (q.inputs, q.outputs);
    let mut weight = Vec::with_capacity(d * 3 * n);
    for r in 0..d {
        for m in [&q, &k, &v] {
            weight.extend_from_slice(&m.weight[r * n..(r + 1) * n]);
        }
    }
    let bias = [q.bias, k.bias, v.bias].concat();
    Dense { weight, bias, inputs: d, outputs: 3 * n }
}

impl HostBert {
    /// Copies the weights of a loaded model (any backend) to the host.
    pub fn from_model<B: Backend>(model: &BertModel<B>, config: &BertConfig) -> Result<Self> {
        let e = &model.embeddings;
        let eps = config.layer_norm_eps;
        let layers = model
            .encoder
            .layer
            .iter()
            .map(|l| {
                let a = &l.attention.self_attn;
                Ok(Layer {
                    qkv: fused_qkv(dense(&a.query)?, dense(&a.key)?, dense(&a.value)?),
                    attn_out: dense(&l.attention.output.dense)?,
                    attn_norm: norm(&l.attention.output.layer_norm, eps)?,
                    up: dense(&l.intermediate.dense)?,
                    down: dense(&l.output.dense)?,
                    out_norm: norm(&l.output.layer_norm, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HostBert {
            word: host_vec(e.word_embeddings.weight.val())?,
            position: host_vec(e.position_embeddings.weight.val())?,
            token_type: host_vec(e.token_type_embeddings.weight.val())?,
            embed_norm: norm(&e.layer_norm, eps)?,
            layers,
            hidden: model.hidden_size(),
            heads: model.heads,
            activation: model.activation.0,
            vocab: config.vocab_size,
            positions: config.max_position_embeddings,
            types: config.type_vocab_size,
        })
    }

    /// Hidden width.
    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Last hidden states of a token batch, row-major `[rows, len, hidden]`.
    pub fn forward(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        let (rows, len, d) = (batch.rows, batch.len, self.hidden);
        let m = rows * len;
        if len > self.positions {
            return Err(ModelError::Fit(format!("{len} tokens: the model takes at most {}", self.positions)));
        }
        let mut x = vec![0.0f32; m * d];
        for (t, out) in x.chunks_mut(d).enumerate() {
            let (id, ty) = (batch.input_ids[t], batch.token_type_ids[t]);
            if id < 0 || id as usize >= self.vocab || ty < 0 || ty as usize >= self.types {
                return Err(ModelError::Fit(format!(
                    "token id {id} / type {ty} outside the vocabulary ({} / {})",
                    self.vocab, self.types
                )));
            }
            let (w, p, y) = (id as usize * d, (t % len) * d, ty as usize * d);
            for (i, o) in out.iter_mut().enumerate() {
                // Hugging Face's order: (word + token type) + position.
                *o = (self.word[w + i] + self.token_type[y + i]) + self.position[p + i];
            }
        }
        layer_norm(&mut x, None, &self.embed_norm);
        let mut qkv = vec![0.0f32; m * 3 * d];
        let mut ctx = vec![0.0f32; m * d];
        let mut tmp = vec![0.0f32; m * d];
        let mut up = vec![0.0f32; m * self.layers.first().map_or(0, |l| l.up.outputs)];
        for l in &self.layers {
            l.qkv.forward(&x, &mut qkv);
            self.attention(&qkv, &batch.attention_mask, rows, len, &mut ctx);
            l.attn_out.forward(&ctx, &mut tmp);
            layer_norm(&mut x, Some(&tmp), &l.attn_norm);
            l.up.forward(&x, &mut up);
            activate(&mut up, self.activation);
            l.down.forward(&up, &mut tmp);
            layer_norm(&mut x, Some(&tmp), &l.out_norm);
        }
        Ok(x)
    }

    /// softmax(q·kᵀ/√d_head, padded keys left out)·v for every row and head; heads are read in
    /// place from `qkv` `[rows·len, 3·hidden]` and written in place to `ctx` `[rows·len, hidden]`.
    fn attention(&self, qkv: &[f32], mask: &[i64], rows: usize, len: usize, ctx: &mut [f32]) {
        let (d, h) = (self.hidden, self.heads);
        let dh = d / h;
        let scale = 1.0 / (dh as f32).sqrt();
        let out = SendPtr(ctx.as_mut_ptr());
        (0..rows * h).into_par_iter().for_each(|task| {
            let (r, head) = (task / h, task % h);
            let base = r * len * 3 * d + head * dh;
            let (q, k, v) = (qkv[base..].as_ptr(), qkv[base + d..].as_ptr(), qkv[base + 2 * d..].as_ptr());
            let mut s = vec![0.0f32; len * len];
            let rs = (3 * d) as isize;
            // SAFETY: every pointer stays inside its buffer (rows·len rows of width 3d or d,
            // starting at the row's first token), and each task writes its own row × head block
            // of `ctx`.
            unsafe {
                gemm(
                    len,
                    len,
                    dh,
                    s.as_mut_ptr(),
                    1,
                    len as isize,
                    false,
                    q,
                    1,
                    rs,
                    k,
                    rs,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
            let keep = &mask[r * len..(r + 1) * len];
            for row in s.chunks_mut(len) {
                softmax_masked(row, keep);
            }
            let dst = out.ptr().wrapping_add(r * len * d + head * dh);
            unsafe {
                gemm(
                    len,
                    dh,
                    len,
                    dst,
                    1,
                    d as isize,
                    false,
                    s.as_ptr(),
                    1,
                    len as isize,
                    v,
                    1,
                    rs,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        });
    }

    /// Sentence vectors `[rows][hidden]` of hidden states `[rows, len, hidden]`.
    pub fn pool(&self, hidden: &[f32], batch: &TokenBatch, pooling: Pooling) -> Vec<Vec<f32>> {
        let (len, d) = (batch.len, self.hidden);
        (0..batch.rows)
            .map(|r| {
                let rows = &hidden[r * len * d..(r + 1) * len * d];
                let mut v = match pooling.mode {
                    PoolingMode::Cls => rows[..d].to_vec(),
                    PoolingMode::Mean => {
                        let mut sum = vec![0.0f32; d];
                        let mut n = 0.0f32;
                        for (t, tok) in rows.chunks(d).enumerate() {
                            if batch.attention_mask[r * len + t] != 0 {
                                n += 1.0;
                                sum.iter_mut().zip(tok).for_each(|(s, x)| *s += x);
                            }
                        }
                        let n = n.max(1e-9);
                        sum.iter_mut().for_each(|s| *s /= n);
                        sum
                    }
                };
                if pooling.normalize {
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect()
    }
}

/// A raw pointer handed to rayon tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only where tasks write disjoint ranges (see the call sites).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so that closures capture the `Send` wrapper, not the field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Output columns per task: a multiple of 16 (one AVX-512 register of f32), at most ~512 wide
/// (measured: one product over all 1536 columns of a short query ran slower than the same columns
/// in blocks of 256–512), and a multiple of the thread count in number.
fn column_chunk(n: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let tasks = threads * n.div_ceil(threads * 512);
    n.div_ceil(tasks).div_ceil(16).max(1) * 16
}

impl Dense {
    /// `out [m, outputs] = x [m, inputs]·W + b`, split by output columns over rayon's threads.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        let (k, n) = (self.inputs, self.outputs);
        let m = x.len() / k;
        debug_assert_eq!(out.len(), m * n);
        for row in out.chunks_mut(n) {
            row.copy_from_slice(&self.bias);
        }
        let chunk = column_chunk(n);
        let dst = SendPtr(out.as_mut_ptr());
        (0..n.div_ceil(chunk)).into_par_iter().for_each(|c| {
            let (c0, width) = (c * chunk, chunk.min(n - c * chunk));
            // SAFETY: columns c0..c0+width of `out` (m rows, stride n) and of `weight` (k rows,
            // stride n) lie inside the buffers; tasks own disjoint column ranges of `out`.
            unsafe {
                gemm(
                    m,
                    width,
                    k,
                    dst.ptr().wrapping_add(c0),
                    1,
                    n as isize,
                    true,
                    x.as_ptr(),
                    1,
                    k as isize,
                    self.weight.as_ptr().add(c0),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        });
    }
}

/// Softmax of one row of scores over the kept keys (mask ≠ 0); masked keys get 0. A row with no
/// kept key gets the uniform distribution over all keys, as Hugging Face's additive mask gives.
fn softmax_masked(row: &mut [f32], keep: &[i64]) {
    let max =
        row.iter().zip(keep).filter(|(_, &k)| k != 0).map(|(x, _)| *x).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        let u = 1.0 / row.len() as f32;
        row.iter_mut().for_each(|x| *x = u);
        return;
    }
    let mut sum = 0.0f32;
    for (x, &k) in row.iter_mut().zip(keep) {
        *x = if k != 0 { (*x - max).exp() } else { 0.0 };
        sum += *x;
    }
    row.iter_mut().for_each(|x| *x /= sum);
}

/// `x ← LayerNorm(x + residual)` row by row (`residual` absent: `x ← LayerNorm(x)`).
fn layer_norm(x: &mut [f32], residual: Option<&[f32]>, n: &Norm) {
    let d = n.gamma.len();
    let work = |(i, row): (usize, &mut [f32])| {
        if let Some(r) = residual {
            row.iter_mut().zip(&r[i * d..(i + 1) * d]).for_each(|(a, b)| *a += b);
        }
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + n.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&n.gamma).zip(&n.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    };
    if x.len() >= 64 * d {
        x.par_chunks_mut(d).enumerate().for_each(work);
    } else {
        x.chunks_mut(d).enumerate().for_each(work);
    }
}

/// The feed-forward activation in place, in parallel chunks.
fn activate(x: &mut [f32], a: Activation) {
    let f: fn(&mut [f32]) = match a {
        Activation::Gelu => super::gelu::gelu_in_place,
        Activation::GeluTanh => |c| {
            c.iter_mut().for_each(|x| {
                *x = 0.5
                    * *x
                    * (1.0 + ((2.0f32 / std::f32::consts::PI).sqrt() * (*x + 0.044715 * *x * *x * *x)).tanh())
            })
        },
        Activation::Relu => |c| c.iter_mut().for_each(|x| *x = x.max(0.0)),
    };
    x.par_chunks_mut(4096).for_each(f);
}

/// Whether the host engine should run a model whose weights live on backend `B`: the CPU
/// backends (flex, ndarray) unless `INTENT_BERT_ENGINE=burn` asks for burn's own forward pass.
pub fn wanted<B: Backend>() -> bool {
    if std::env::var("INTENT_BERT_ENGINE").is_ok_and(|v| v.eq_ignore_ascii_case("burn")) {
        return false;
    }
    // By name, so that every wrapping of the CPU backends (autodiff included) counts.
    let name = std::any::type_name::<B>();
    name.contains("burn_flex::") || name.contains("burn_ndarray::")
}
