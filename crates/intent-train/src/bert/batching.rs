//! Token batches of fine-tuning and evaluation: tokenizing, padding to the longest text or up
//! to a multiple (static shapes), and class probabilities in evaluation batches.

use burn::prelude::*;
use intent_models::bert::{BertForSequenceClassification, BertTokenizer};

use super::BertOptions;
use crate::TrainError;

/// Token ids of each text (`[CLS] … [SEP]`, cut at the limit).
pub(super) fn tokenize(tok: &BertTokenizer, texts: &[&str]) -> Result<Vec<Vec<i64>>, TrainError> {
    texts.iter().map(|t| Ok(tok.ids(t)?.into_iter().map(i64::from).collect())).collect()
}

/// The shapes of the batches: lengths padded to the longest text of each or up to a multiple,
/// and the rows of evaluation batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    /// Round lengths up to a multiple of this (`None`: the longest text).
    pub multiple: Option<usize>,
    /// The token limit (lengths never exceed it).
    pub max_len: usize,
    /// Fill short batches up to the batch size with repeats (one row count for every batch).
    pub fill: bool,
    /// Texts per evaluation batch: with static shapes the training batch size, so validation
    /// runs in shapes training has compiled and autotuned already; else [`EVAL_BATCH`].
    pub eval_rows: usize,
}

/// Texts per evaluation batch without static shapes.
pub const EVAL_BATCH: usize = 64;

/// Default of [`BertOptions::pad_to_multiple_of`] with static shapes.
pub const DEFAULT_PAD_TO_MULTIPLE_OF: usize = 16;

impl Padding {
    /// The padding of `opts` on a device where static shapes are `on` or off.
    pub fn of(opts: &BertOptions, on: bool) -> Padding {
        let multiple = match opts.pad_to_multiple_of {
            Some(m) => Some(m),
            None if on => Some(DEFAULT_PAD_TO_MULTIPLE_OF),
            None => None,
        };
        Padding {
            multiple: multiple.filter(|&m| m > 1),
            max_len: opts.max_len,
            fill: on,
            eval_rows: if on { opts.engine.batch_size.max(1) } else { EVAL_BATCH },
        }
    }
}

/// `[ids, token types, mask]` of the rows `idx`, padded to the longest (or up to a multiple).
pub fn batch<B: Backend>(
    rows: &[Vec<i64>],
    idx: &[usize],
    pad: i64,
    padding: &Padding,
    device: &B::Device,
) -> [Tensor<B, 2, Int>; 3] {
    let longest = idx.iter().map(|&i| rows[i].len()).max().unwrap_or(1);
    let len = crate::batches::padded_len(longest, padding.multiple, padding.max_len);
    let mut ids = vec![pad; idx.len() * len];
    let mut mask = vec![0i64; idx.len() * len];
    for (r, &i) in idx.iter().enumerate() {
        ids[r * len..r * len + rows[i].len()].copy_from_slice(&rows[i]);
        mask[r * len..r * len + rows[i].len()].iter_mut().for_each(|m| *m = 1);
    }
    let t = |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [idx.len(), len]), device);
    [t(ids), t(vec![0; idx.len() * len]), t(mask)]
}

/// Class probabilities of `rows` (softmax, or sigmoids for multi-label), in evaluation batches.
pub(super) fn probabilities<B: Backend>(
    model: &BertForSequenceClassification<B>,
    rows: &[Vec<i64>],
    pad: i64,
    multi: bool,
    padding: &Padding,
    device: &B::Device,
) -> Vec<Vec<f32>> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in crate::batches::eval_chunks(rows.len(), padding.eval_rows, padding.fill) {
        let [ids, types, mask] = batch::<B>(rows, &chunk.idx, pad, padding, device);
        let z = model.forward(ids, types, mask);
        let p = if multi {
            burn::tensor::activation::sigmoid(z)
        } else {
            burn::tensor::activation::softmax(z, 1)
        };
        let k = p.dims()[1];
        let v: Vec<f32> = p.into_data().convert::<f32>().into_vec().unwrap_or_default();
        out.extend(v.chunks(k).take(chunk.real).map(<[f32]>::to_vec));
    }
    out
}
