//! The BERT encoder in burn. The module tree mirrors Hugging Face's weight names
//! (`embeddings.word_embeddings`, `encoder.layer.N.attention.self.query`, …; `LayerNorm` →
//! `layer_norm` and `self` → `self_attn`, Rust names), so loading is a prefix strip, two renames
//! and PyTorch → burn layout ([`super::load_weights`]).
//!
//! It computes what `transformers.BertModel` computes: embeddings (word + absolute position +
//! token type) → LayerNorm → N post-LN layers (self-attention with the padding mask, then
//! feed-forward), returning the last hidden states; in eval mode on plain backends, and with
//! BERT's dropouts (embeddings, attention probabilities, sub-layer outputs) while training on
//! autodiff backends.

use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::activation::{relu, softmax, tanh};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, ElementConversion, FloatDType, Int, Tensor};
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use super::config::{Activation, BertConfig};
use super::fused::add_layer_norm;

/// The float type of the encoder's matrix products (mixed precision): with [`Precision::Bf16`]
/// every `Linear` of the layers multiplies in bf16 (the GPU's bf16 matrix units), while the
/// weights, their gradients, the optimizer's state, attention, LayerNorm, GELU, the head and the
/// loss stay f32, as under PyTorch's `autocast(dtype=torch.bfloat16)`. bf16 keeps f32's exponent
/// range, so no loss scaling is needed (f16 would need it and is not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// The layers' matrix products in bf16, the rest in f32.
    Bf16,
}

/// `l(x)` in `precision`: the product of `x` and the weight in bf16, cast back to f32 before
/// the f32 bias is added (burn's `Linear::forward` when f32).
pub fn linear_in<B: Backend>(l: &Linear<B>, x: Tensor<B, 2>, precision: Precision) -> Tensor<B, 2> {
    match precision {
        Precision::F32 => l.forward(x),
        Precision::Bf16 => {
            let y =
                x.cast(FloatDType::BF16).matmul(l.weight.val().cast(FloatDType::BF16)).cast(FloatDType::F32);
            match &l.bias {
                Some(b) => y + b.val().unsqueeze_dim(0),
                None => y,
            }
        }
    }
}

/// Word, position and token-type embeddings, summed and normalised.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// `[vocab_size, hidden]`.
    pub word_embeddings: Embedding<B>,
    /// `[max_position_embeddings, hidden]`.
    pub position_embeddings: Embedding<B>,
    /// `[type_vocab_size, hidden]`.
    pub token_type_embeddings: Embedding<B>,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
}

/// Query, key and value projections.
#[derive(Module, Debug)]
pub struct BertSelfAttention<B: Backend> {
    /// Query.
    pub query: Linear<B>,
    /// Key.
    pub key: Linear<B>,
    /// Value.
    pub value: Linear<B>,
}

/// Output projection of attention, residual and LayerNorm (also the feed-forward's output).
#[derive(Module, Debug)]
pub struct BertOutputBlock<B: Backend> {
    /// Projection.
    pub dense: Linear<B>,
    /// HF `LayerNorm`.
    pub layer_norm: LayerNorm<B>,
}

/// Self-attention with its output block.
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    /// HF `self`.
    pub self_attn: BertSelfAttention<B>,
    /// HF `output`.
    pub output: BertOutputBlock<B>,
}

/// The feed-forward's first projection.
#[derive(Module, Debug)]
pub struct BertIntermediate<B: Backend> {
    /// `[hidden, intermediate]`.
    pub dense: Linear<B>,
}

/// One transformer layer.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention.
    pub attention: BertAttention<B>,
    /// Feed-forward up-projection.
    pub intermediate: BertIntermediate<B>,
    /// Feed-forward down-projection, residual, LayerNorm.
    pub output: BertOutputBlock<B>,
}

/// The layer stack.
#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    /// HF `encoder.layer`.
    pub layer: Vec<BertLayer<B>>,
}

/// HF's pooler: `tanh(W·h_[CLS] + b)` (read by classification heads only).
#[derive(Module, Debug)]
pub struct BertPooler<B: Backend> {
    /// `[hidden, hidden]`.
    pub dense: Linear<B>,
}

