//! Training NCF models (GMF, MLP, NeuMF) on implicit feedback: binary cross-entropy on logits,
//! `num_neg` negatives per positive re-sampled every epoch, Adam (PyTorch's settings), and the
//! leave-one-out evaluation with sampled negatives after every epoch.
//!
//! The forward and backward passes run on the host over `matrixmultiply` GEMMs. Every matrix of
//! these models is at most a few hundred by 64: on a CPU, the per-op dispatch and autodiff
//! bookkeeping of a tensor library cost more than the arithmetic (a burn step of the same model
//! measured several times slower than this loop), and the speed target is half of PyTorch's
//! epoch time. The backward pass is checked against finite differences in the tests.

pub mod engine;
pub mod run;

use std::collections::HashSet;
use std::time::Instant;

use intent_data::recsys::LeaveOneOut;
use intent_eval::ranking::{from_ranks, rank_against, RankingReport};
use intent_models::checked::{Check, Checked};
use intent_models::ncf::{gemm, Activations, Ncf};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batches::epoch_batches;
use crate::optim::{adamw_update, AdamWParams};
use crate::progress::EpochBar;
use crate::schedule::{lr_at, LrSchedule};
use crate::TrainError;

/// NCF's default batch size and learning rate: 256 at 1e-3 on the CPU (the paper's), 2048 at
/// 2.83e-3 on accelerators ([`crate::device::BatchDefaults`]). MovieLens-100k, NeuMF, 20 epochs,
/// HR@10 on the CPU: 0.5981 at 256 / 1e-3, 0.6013 at 2048 / 2.8e-3; 4096 / 4e-3 gave 0.5885 and
/// 4096 / 1e-3 0.5228 (a larger batch needs the larger rate). An eighth of the steps per epoch.
pub const BATCH_DEFAULTS: crate::device::BatchDefaults =
    crate::device::BatchDefaults { cpu_batch: 256, lr: 1e-3, accelerator_batch: 2048 };

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NcfTrainConfig {
    /// Passes over the training pairs.
    pub epochs: usize,
    /// Samples (positives and negatives) per step.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Sampled negatives per positive, drawn anew each epoch.
    pub num_neg: usize,
    /// Seed of negative sampling and shuffling.
    pub seed: u64,
    /// AdamW decoupled weight decay (0: Adam, as the paper and PyTorch's reference).
    pub weight_decay: f64,
    /// Learning rate over the run (constant, as the paper; or decaying to 0 at the last step).
    pub schedule: LrSchedule,
    /// Progress bar on a terminal.
    pub progress: bool,
}

impl Default for NcfTrainConfig {
    fn default() -> Self {
        NcfTrainConfig {
            epochs: 20,
            batch_size: BATCH_DEFAULTS.cpu_batch,
            lr: BATCH_DEFAULTS.lr,
            num_neg: 4,
            seed: 42,
            weight_decay: 0.0,
            schedule: LrSchedule::Constant,
            progress: true,
        }
    }
}

impl Check for NcfTrainConfig {
    type Error = TrainError;

    /// Checks the settings; errors name the field.
    fn validate(&self) -> Result<(), TrainError> {
        let bad = |name, message: &str| Err(TrainError::Hyperparameter { name, message: message.into() });
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be a positive number");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", "must be a number ≥ 0");
        }
        Ok(())
    }
}

/// The sampled leave-one-out evaluation: per user, the test item and its fixed negatives.
#[derive(Debug, Clone)]
pub struct SampledEval {
    /// `(user, test item, negatives)` of the users with a test item.
    pub cases: Vec<(u32, u32, Vec<u32>)>,
    /// The cut-off K.
    pub k: usize,
}

impl SampledEval {
    /// From a split and the negatives of [`intent_data::recsys::test_negatives`]; users without
    /// a test item or without negatives are left out.
    pub fn new(split: &LeaveOneOut, negatives: &[Vec<u32>], k: usize) -> Self {
        let cases = split
            .test
            .iter()
            .enumerate()
            .filter_map(|(u, t)| {
                t.filter(|_| !negatives[u].is_empty()).map(|t| (u as u32, t, negatives[u].clone()))
            })
            .collect();
        SampledEval { cases, k }
    }

