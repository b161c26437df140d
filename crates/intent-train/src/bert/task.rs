//! The engine's task of fine-tuning: a batch's loss and correct rows, validation, the lengths
//! for length buckets, the checkpoint fingerprint and the head's learning rate.

use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use intent_models::bert::BertForSequenceClassification;

use super::batching::{batch, Padding};
use crate::batches::Batch;
use crate::engine::TrainTask;
use crate::loss::bce_with_pos_weight;

/// Tokenized training and validation data with what the loss needs.
pub(super) struct Task<B: AutodiffBackend> {
    pub(super) rows: Vec<Vec<i64>>,
    pub(super) lengths: Vec<usize>,
    pub(super) fingerprint: String,
    pub(super) targets: Vec<Vec<usize>>,
    pub(super) val_rows: Vec<Vec<i64>>,
    pub(super) val_targets: Vec<Vec<usize>>,
    pub(super) labels: usize,
    pub(super) multi: bool,
    pub(super) pad: i64,
    pub(super) padding: Padding,
    /// BCE weights of positives, `[1, labels]` (multi-label with [`crate::loss::PosWeight`] on).
    pub(super) pos_weight: Option<Tensor<B, 2>>,
    /// The head's learning rate over the encoder's.
    pub(super) head_factor: f64,
    pub(super) device: B::Device,
}

impl<B: AutodiffBackend> Task<B> {
    /// Loss of `logits` (rows of the examples `idx`) and the number of rows predicted right
    /// (single-label: argmax = gold; multi-label: the label set at threshold 0.5 = gold), on the
    /// device.
    fn loss(&self, logits: Tensor<B, 2>, idx: &[usize]) -> (Tensor<B, 1>, Tensor<B, 1, Int>) {
        let n = idx.len();
        if self.multi {
            let k = self.labels;
            let mut hot = vec![0i64; n * k];
            for (r, &i) in idx.iter().enumerate() {
                self.targets[i].iter().for_each(|&c| hot[r * k + c] = 1);
            }
            let t = Tensor::<B, 2, Int>::from_data(TensorData::new(hot, [n, k]), &self.device);
            let right = logits.clone().greater_elem(0.0).equal(t.clone().equal_elem(1)).int();
            let correct = right.sum_dim(1).equal_elem(k as i64).int().sum();
            let loss = match &self.pos_weight {
                Some(w) => bce_with_pos_weight(logits, t.float(), w.clone()),
                None => BinaryCrossEntropyLossConfig::new()
                    .with_logits(true)
                    .init(&self.device)
                    .forward(logits, t),
            };
            (loss, correct)
        } else {
            let gold: Vec<i64> = idx.iter().map(|&i| self.targets[i][0] as i64).collect();
            let t = Tensor::<B, 1, Int>::from_data(TensorData::new(gold, [n]), &self.device);
            let correct = logits.clone().argmax(1).reshape([n]).equal(t.clone()).int().sum();
            (CrossEntropyLossConfig::new().init(&self.device).forward(logits, t), correct)
        }
    }
}

/// Rows whose predicted label set equals the gold one (sorted label indices; single-label:
/// argmax = gold).
fn correct(logits: Vec<f32>, k: usize, gold: &[&Vec<usize>], multi: bool) -> usize {
    logits
        .chunks(k)
        .zip(gold)
        .filter(|(z, g)| {
            if multi {
                let pred: Vec<usize> = (0..k).filter(|&c| z[c] > 0.0).collect();
                pred.as_slice() == g.as_slice()
            } else {
                let best = (0..k).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap_or(0);
                g.first() == Some(&best)
            }
        })
        .count()
}

impl<B: AutodiffBackend> TrainTask<B, BertForSequenceClassification<B>> for Task<B> {
    fn step(
        &mut self,
        model: &BertForSequenceClassification<B>,
        b: &Batch,
    ) -> (Tensor<B, 1>, Tensor<B, 1, Int>) {
        let [ids, types, mask] = batch::<B>(&self.rows, &b.idx, self.pad, &self.padding, &self.device);
        let mut logits = model.forward(ids, types, mask);
        if b.is_filled() {
            // The repeats filling the batch up run through the model (one shape) but not the loss.
            logits = logits.narrow(0, 0, b.real);
        }
        self.loss(logits, b.real_idx())
    }

    fn validate(&mut self, model: &BertForSequenceClassification<B::InnerBackend>) -> Option<f64> {
        if self.val_rows.is_empty() {
            return None;
        }
        let (mut ok, k) = (0, self.labels);
        let mut probs: Vec<f32> = Vec::new();
        for chunk in
            crate::batches::eval_chunks(self.val_rows.len(), self.padding.eval_rows, self.padding.fill)
        {
            let [ids, types, mask] =
                batch::<B::InnerBackend>(&self.val_rows, &chunk.idx, self.pad, &self.padding, &self.device);
            let z: Vec<f32> =
                model.forward(ids, types, mask).into_data().convert::<f32>().into_vec().unwrap_or_default();
            let gold: Vec<&Vec<usize>> = chunk.real_idx().iter().map(|&i| &self.val_targets[i]).collect();
            if self.multi {
                probs.extend(z[..chunk.real * k].iter().map(|&x| 1.0 / (1.0 + (-x).exp())));
            } else {
                ok += correct(z, k, &gold, false);
            }
        }
        // Multi-label: micro-F1 at the best single threshold (thresholds are tuned after
        // training; at a fixed 0.5 an early, nearly empty model can look best).
        Some(if self.multi {
            intent_eval::best_micro_f1(&probs, &self.val_targets, k).1
        } else {
            ok as f64 / self.val_rows.len() as f64
        })
    }

    fn lengths(&self) -> Option<&[usize]> {
        Some(&self.lengths)
    }

    fn fingerprint(&self) -> Option<String> {
        Some(self.fingerprint.clone())
    }

    fn lr_factors(
        &self,
        model: &BertForSequenceClassification<B>,
    ) -> std::collections::HashMap<burn::module::ParamId, f64> {
        let f = self.head_factor;
        if f == 1.0 {
            return Default::default(); // one rate: the plain optimizer step, as before head rates
        }
        let head = &model.classifier;
        std::iter::once(head.weight.id).chain(head.bias.as_ref().map(|b| b.id)).map(|id| (id, f)).collect()
    }
}