/// The BERT encoder. Sentence vectors come from [`super::Pooling`]; the pooler is present only
/// in classifiers ([`super::sequence::BertForSequenceClassification`]).
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// Embeddings.
    pub embeddings: BertEmbeddings<B>,
    /// Layers.
    pub encoder: BertEncoder<B>,
    /// HF `pooler` (classifiers only).
    pub pooler: Option<BertPooler<B>>,
    /// Attention heads.
    #[module(skip)]
    pub heads: usize,
    /// Feed-forward activation.
    #[module(skip)]
    pub activation: ActivationKind,
    /// LayerNorm ε (`layer_norm_eps`), for the fused training kernels.
    #[module(skip)]
    pub norm_eps: f64,
    /// Dropout after the embeddings and after each sub-layer's output projection
    /// (`hidden_dropout_prob`); active only while training (autodiff backends).
    pub hidden_dropout: Dropout,
    /// Dropout on the attention probabilities (`attention_probs_dropout_prob`), training only.
    pub attention_dropout: Dropout,
    /// The float type of the layers' matrix products (f32 unless set for training on a GPU).
    #[module(skip)]
    pub precision: Precision,
}

/// [`Activation`] as a module constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationKind(pub Activation);

impl BertConfig {
    /// A model of this configuration with burn's default initialisation (weights are then loaded,
    /// or, in tests, left random).
    pub fn init<B: Backend>(&self, device: &B::Device) -> BertModel<B> {
        let (d, eps) = (self.hidden_size, self.layer_norm_eps);
        let ln = || LayerNormConfig::new(d).with_epsilon(eps).init(device);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let block = |i| BertOutputBlock { dense: linear(i, d), layer_norm: ln() };
        BertModel {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, d).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, d).init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, d).init(device),
                layer_norm: ln(),
            },
            encoder: BertEncoder {
                layer: (0..self.num_hidden_layers)
                    .map(|_| BertLayer {
                        attention: BertAttention {
                            self_attn: BertSelfAttention {
                                query: linear(d, d),
                                key: linear(d, d),
                                value: linear(d, d),
                            },
                            output: block(d),
                        },
                        intermediate: BertIntermediate { dense: linear(d, self.intermediate_size) },
                        output: block(self.intermediate_size),
                    })
                    .collect(),
            },
            pooler: None,
            heads: self.num_attention_heads,
            activation: ActivationKind(self.activation().unwrap_or(Activation::Gelu)),
            norm_eps: eps,
            hidden_dropout: DropoutConfig::new(self.dropout_prob("hidden_dropout_prob")).init(),
            attention_dropout: DropoutConfig::new(self.dropout_prob("attention_probs_dropout_prob")).init(),
            precision: Precision::F32,
        }
    }

    /// A dropout probability of `config.json` (BERT's 0.1 when absent).
    pub fn dropout_prob(&self, key: &str) -> f64 {
        self.extra.get(key).and_then(|v| v.as_f64()).filter(|p| (0.0..1.0).contains(p)).unwrap_or(0.1)
    }
}

fn activate<B: Backend>(x: Tensor<B, 2>, a: Activation) -> Tensor<B, 2> {
    match a {
        Activation::Gelu => super::gelu::gelu(x),
        Activation::Relu => relu(x),
        Activation::GeluTanh => {
            // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
            let inner = (x.clone() + x.clone().powi_scalar(3).mul_scalar(0.044715))
                .mul_scalar((2.0f64 / std::f64::consts::PI).sqrt());
            x.clone().mul_scalar(0.5) * (tanh(inner) + 1.0)
        }
    }
}

/// Whether attention masks padded keys for `attention_mask` (1 = token, 0 = padding). On the CPU
/// backends the mask is read: a batch without padding (one text, texts of one length) needs
/// none. On an accelerator reading it would wait for every kernel queued before it — once per
/// training step, the GPU then idling while the host prepares the next step (PyTorch's `.item()`
/// in a loop) — so there the mask is always applied: on a batch without padding it masks nothing.
fn needs_padding_mask<B: Backend>(attention_mask: &Tensor<B, 2, Int>) -> bool {
    !crate::is_cpu_backend::<B>(&attention_mask.device())
        || attention_mask.clone().equal_elem(0).any().into_scalar().elem::<bool>()
}

/// What every layer of one forward pass shares.
struct LayerContext<'a, B: Backend> {
    heads: usize,
    activation: Activation,
    /// Dropout after the sub-layers' output projections (training only).
    hidden: &'a Dropout,
    /// Dropout on the attention probabilities (training only).
    attention: &'a Dropout,
    /// Padded keys `[batch, heads, len, len]` for burn's ops (`None`: no padding).
    pad: Option<Tensor<B, 4, Bool>>,
    /// The attention mask `[batch·len]` when the fused training kernels run ([`super::fused`]).
    fused_keep: Option<Arc<Vec<i64>>>,
    norm_eps: f64,
    precision: Precision,
}

