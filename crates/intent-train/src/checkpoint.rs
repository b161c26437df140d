//! Training checkpoints: after every epoch the engine writes what it needs to continue as if it
//! had never stopped — the model, the optimizer's moments and step count, the best model so far,
//! the history and the position in the schedule — so that a run resumed with the same seed ends
//! with the same weights as an uninterrupted one (shuffling and dropout are seeded per epoch).
//!
//! Layout of a checkpoint folder: `epoch-N/` (`state.json`, `model.mpk`, `best.mpk`, and
//! `optimizer.safetensors` for the host AdamW or `optimizer.mpk` for burn's) and `latest`, a
//! one-line file naming the complete `epoch-N`. A new epoch is written to `epoch-N.partial/`,
//! renamed into place, then `latest` is replaced (write + rename) and older epochs are removed:
//! a crash at any point leaves the previous checkpoint readable.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module, ParamId};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use intent_models::tensors::{self, HostTensor, TensorFile};

use crate::engine::EpochLog;
use crate::optim::{AdamWParams, HostAdamW};
use crate::TrainError;

/// Position of a run between two epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Settings and data the checkpoint belongs to; a resume with other ones is refused.
    pub fingerprint: String,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub global_step: usize,
    /// Per-epoch logs so far.
    pub history: Vec<EpochLog>,
    /// Best validation score so far and its epoch.
    pub best: Option<(f64, usize)>,
    /// Epochs since the best one.
    pub since_best: usize,
    /// Early stopping has ended the run.
    pub stopped_early: bool,
    /// Step count of the host optimizer (`None`: burn's optimizer, state in `optimizer.mpk`).
    pub host_optimizer_time: Option<i32>,
}

fn err(path: &Path, message: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint { path: path.to_path_buf(), message: message.to_string() }
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// The folder of the latest complete checkpoint under `dir`, if any.
pub fn latest(dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    let pointer = dir.join("latest");
    if !pointer.is_file() {
        return Ok(None);
    }
    let name = fs::read_to_string(&pointer).map_err(|e| err(&pointer, e))?;
    let name = name.trim();
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return Err(err(&pointer, format!("expected the name of an epoch folder, found {name:?}")));
    }
    let path = dir.join(name);
    if !path.join("state.json").is_file() {
        return Err(err(&path, "the checkpoint named by `latest` has no state.json"));
    }
    Ok(Some(path))
}

