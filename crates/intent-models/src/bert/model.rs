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
use burn::tensor::{Bool, ElementConversion, Int, Tensor};

use std::sync::Arc;

use super::config::{Activation, BertConfig};
use super::fused::add_layer_norm;

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
}

impl<B: Backend> BertLayer<B> {
    fn forward(&self, x: Tensor<B, 3>, cx: &LayerContext<'_, B>) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let heads = cx.heads;
        let x = x.reshape([b * l, d]);
        let a = &self.attention.self_attn;
        let (q, k, v) = (a.query.forward(x.clone()), a.key.forward(x.clone()), a.value.forward(x.clone()));
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
            super::dropout::dropout(cx.hidden, o.dense.forward(ctx)),
            &o.layer_norm,
            cx.norm_eps,
        );
        let h = activate(self.intermediate.dense.forward(x.clone()), cx.activation);
        let o = &self.output;
        add_layer_norm(x, super::dropout::dropout(cx.hidden, o.dense.forward(h)), &o.layer_norm, cx.norm_eps)
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
            // Without padding (one text, or texts of one length) no mask is needed at all.
            let padded = attention_mask.clone().equal_elem(0).any().into_scalar().elem::<bool>();
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