impl<B: Backend> BertLayer<B> {
    fn forward(&self, x: Tensor<B, 3>, cx: &LayerContext<'_, B>) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let heads = cx.heads;
        let x = x.reshape([b * l, d]);
        let a = &self.attention.self_attn;
        let dense = |l: &Linear<B>, x: Tensor<B, 2>| linear_in(l, x, cx.precision);
        let (q, k, v) = (dense(&a.query, x.clone()), dense(&a.key, x.clone()), dense(&a.value, x.clone()));
        let ctx = if let Some(keep) = &cx.fused_keep {
            super::fused::attention(q, k, v, keep, l, heads, cx.attention.prob)
        } else {
            let split = |t: Tensor<B, 2>| t.reshape([b, l, heads, d / heads]).swap_dims(1, 2);
            let (q, k, v) = (split(q), split(k), split(v));
            // softmax(q·kᵀ/√d_head with padded keys masked)·v; while training, with dropout on
            // the probabilities (HF's order), which the fused `attention` op has no place for.
            let ctx = if B::ad_enabled(&x.device()) && cx.attention.prob > 0.0 {
                let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / ((d / heads) as f64).sqrt());
                let scores = match cx.pad.clone() {
                    Some(m) => scores.mask_fill(m, f32::MIN),
                    None => scores,
                };
                super::dropout::dropout(cx.attention, softmax(scores, 3)).matmul(v)
            } else {
                attention(q, k, v, cx.pad.clone(), None, AttentionModuleOptions::default())
            };
            ctx.swap_dims(1, 2).reshape([b * l, d])
        };
        let o = &self.attention.output;
        let x = add_layer_norm(
            x,
            super::dropout::dropout(cx.hidden, dense(&o.dense, ctx)),
            &o.layer_norm,
            cx.norm_eps,
        );
        let h = activate(dense(&self.intermediate.dense, x.clone()), cx.activation);
        let o = &self.output;
        add_layer_norm(x, super::dropout::dropout(cx.hidden, dense(&o.dense, h)), &o.layer_norm, cx.norm_eps)
            .reshape([b, l, d])
    }
}