/// What [`save`] writes besides the state.
pub enum OptimizerState<'a> {
    /// The host AdamW's moments.
    Host(&'a HostAdamW),
    /// burn's optimizer, written by its record.
    Device(WriteRecord<'a>),
}

/// Writes burn's optimizer record under the path it is given.
pub type WriteRecord<'a> = Box<dyn FnOnce(&Path) -> Result<(), String> + 'a>;

/// First and second moments of one parameter, as read back (either may be missing).
type MomentPair = (Option<Vec<f32>>, Option<Vec<f32>>);

/// Writes the checkpoint of epoch `state.epochs_done` under `dir` (see the module doc).
pub fn save<B: AutodiffBackend, M: AutodiffModule<B>>(
    dir: &Path,
    state: &EngineState,
    model: &M,
    best: &M::InnerModule,
    optim: OptimizerState<'_>,
) -> Result<(), TrainError> {
    fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let name = format!("epoch-{}", state.epochs_done);
    let tmp = dir.join(format!("{name}.partial"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| err(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| err(&tmp, e))?;
    let json = serde_json::to_string_pretty(state).map_err(|e| err(&tmp, e))?;
    fs::write(tmp.join("state.json"), json).map_err(|e| err(&tmp.join("state.json"), e))?;
    model.clone().save_file(tmp.join("model"), &recorder()).map_err(|e| err(&tmp.join("model.mpk"), e))?;
    best.clone().save_file(tmp.join("best"), &recorder()).map_err(|e| err(&tmp.join("best.mpk"), e))?;
    match optim {
        OptimizerState::Host(o) => {
            let path = tmp.join("optimizer.safetensors");
            let (_, moments) = o.moments();
            let names: Vec<(String, String)> = moments
                .iter()
                .map(|(id, _, _)| (format!("{}.m", id.val()), format!("{}.v", id.val())))
                .collect();
            let mut tensors = Vec::with_capacity(moments.len() * 2);
            for ((_, m, v), (nm, nv)) in moments.iter().zip(&names) {
                tensors.push((nm.as_str(), HostTensor::F32(m.to_vec(), vec![m.len()])));
                tensors.push((nv.as_str(), HostTensor::F32(v.to_vec(), vec![v.len()])));
            }
            tensors::write(&path, tensors).map_err(|e| err(&path, e))?;
        }
        OptimizerState::Device(write) => {
            write(&tmp.join("optimizer")).map_err(|e| err(&tmp.join("optimizer.mpk"), e))?
        }
    }
    let done = dir.join(&name);
    intent_data::durable::replace_dir(&tmp, &done).map_err(|e| err(&done, e))?;
    let pointer = dir.join("latest");
    intent_data::durable::write_file(&pointer, name.as_bytes()).map_err(|e| err(&pointer, e))?;
    // Older epochs are no longer needed.
    for entry in fs::read_dir(dir).map_err(|e| err(dir, e))?.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with("epoch-") && n != name {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    tracing::info!("checkpoint written: {}", done.display());
    Ok(())
}

/// Reads the state of a checkpoint folder and checks that it belongs to this run.
pub fn read_state(ckpt: &Path, fingerprint: &str) -> Result<EngineState, TrainError> {
    let path = ckpt.join("state.json");
    let text = fs::read_to_string(&path).map_err(|e| err(&path, e))?;
    let state: EngineState =
        serde_json::from_str(&text).map_err(|e| err(&path, format!("not a checkpoint state: {e}")))?;
    if state.fingerprint != fingerprint {
        return Err(err(
            &path,
            format!(
                "written by a run with other settings or data; resume with the same flags and files, or \
                    start afresh without --resume.\n  checkpoint: {}\n  this run:   {}",
                state.fingerprint, fingerprint
            ),
        ));
    }
    Ok(state)
}

/// Loads the model and the best model of a checkpoint into modules of the same architecture.
pub fn load_models<B: AutodiffBackend, M: AutodiffModule<B>>(
    ckpt: &Path,
    model: M,
    device: &B::Device,
) -> Result<(M, M::InnerModule), TrainError> {
    let best = model
        .valid()
        .load_file(ckpt.join("best"), &recorder(), device)
        .map_err(|e| err(&ckpt.join("best.mpk"), e))?;
    let model = model
        .load_file(ckpt.join("model"), &recorder(), device)
        .map_err(|e| err(&ckpt.join("model.mpk"), e))?;
    Ok((model, best))
}

/// The host AdamW of a checkpoint, checked against the parameters of `model` (the checkpoint's
/// own model, loaded by [`load_models`]): every moment must belong to one of them and have its size.
pub fn load_host_optimizer<B: AutodiffBackend, M: AutodiffModule<B>>(
    ckpt: &Path,
    params: AdamWParams,
    time: i32,
    model: &M,
) -> Result<HostAdamW, TrainError> {
    struct Sizes(HashMap<ParamId, usize>);
    impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Sizes {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::tensor::Tensor<B, D>>) {
            self.0.insert(param.id, param.shape().num_elements());
        }
    }
    let mut sizes = Sizes(HashMap::new());
    model.visit(&mut sizes);
    let path = ckpt.join("optimizer.safetensors");
    let file = TensorFile::open(&path).map_err(|e| err(&path, e))?;
    let mut parts: HashMap<String, MomentPair> = HashMap::new();
    for name in tensors::tensor_names(&path).map_err(|e| err(&path, e))? {
        let (id, which) =
            name.rsplit_once('.').ok_or_else(|| err(&path, format!("unexpected tensor {name}")))?;
        let values =
            file.shape(&name).and_then(|shape| file.f32(&name, &shape)).map_err(|e| err(&path, e))?;
        let e = parts.entry(id.to_string()).or_default();
        match which {
            "m" => e.0 = Some(values),
            "v" => e.1 = Some(values),
            _ => return Err(err(&path, format!("unexpected tensor {name}"))),
        }
    }
    let mut moments = Vec::with_capacity(parts.len());
    for (id, (m, v)) in parts {
        match (m, v) {
            (Some(m), Some(v)) if m.len() == v.len() => {
                let pid = id
                    .parse::<u64>()
                    .map(ParamId::from)
                    .map_err(|_| err(&path, format!("unexpected parameter id {id:?}")))?;
                match sizes.0.get(&pid) {
                    Some(&n) if n == m.len() => moments.push((pid, m, v)),
                    _ => {
                        return Err(err(
                            &path,
                            format!(
                            "parameter {id}: not a parameter of the checkpoint's model, or of another size"
                        ),
                        ))
                    }
                }
            }
            _ => {
                return Err(err(
                    &path,
                    format!("parameter {id}: first and second moments missing or of different sizes"),
                ))
            }
        }
    }
    Ok(HostAdamW::restore(params, time, moments))
}

/// Path of burn's optimizer record in a checkpoint (without the `.mpk` the recorder adds).
pub fn device_optimizer_path(ckpt: &Path) -> PathBuf {
    ckpt.join("optimizer")
}

/// The recorder used for every `.mpk` file of a checkpoint.
pub fn file_recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    recorder()
}