    /// HR@K and NDCG@K of `model`.
    pub fn run(&self, model: &Ncf) -> RankingReport {
        let (mut users, mut items) = (Vec::new(), Vec::new());
        for (u, t, negs) in &self.cases {
            users.extend(std::iter::repeat_n(*u, negs.len() + 1));
            items.push(*t);
            items.extend_from_slice(negs);
        }
        let scores = model.score(&users, &items);
        let mut ranks = Vec::with_capacity(self.cases.len());
        let mut at = 0;
        for (_, _, negs) in &self.cases {
            ranks.push(rank_against(scores[at], &scores[at + 1..at + 1 + negs.len()]));
            at += negs.len() + 1;
        }
        from_ranks(&ranks, self.k)
    }
}

/// The samples of one epoch: each training pair (label 1) followed by its sampled negatives
/// (label 0).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EpochSamples {
    /// User of each sample.
    pub users: Vec<u32>,
    /// Item of each sample.
    pub items: Vec<u32>,
    /// 1 for an interaction, 0 for a sampled negative.
    pub labels: Vec<f32>,
}

impl EpochSamples {
    /// The samples `batch` (indices) into the three buffers, cleared first.
    pub fn gather(&self, batch: &[usize], users: &mut Vec<u32>, items: &mut Vec<u32>, labels: &mut Vec<f32>) {
        users.clear();
        items.clear();
        labels.clear();
        for &k in batch {
            users.push(self.users[k]);
            items.push(self.items[k]);
            labels.push(self.labels[k]);
        }
    }
}

/// Negative sampling: for each training pair, `num_neg` items the user never interacted with
/// (in training), drawn uniformly, anew each epoch from the seed and the epoch alone (so the
/// host loop and the engine draw the same samples).
pub struct Sampler<'a> {
    train: &'a [(u32, u32)],
    seen: Vec<HashSet<u32>>,
    num_items: usize,
    num_neg: usize,
    seed: u64,
}

impl<'a> Sampler<'a> {
    /// Checks that every user has an item left to sample.
    pub fn new(
        split: &'a LeaveOneOut,
        num_items: usize,
        num_neg: usize,
        seed: u64,
    ) -> Result<Self, TrainError> {
        if split.train.is_empty() {
            return Err(TrainError::Data("no training pair".into()));
        }
        let seen: Vec<HashSet<u32>> = split.seen(split.test.len());
        if num_neg > 0 {
            if let Some(u) = seen.iter().position(|s| !s.is_empty() && s.len() >= num_items) {
                return Err(TrainError::Data(format!(
                    "user index {u} interacted with every item: no negative to sample"
                )));
            }
        }
        Ok(Sampler { train: &split.train, seen, num_items, num_neg, seed })
    }

    /// Samples per epoch.
    pub fn len(&self) -> usize {
        self.train.len() * (1 + self.num_neg)
    }

    /// Always false ([`Sampler::new`] refuses empty data).
    pub fn is_empty(&self) -> bool {
        self.train.is_empty()
    }

    /// Draws epoch `epoch`'s samples into `out`.
    pub fn fill(&self, epoch: usize, out: &mut EpochSamples) {
        // A stream of its own (the seed's batch order uses the plain seed).
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x6e65_6761_7469_7665);
        rng.set_stream(epoch as u64);
        let per = 1 + self.num_neg;
        let total = self.len();
        out.users.resize(total, 0);
        out.items.resize(total, 0);
        out.labels.resize(total, 0.0);
        for (k, &(u, i)) in self.train.iter().enumerate() {
            let at = k * per;
            out.users[at..at + per].fill(u);
            out.items[at] = i;
            out.labels[at] = 1.0;
            for s in 1..per {
                let j = loop {
                    let j = rng.random_range(0..self.num_items as u32);
                    if !self.seen[u as usize].contains(&j) {
                        break j;
                    }
                };
                out.items[at + s] = j;
                out.labels[at + s] = 0.0;
            }
        }
    }
}

/// One epoch's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NcfEpoch {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Seconds of sampling and training (evaluation excluded).
    pub seconds: f64,
    /// HR@K after the epoch.
    pub hr: Option<f64>,
    /// NDCG@K after the epoch.
    pub ndcg: Option<f64>,
}

