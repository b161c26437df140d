//! [`Run`]: the model, its optimizer (the fused host AdamW on CPU backends, burn's AdamW on
//! the device elsewhere) and the run's position, saved to and resumed from checkpoints.

use burn::module::{AutodiffModule, Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use super::{is_cpu_backend, EngineConfig};
use crate::checkpoint::{self, EngineState, OptimizerState};
use crate::device_adamw::DeviceAdamW;
use crate::optim::HostAdamW;
use crate::TrainError;

/// The model, optimizer and position of a run ([`super::fit`]'s state, checkpointed between epochs).
pub(super) struct Run<B: AutodiffBackend, M: AutodiffModule<B>> {
    pub(super) model: M,
    pub(super) best: Option<M::InnerModule>,
    pub(super) host_optim: Option<HostAdamW>,
    pub(super) device_optim: Option<DeviceAdamW<B, M>>,
    pub(super) state: EngineState,
    /// Learning-rate factors of some parameters (see [`super::TrainTask::lr_factors`]).
    pub(super) lr_factors: std::collections::HashMap<burn::module::ParamId, f64>,
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Run<B, M> {
    /// A fresh run, or the latest checkpoint's when resuming.
    pub(super) fn new(
        model: M,
        config: &EngineConfig,
        device: &B::Device,
        fingerprint: String,
    ) -> Result<Self, TrainError> {
        // CPU backends: the fused host AdamW (same update, one pass); others: burn's AdamW on device.
        let params = config.adamw_params();
        let on_cpu = is_cpu_backend::<B>(device);
        let device_optim = || DeviceAdamW::new(params);
        let fresh = EngineState {
            fingerprint,
            epochs_done: 0,
            global_step: 0,
            history: Vec::new(),
            best: None,
            since_best: 0,
            stopped_early: false,
            host_optimizer_time: None,
        };
        let resume_from = match (&config.checkpoint_dir, config.resume) {
            (Some(dir), true) => {
                let found = checkpoint::latest(dir)?;
                if found.is_none() {
                    tracing::info!("no checkpoint in {}: starting afresh", dir.display());
                }
                found
            }
            _ => None,
        };
        let Some(ckpt) = resume_from else {
            return Ok(Run {
                model,
                best: None,
                host_optim: on_cpu.then(|| HostAdamW::new(params)),
                device_optim: (!on_cpu).then(device_optim),
                state: fresh,
                lr_factors: Default::default(),
            });
        };
        let state = checkpoint::read_state(&ckpt, &fresh.fingerprint)?;
        let (model, best) = checkpoint::load_models::<B, M>(&ckpt, model, device)?;
        let (host_optim, device_optim) = match (state.host_optimizer_time, on_cpu) {
            (Some(time), true) => {
                (Some(checkpoint::load_host_optimizer::<B, M>(&ckpt, params, time, &model)?), None)
            }
            (None, false) => {
                let path = checkpoint::device_optimizer_path(&ckpt);
                let record =
                    burn::record::Recorder::<B>::load(&checkpoint::file_recorder(), path.clone(), device)
                        .map_err(|e| TrainError::Checkpoint {
                            path: path.with_extension("mpk"),
                            message: e.to_string(),
                        })?;
                (None, Some(device_optim().load_record(record)))
            }
            _ => {
                return Err(TrainError::Checkpoint {
                    path: ckpt.clone(),
                    message: "written on another kind of device (CPU and GPU optimizer states differ); \
                        resume on the same --device"
                        .into(),
                })
            }
        };
        tracing::info!(
            "resuming from {} (epoch {} done, step {})",
            ckpt.display(),
            state.epochs_done,
            state.global_step
        );
        Ok(Run { model, best: Some(best), host_optim, device_optim, state, lr_factors: Default::default() })
    }

    /// One optimizer step (with global gradient-norm clipping when set).
    pub(super) fn update(&mut self, lr: f64, grads: GradientsParams, max_grad_norm: Option<f64>) {
        let model = self.model.clone();
        self.model = match (&mut self.host_optim, &mut self.device_optim) {
            (Some(o), _) => o.step::<B, M>(lr, model, grads, max_grad_norm).0,
            (None, Some(o)) => o.step(lr, model, grads, max_grad_norm, &self.lr_factors),
            (None, None) => unreachable!("one optimizer is always set"),
        };
    }

    /// Keeps the model as it is now as the best so far. On accelerators the copy gets buffers of
    /// its own, through the host (an upload compiles no kernel): parameters still held by the
    /// best model would be read-only at the next epoch's first step, and burn's fusion groups
    /// that step's updates differently from every other step's (NeuMF's one-value output bias
    /// got a fused kernel of its own there, compiled in epoch 2 on every cold run).
    pub(super) fn keep_best(&mut self, device: &B::Device) {
        self.best = None; // the old copy goes first: two copies at most, not three
        let model = self.model.valid();
        self.best = Some(if is_cpu_backend::<B>(device) { model } else { model.map(&mut OwnBuffers) });
    }

    pub(super) fn save_checkpoint(&mut self, dir: &std::path::Path) -> Result<(), TrainError> {
        self.state.host_optimizer_time = self.host_optim.as_ref().map(|o| o.moments().0);
        let best = self.best.as_ref().expect("set after the first epoch");
        let optim = match (&self.host_optim, &self.device_optim) {
            (Some(o), _) => OptimizerState::Host(o),
            (None, Some(o)) => {
                let record = o.to_record();
                OptimizerState::Device(Box::new(move |path: &std::path::Path| {
                    burn::record::Recorder::<B>::record(
                        &checkpoint::file_recorder(),
                        record,
                        path.to_path_buf(),
                    )
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                }))
            }
            (None, None) => unreachable!("one optimizer is always set"),
        };
        checkpoint::save::<B, M>(dir, &self.state, &self.model, best, optim)
    }
}

/// Gives every float parameter a buffer of its own, with the same values, id and type
/// ([`Run::keep_best`]).
struct OwnBuffers;

impl<B: Backend> ModuleMapper<B> for OwnBuffers {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.map(|t| {
            let device = t.device();
            let data = t.into_data();
            let dtype = data.dtype;
            Tensor::from_data(data, (&device, dtype))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    /// The copy keeps each parameter's id and values (that its buffers are its own shows on a
    /// device: tests/vulkan.rs, `neumf_compiles_kernels_in_the_first_epoch_only`).
    #[test]
    fn own_buffers_copy_values_and_ids() {
        let device = Default::default();
        let mut lin = burn::nn::LinearConfig::new(3, 2).init::<Flex>(&device);
        lin.weight =
            Param::from_tensor(Tensor::from_data([[0.5f32, -1.0], [2.0, 0.25], [-3.0, 4.0]], &device));
        let copy = lin.clone().map(&mut OwnBuffers);
        assert_eq!(copy.weight.id, lin.weight.id);
        assert_eq!(copy.bias.as_ref().unwrap().id, lin.bias.as_ref().unwrap().id);
        let values = |l: &burn::nn::Linear<Flex>| l.weight.val().into_data().to_vec::<f32>().unwrap();
        assert_eq!(values(&copy), vec![0.5, -1.0, 2.0, 0.25, -3.0, 4.0]);
    }
}