impl<B: Backend> BertModel<B> {
    /// Last hidden states `[batch, len, hidden]` of token ids, token types and the attention mask
    /// (1 = token, 0 = padding), all `[batch, len]`.
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
    ) -> Tensor<B, 3> {
        let padded = !super::fused::available::<B>() && needs_padding_mask::<B>(&attention_mask);
        self.forward_masked(input_ids, token_type_ids, attention_mask, padded)
    }

    /// [`Self::forward`] with the padded keys masked in attention or not (`padded`; ignored by
    /// the fused training kernels, which read the mask themselves).
    fn forward_masked(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Tensor<B, 2, Int>,
        attention_mask: Tensor<B, 2, Int>,
        padded: bool,
    ) -> Tensor<B, 3> {
        let [b, l] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..l as i64, &device).reshape([1, l]).expand([b, l]);
        let e = &self.embeddings;
        let x = e.word_embeddings.forward(input_ids)
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(token_type_ids);
        let mut x = super::dropout::dropout(&self.hidden_dropout, e.layer_norm.forward(x));
        let h = self.heads;
        let (pad, fused_keep) = if super::fused::available::<B>() {
            let keep: Vec<i64> =
                attention_mask.into_data().convert::<i64>().into_vec().expect("i64 after convert");
            (None, Some(Arc::new(keep)))
        } else {
            (padded.then(|| attention_mask.equal_elem(0).reshape([b, 1, 1, l]).expand([b, h, l, l])), None)
        };
        let cx = LayerContext {
            heads: h,
            activation: self.activation.0,
            hidden: &self.hidden_dropout,
            attention: &self.attention_dropout,
            pad,
            fused_keep,
            norm_eps: self.norm_eps,
            precision: self.precision,
        };
        for layer in &self.encoder.layer {
            x = layer.forward(x, &cx);
        }
        x
    }

    /// Hidden width.
    pub fn hidden_size(&self) -> usize {
        self.embeddings.word_embeddings.weight.dims()[1]
    }

    /// Longest input.
    pub fn max_positions(&self) -> usize {
        self.embeddings.position_embeddings.weight.dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
    use burn::tensor::{DType, Int, TensorData};

    type AD = Autodiff<Flex>;

    /// x `[2, 3]` and a Linear 3 → 2 with values that bf16 cannot hold exactly.
    fn case() -> (Tensor<AD, 2>, Linear<AD>) {
        let d = Default::default();
        let x = Tensor::<AD, 2>::from_data(
            TensorData::new(vec![1.001f32, -2.3, 0.7, 3.0625, 0.002, -1.5], [2, 3]),
            &d,
        )
        .require_grad();
        let mut l = LinearConfig::new(3, 2).init::<AD>(&d);
        let w = vec![0.1f32, -0.33, 1.2345, 0.0777, -0.9, 2.6189];
        l.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [3, 2]), &d));
        l.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.25f32, -0.125], [2]), &d)));
        (x, l)
    }

    /// Hidden states of the rows `[1 5 6 2]` and `[1 7 2 0]` (the second padded after three
    /// tokens) through `model`, with padded keys masked or not.
    fn hidden(model: &BertModel<Flex>, padded: bool) -> Vec<f32> {
        let d = Default::default();
        let ids =
            Tensor::<Flex, 2, Int>::from_data(TensorData::new(vec![1i64, 5, 6, 2, 1, 7, 2, 0], [2, 4]), &d);
        let mask =
            Tensor::<Flex, 2, Int>::from_data(TensorData::new(vec![1i64, 1, 1, 1, 1, 1, 1, 0], [2, 4]), &d);
        model.forward_masked(ids, mask.zeros_like(), mask, padded).into_data().to_vec().unwrap()
    }

    #[test]
    fn the_padding_mask_leaves_rows_without_padding_unchanged() {
        // Accelerators always mask (no read-back per step): a row without padding must come out
        // the same as without the mask, and a padded row must differ (the mask is not a no-op).
        let config: BertConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 8, "type_vocab_size": 2
        }))
        .unwrap();
        let model = config.init::<Flex>(&Default::default());
        let (masked, plain) = (hidden(&model, true), hidden(&model, false));
        let row = 4 * 8;
        for (a, b) in masked[..row].iter().zip(&plain[..row]) {
            assert!((a - b).abs() < 1e-6, "unpadded row: {a} vs {b}");
        }
        let moved =
            masked[row..].iter().zip(&plain[row..]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(moved > 1e-3, "the padded row's keys were not masked ({moved})");
        assert!(crate::is_cpu_backend::<Flex>(&Default::default()));
        assert!(crate::is_cpu_backend::<AD>(&Default::default()));
        // Without padding the CPU's forward skips the mask and reads as masked.
        let d = Default::default();
        let mask = Tensor::<Flex, 2, Int>::ones([2, 3], &d);
        assert!(!needs_padding_mask::<Flex>(&mask));
        let padded = TensorData::new(vec![1i64, 1, 1, 1, 1, 0], [2, 3]);
        assert!(needs_padding_mask::<Flex>(&Tensor::from_data(padded, &d)));
    }

    fn to_bf16(v: f32) -> f32 {
        half::bf16::from_f32(v).to_f32()
    }

    #[test]
    fn bf16_products_round_the_operands_and_keep_the_bias_and_gradients_f32() {
        let (x, l) = case();
        let xs = x.to_data().to_vec::<f32>().unwrap();
        let ws = l.weight.val().to_data().to_vec::<f32>().unwrap();
        let f32_out = linear_in(&l, x.clone(), Precision::F32).to_data().to_vec::<f32>().unwrap();
        let out = linear_in(&l, x.clone(), Precision::Bf16);
        assert_eq!(out.dtype(), DType::F32, "the product comes back as f32");
        let got = out.to_data().to_vec::<f32>().unwrap();
        for r in 0..2 {
            for c in 0..2 {
                let dot = |round: fn(f32) -> f32| {
                    (0..3).map(|k| round(xs[r * 3 + k]) * round(ws[k * 2 + c])).sum::<f32>()
                        + [0.25f32, -0.125][c]
                };
                let (want, exact) = (dot(to_bf16), dot(|v| v));
                // bf16 operands, then at most the rounding of a bf16 result (2⁻⁹ relative).
                let tol = 0.004 * want.abs().max(1.0);
                assert!((got[r * 2 + c] - want).abs() <= tol, "{r},{c}: {got:?} vs {want}");
                assert!((f32_out[r * 2 + c] - exact).abs() < 1e-5);
            }
        }
        assert_ne!(got, f32_out, "bf16 operands change the product");
        // Gradients reach the f32 weights and input as f32, close to the f32 ones.
        let grads = out.sum().backward();
        let gw = l.weight.grad(&grads).unwrap();
        assert_eq!(gw.dtype(), DType::F32);
        let gx = x.grad(&grads).unwrap().to_data().to_vec::<f32>().unwrap();
        let (x32, l32) = case();
        let g32 = linear_in(&l32, x32.clone(), Precision::F32).sum().backward();
        let gx32 = x32.grad(&g32).unwrap().to_data().to_vec::<f32>().unwrap();
        for (a, b) in gx.iter().zip(&gx32) {
            assert!((a - b).abs() <= 0.01 * b.abs().max(0.1), "input gradient {a} vs {b}");
        }
        let gb = l.bias.as_ref().unwrap().grad(&grads).unwrap().to_data().to_vec::<f32>().unwrap();
        assert_eq!(gb, vec![2.0, 2.0], "the bias gradient is the row count, in f32");
    }
}