/// Gradients and Adam moments, one buffer per parameter in [`params`] order.
struct Slots {
    grads: Vec<Vec<f32>>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

/// The parameters of `m` as flat buffers, in a fixed order.
fn params(m: &mut Ncf) -> Vec<&mut Vec<f32>> {
    let mut out = vec![&mut m.gmf_user, &mut m.gmf_item, &mut m.mlp_user, &mut m.mlp_item];
    for l in m.tower.iter_mut() {
        out.push(&mut l.weight);
        out.push(&mut l.bias);
    }
    out.push(&mut m.out.weight);
    out.push(&mut m.out.bias);
    out
}

/// Indices of [`params`].
const GMF_USER: usize = 0;
const GMF_ITEM: usize = 1;
const MLP_USER: usize = 2;
const MLP_ITEM: usize = 3;

/// Mean BCE-with-logits of the batch; fills `grads` (zeroed first) with its gradient.
fn backward(
    model: &Ncf,
    users: &[u32],
    items: &[u32],
    labels: &[f32],
    act: &mut Activations,
    grads: &mut [Vec<f32>],
) -> f64 {
    for g in grads.iter_mut() {
        g.iter_mut().for_each(|x| *x = 0.0);
    }
    model.forward(users, items, act);
    let n = users.len();
    let scale = 1.0 / n as f32;
    let mut loss = 0.0f64;
    let dlogit: Vec<f32> = act
        .logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| {
            loss += (z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()) as f64;
            (1.0 / (1.0 + (-z).exp()) - y) * scale
        })
        .collect();
    let (f, e) = (model.gmf_dim(), model.mlp_dim());
    let width = model.out.inp;
    let tower_at = 4;
    let out_at = tower_at + 2 * model.tower.len();
    // Output layer: dW = dlogitᵀ · head, db = Σ dlogit, dhead = dlogit · W.
    gemm(1, n, width, &dlogit, (1, 1), &act.head, (width, 1), &mut grads[out_at], 1.0);
    grads[out_at + 1][0] = dlogit.iter().sum();
    let mut dhead = vec![0.0f32; n * width];
    gemm(n, 1, width, &dlogit, (1, 1), &model.out.weight, (width, 1), &mut dhead, 0.0);
    if f > 0 {
        for (r, (&u, &i)) in users.iter().zip(items).enumerate() {
            let dg = &dhead[r * width..r * width + f];
            let (p, q) = (&model.gmf_user[u as usize * f..][..f], &model.gmf_item[i as usize * f..][..f]);
            for (k, g) in dg.iter().enumerate() {
                grads[GMF_USER][u as usize * f + k] += g * q[k];
                grads[GMF_ITEM][i as usize * f + k] += g * p[k];
            }
        }
    }
    if e > 0 {
        let last = *model.arch.layers.last().expect("validated");
        let mut dx: Vec<f32> =
            (0..n).flat_map(|r| dhead[r * width + f..r * width + f + last].iter().copied()).collect();
        for (k, layer) in model.tower.iter().enumerate().rev() {
            let (x_in, x_out) = (&act.xs[k], &act.xs[k + 1]);
            for (d, &y) in dx.iter_mut().zip(x_out) {
                if y <= 0.0 {
                    *d = 0.0;
                }
            }
            let (o, i) = (layer.out, layer.inp);
            gemm(o, n, i, &dx, (1, o), x_in, (i, 1), &mut grads[tower_at + 2 * k], 1.0);
            let db = &mut grads[tower_at + 2 * k + 1];
            for row in dx.chunks_exact(o) {
                for (b, d) in db.iter_mut().zip(row) {
                    *b += d;
                }
            }
            let mut dprev = vec![0.0f32; n * i];
            gemm(n, o, i, &dx, (o, 1), &layer.weight, (i, 1), &mut dprev, 0.0);
            dx = dprev;
        }
        for (r, (&u, &i)) in users.iter().zip(items).enumerate() {
            let row = &dx[r * 2 * e..(r + 1) * 2 * e];
            for (a, d) in grads[MLP_USER][u as usize * e..][..e].iter_mut().zip(&row[..e]) {
                *a += d;
            }
            for (a, d) in grads[MLP_ITEM][i as usize * e..][..e].iter_mut().zip(&row[e..]) {
                *a += d;
            }
        }
    }
    loss / n as f64
}

/// What [`fit_ncf`] returns.
pub struct NcfFit {
    /// The model after the last epoch.
    pub model: Ncf,
    /// Per-epoch logs.
    pub history: Vec<NcfEpoch>,
    /// Time to the first step and steady-state speed.
    pub timing: crate::timing::Timing,
}

