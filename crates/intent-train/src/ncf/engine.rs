//! NCF on the shared training engine ([`crate::engine::fit`]) and any burn backend: the path of
//! `intent train ncf --device cuda` (and of `--engine burn` on the CPU). It draws the same
//! samples and batches as the host loop of [`crate::ncf::fit_ncf`] (the same [`Sampler`] and
//! [`crate::batches::epoch_batches`]) and takes the same Adam steps, so the two paths train the
//! same model up to float rounding; the tests check it.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use intent_data::recsys::LeaveOneOut;
use intent_eval::ranking::RankingReport;
use intent_models::ncf::burn_module::{bce_with_logits, index_tensor, NcfModule};
use intent_models::ncf::{Ncf, NcfArchitecture};

use intent_models::checked::{Check, Checked};

use crate::batches::Batch;
use crate::device::{dispatch, BackendJob, DeviceSpec};
use crate::engine::{fit, EngineConfig, TrainTask};
use crate::ncf::{EpochSamples, NcfEpoch, NcfFit, NcfTrainConfig, SampledEval, Sampler};
use crate::TrainError;

/// What the engine asks of NCF: batches of sampled pairs, their BCE loss, the ranking figures
/// after each epoch.
struct NcfTask<'a, B: AutodiffBackend> {
    sampler: Sampler<'a>,
    samples: EpochSamples,
    eval: Option<&'a SampledEval>,
    arch: NcfArchitecture,
    device: B::Device,
    reports: Vec<Option<RankingReport>>,
    batch: (Vec<u32>, Vec<u32>, Vec<f32>),
}

impl<B: AutodiffBackend> TrainTask<B, NcfModule<B>> for NcfTask<'_, B> {
    fn step(&mut self, model: &NcfModule<B>, batch: &Batch) -> (Tensor<B, 1>, Tensor<B, 1, Int>) {
        let (users, items, labels) = &mut self.batch;
        self.samples.gather(&batch.idx, users, items, labels);
        let mut y = Tensor::<B, 1>::from_data(TensorData::new(labels.clone(), [labels.len()]), &self.device);
        let mut logits = model.forward(index_tensor(users, &self.device), index_tensor(items, &self.device));
        if batch.is_filled() {
            // The repeats filling the batch up run through the model (one shape) but not the loss.
            logits = logits.narrow(0, 0, batch.real);
            y = y.narrow(0, 0, batch.real);
        }
        let correct = logits.clone().greater_elem(0.0).equal(y.clone().greater_elem(0.5)).int().sum();
        (bce_with_logits(logits, y), correct)
    }

    fn start_epoch(&mut self, epoch: usize) {
        self.sampler.fill(epoch, &mut self.samples);
    }

    /// Reports HR/NDCG but returns no score: the engine then keeps the last epoch's model, as
    /// the host loop does (choosing an epoch by the test items would flatter the figures).
    fn validate(&mut self, model: &NcfModule<B::InnerBackend>) -> Option<f64> {
        let report = self.eval.map(|e| e.run(&model.to_host(&self.arch)));
        if let Some(r) = &report {
            tracing::info!(
                "epoch {}: HR@{k} {:.4}  NDCG@{k} {:.4}",
                self.reports.len() + 1,
                r.hr,
                r.ndcg,
                k = r.k
            );
        }
        self.reports.push(report);
        None
    }

    fn fingerprint(&self) -> Option<String> {
        None
    }
}

/// [`crate::ncf::fit_ncf`] on the engine: backend `B` on `device`.
pub fn fit_ncf_on<B: AutodiffBackend>(
    model: Ncf,
    split: &LeaveOneOut,
    num_items: usize,
    eval: Option<&SampledEval>,
    config: &Checked<NcfTrainConfig>,
    device: &B::Device,
) -> Result<NcfFit, TrainError> {
    let sampler = Sampler::new(split, num_items, config.num_neg, config.seed)?;
    let n = sampler.len();
    let engine = EngineConfig {
        epochs: config.epochs,
        batch_size: config.batch_size,
        lr: config.lr,
        weight_decay: config.weight_decay,
        betas: (0.9, 0.999),
        epsilon: 1e-8,
        schedule: config.schedule,
        warmup_ratio: 0.0,
        patience: None,
        seed: config.seed,
        progress: config.progress,
        ..EngineConfig::default()
    }
    .check()?;
    let arch = model.arch.clone();
    let module = NcfModule::<B>::from_host(&model, device);
    let mut task = NcfTask::<B> {
        sampler,
        samples: EpochSamples::default(),
        eval,
        arch: arch.clone(),
        device: device.clone(),
        reports: Vec::new(),
        batch: Default::default(),
    };
    let fitted = fit(module, n, &engine, &mut task)?;
    let history = fitted
        .history
        .iter()
        .zip(&task.reports)
        .map(|(h, r)| NcfEpoch {
            epoch: h.epoch,
            loss: h.loss,
            seconds: h.seconds,
            hr: r.as_ref().map(|r| r.hr),
            ndcg: r.as_ref().map(|r| r.ndcg),
        })
        .collect();
    Ok(NcfFit { model: fitted.model.to_host(&arch), history, timing: fitted.timing })
}