/// Trains `model` on the training pairs of `split` (`num_items` items); with `eval`, reports
/// HR/NDCG after every epoch. The model after the last epoch is returned (no selection on the
/// test items).
pub fn fit_ncf(
    mut model: Ncf,
    split: &LeaveOneOut,
    num_items: usize,
    eval: Option<&SampledEval>,
    config: &Checked<NcfTrainConfig>,
) -> Result<NcfFit, TrainError> {
    crate::engine::flush_denormals();
    let sampler = Sampler::new(split, num_items, config.num_neg, config.seed)?;
    let adam =
        AdamWParams { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, weight_decay: config.weight_decay as f32 };
    let sizes: Vec<usize> = params(&mut model).iter().map(|p| p.len()).collect();
    let mut slots = Slots {
        grads: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        m: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        v: sizes.iter().map(|&n| vec![0.0; n]).collect(),
    };
    let total = sampler.len();
    let mut samples = EpochSamples::default();
    let (mut bu, mut bi, mut bl) = (Vec::new(), Vec::new(), Vec::new());
    let mut act = Activations::default();
    let mut history = Vec::new();
    let mut time = 0i32;
    let mut clock = crate::timing::StepClock::new(total.div_ceil(config.batch_size) * config.epochs);
    for epoch in 1..=config.epochs {
        let start = Instant::now();
        sampler.fill(epoch, &mut samples);
        let order = epoch_batches(total, config.batch_size, config.seed, epoch, None);
        let steps = order.len();
        let bar = EpochBar::new(config.progress, epoch, config.epochs, steps);
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        for (s, batch) in order.iter().enumerate() {
            let step_start = Instant::now();
            samples.gather(batch, &mut bu, &mut bi, &mut bl);
            let loss = backward(&model, &bu, &bi, &bl, &mut act, &mut slots.grads);
            if !loss.is_finite() {
                return Err(TrainError::Diverged { epoch, step: s, loss });
            }
            loss_sum += loss * batch.len() as f64;
            seen += batch.len();
            let lr = lr_at(config.schedule, time as usize, 0, steps * config.epochs, config.lr) as f32;
            time += 1;
            for (((p, g), m), v) in params(&mut model)
                .into_iter()
                .zip(&slots.grads)
                .zip(slots.m.iter_mut())
                .zip(slots.v.iter_mut())
            {
                adamw_update(adam, time, lr, 1.0, p, g, m, v);
            }
            clock.steps(time as usize - 1, &[batch.len()], step_start);
            if s % 64 == 0 {
                bar.step(loss_sum / seen as f64, seen);
            }
        }
        bar.finish();
        let seconds = start.elapsed().as_secs_f64();
        clock.epoch_done(seconds);
        let report = eval.map(|e| e.run(&model));
        let log = NcfEpoch {
            epoch,
            loss: loss_sum / total as f64,
            seconds,
            hr: report.as_ref().map(|r| r.hr),
            ndcg: report.as_ref().map(|r| r.ndcg),
        };
        match &report {
            Some(r) => tracing::info!(
                "epoch {epoch}/{}: loss {:.4}  HR@{k} {:.4}  NDCG@{k} {:.4}  {seconds:.2}s",
                config.epochs,
                log.loss,
                r.hr,
                r.ndcg,
                k = r.k
            ),
            None => tracing::info!("epoch {epoch}/{}: loss {:.4}  {seconds:.2}s", config.epochs, log.loss),
        }
        history.push(log);
    }
    Ok(NcfFit { model, history, timing: clock.timing() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use intent_models::ncf::{NcfArchitecture, NcfKind};

    /// The analytic gradient of every parameter against central finite differences (f64 loss
    /// on f32 weights: a relative tolerance of a few per cent on entries that matter).
    #[test]
    #[allow(clippy::needless_range_loop)] // indices name the parameter and entry being nudged
    fn backward_matches_finite_differences() {
        for kind in [NcfKind::Gmf, NcfKind::Mlp, NcfKind::Neumf] {
            let arch =
                NcfArchitecture { kind, num_users: 4, num_items: 6, factors: 3, layers: vec![6, 5, 3] };
            let mut m = Ncf::init(arch, 5).unwrap();
            // Larger weights than the N(0, 0.01) init, so that gradients are far from zero.
            for p in params(&mut m) {
                for (k, x) in p.iter_mut().enumerate() {
                    *x = ((k * 37 % 23) as f32 / 23.0 - 0.4) * 1.5;
                }
            }
            let (users, items, labels) =
                (vec![0u32, 1, 3, 1, 2], vec![5u32, 2, 0, 2, 4], vec![1.0f32, 0.0, 1.0, 1.0, 0.0]);
            let mut grads: Vec<Vec<f32>> = params(&mut m).iter().map(|p| vec![0.0; p.len()]).collect();
            let mut act = Activations::default();
            backward(&m, &users, &items, &labels, &mut act, &mut grads);
            let loss_of = |m: &Ncf| {
                let mut act = Activations::default();
                m.forward(&users, &items, &mut act);
                act.logits
                    .iter()
                    .zip(&labels)
                    .map(|(&z, &y)| (z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()) as f64)
                    .sum::<f64>()
                    / users.len() as f64
            };
            let mut checked = 0;
            for pi in 0..grads.len() {
                for k in 0..grads[pi].len() {
                    let h = 1e-2f32;
                    let mut plus = m.clone();
                    params(&mut plus)[pi][k] += h;
                    let mut minus = m.clone();
                    params(&mut minus)[pi][k] -= h;
                    let numeric = (loss_of(&plus) - loss_of(&minus)) / (2.0 * h as f64);
                    let analytic = grads[pi][k] as f64;
                    assert!(
                        (numeric - analytic).abs() <= 2e-3 + 0.03 * numeric.abs(),
                        "{kind:?} param {pi}[{k}]: numeric {numeric} analytic {analytic}"
                    );
                    checked += usize::from(analytic.abs() > 1e-3);
                }
            }
            assert!(checked > 20, "{kind:?}: only {checked} non-zero gradients");
        }
    }

    #[test]
    fn training_negatives_are_never_positives_and_follow_seed_and_epoch() {
        let data = intent_data::recsys::synthetic_interactions(50, 30, 12, 3, 8);
        let ix = intent_data::recsys::Indexed::new(&data);
        let split = intent_data::recsys::leave_one_out(&ix);
        let seen = split.seen(split.test.len());
        let sampler = Sampler::new(&split, ix.num_items(), 4, 7).unwrap();
        assert_eq!(sampler.len(), split.train.len() * 5);
        let mut a = EpochSamples::default();
        sampler.fill(1, &mut a);
        assert_eq!(a.users.len(), sampler.len());
        for (k, &(u, i)) in split.train.iter().enumerate() {
            assert_eq!(
                (a.users[5 * k], a.items[5 * k], a.labels[5 * k]),
                (u, i, 1.0),
                "the positive leads its group"
            );
            for s in 1..5 {
                let (su, si, sl) = (a.users[5 * k + s], a.items[5 * k + s], a.labels[5 * k + s]);
                assert_eq!((su, sl), (u, 0.0));
                assert!(
                    !seen[u as usize].contains(&si),
                    "user {u}: sampled negative {si} is one of their items"
                );
                assert!((si as usize) < ix.num_items());
            }
        }
        let (mut again, mut next) = (EpochSamples::default(), EpochSamples::default());
        sampler.fill(1, &mut again);
        sampler.fill(2, &mut next);
        assert_eq!(a, again, "same seed and epoch, same samples");
        assert_ne!(a.items, next.items, "re-sampled each epoch");
        // A user with every item has no negative: refused, not an endless loop.
        let full = LeaveOneOut { train: (0..3).map(|i| (0u32, i)).collect(), test: vec![None] };
        let err = Sampler::new(&full, 3, 4, 1).err().expect("refused").to_string();
        assert!(err.contains("interacted with every item"), "{err}");
    }

    #[test]
    fn learns_synthetic_preferences_and_is_seeded() {
        let data = intent_data::recsys::synthetic_interactions(200, 60, 8, 4, 3);
        let ix = intent_data::recsys::Indexed::new(&data);
        let split = intent_data::recsys::leave_one_out(&ix);
        let negs = intent_data::recsys::test_negatives(&split, ix.num_items(), 20, 1).unwrap();
        let eval = SampledEval::new(&split, &negs, 5);
        let arch = NcfArchitecture {
            kind: NcfKind::Neumf,
            num_users: ix.num_users(),
            num_items: ix.num_items(),
            factors: 8,
            layers: vec![16, 8],
        };
        let before = eval.run(&Ncf::init(arch.clone(), 1).unwrap());
        let config =
            NcfTrainConfig { epochs: 20, batch_size: 64, lr: 5e-3, progress: false, ..Default::default() }
                .check()
                .unwrap();
        let fit = fit_ncf(Ncf::init(arch.clone(), 1).unwrap(), &split, ix.num_items(), Some(&eval), &config)
            .unwrap();
        let after = eval.run(&fit.model);
        // 21 candidates, K = 5: chance is ~0.24; the taste groups lift it well above.
        assert!(after.hr > 0.5 && after.hr > before.hr + 0.25, "before {before:?} after {after:?}");
        assert!(fit.history.last().unwrap().loss < fit.history[0].loss);
        let again = fit_ncf(Ncf::init(arch, 1).unwrap(), &split, ix.num_items(), None, &config).unwrap();
        assert_eq!(again.model, fit.model, "same seed, same model");
    }
}