/// [`fit_ncf_on`] as a job for [`dispatch`].
struct NcfJob<'a> {
    model: Ncf,
    split: &'a LeaveOneOut,
    num_items: usize,
    eval: Option<&'a SampledEval>,
    config: &'a Checked<NcfTrainConfig>,
}

impl BackendJob for NcfJob<'_> {
    type Output = NcfFit;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<NcfFit, TrainError> {
        fit_ncf_on::<B>(self.model, self.split, self.num_items, self.eval, self.config, &device)
    }
}

/// [`fit_ncf_on`] on the backend `spec` names (`cpu`, `ndarray`, `cuda:N`).
pub fn fit_ncf_device(
    model: Ncf,
    split: &LeaveOneOut,
    num_items: usize,
    eval: Option<&SampledEval>,
    config: &Checked<NcfTrainConfig>,
    spec: DeviceSpec,
) -> Result<NcfFit, TrainError> {
    dispatch(spec, NcfJob { model, split, num_items, eval, config })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ncf::fit_ncf;
    use intent_data::recsys::{leave_one_out, synthetic_interactions, test_negatives, Indexed};
    use intent_models::ncf::NcfKind;

    /// The engine on burn's CPU backend and the host loop, from the same weights, draw the same
    /// samples and batches and end with the same model (up to float rounding).
    #[test]
    fn engine_path_trains_the_same_model_as_the_host_loop() {
        let data = synthetic_interactions(60, 40, 6, 4, 9);
        let ix = Indexed::new(&data);
        let split = leave_one_out(&ix);
        let negs = test_negatives(&split, ix.num_items(), 20, 1).unwrap();
        let eval = SampledEval::new(&split, &negs, 5);
        for kind in [NcfKind::Gmf, NcfKind::Mlp, NcfKind::Neumf] {
            let arch = NcfArchitecture {
                kind,
                num_users: ix.num_users(),
                num_items: ix.num_items(),
                factors: 4,
                layers: vec![8, 4],
            };
            let config =
                NcfTrainConfig { epochs: 2, batch_size: 32, lr: 1e-2, progress: false, ..Default::default() }
                    .check()
                    .unwrap();
            let host =
                fit_ncf(Ncf::init(arch.clone(), 4).unwrap(), &split, ix.num_items(), Some(&eval), &config)
                    .unwrap();
            let burn = fit_ncf_device(
                Ncf::init(arch.clone(), 4).unwrap(),
                &split,
                ix.num_items(),
                Some(&eval),
                &config,
                DeviceSpec::Cpu,
            )
            .unwrap();
            let moved =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            let (h, b) = (&host.model, &burn.model);
            let mut diff = moved(&h.gmf_user, &b.gmf_user)
                .max(moved(&h.gmf_item, &b.gmf_item))
                .max(moved(&h.mlp_user, &b.mlp_user))
                .max(moved(&h.mlp_item, &b.mlp_item));
            for (x, y) in h.tower.iter().zip(&b.tower).chain([(&h.out, &b.out)]) {
                diff = diff.max(moved(&x.weight, &y.weight)).max(moved(&x.bias, &y.bias));
            }
            // Two epochs of lr 1e-2 move the weights by ~0.1; the paths agree far below that.
            let init = Ncf::init(arch, 4).unwrap();
            assert!(moved(&h.out.weight, &init.out.weight) > 0.01, "{kind:?}: training moved nothing");
            assert!(diff < 1e-3, "{kind:?}: host and engine differ by {diff}");
            for (x, y) in host.history.iter().zip(&burn.history) {
                assert!((x.loss - y.loss).abs() < 1e-4, "{kind:?}: losses {} vs {}", x.loss, y.loss);
                assert!(
                    (x.hr.unwrap() - y.hr.unwrap()).abs() <= 0.04,
                    "{kind:?}: HR {:?} vs {:?}",
                    x.hr,
                    y.hr
                );
            }
        }
    }
}
