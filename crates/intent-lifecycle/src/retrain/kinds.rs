//! What `[train]` holds for each model kind, checked when the config is read, and how a
//! candidate of that kind is trained.
//!
//! `[train]` is the kind's own options laid over its defaults: `MlpOptions`, `SvmOptions`,
//! [`BertTrain`] or [`ZeroShotTrain`]. Engine settings (`epochs`, `lr`, `batch_size`, `seed`, …)
//! may sit in `[train]` itself or in `[train.engine]`. A key the kind does not have is an error
//! that lists the keys it has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use intent_data::{write_dataset, Dataset};
use intent_models::bert::SentenceEncoder;
use intent_models::checked::Check;
use intent_models::zero_shot::{describe, read_some_label_descriptions, ZeroShot, DEFAULT_TEMPLATE};
use intent_models::{CpuBackend, ModelKind};
use intent_train::{BertOptions, DeviceSpec, MlpOptions, SvmOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RetrainError;

/// `[train]` of `kind = "bert"`: the base encoder, where and how long to train, and the
/// options of `intent train bert` (`BertOptions`, flattened).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertTrain {
    /// Base encoder: a Hugging Face folder (relative to the config's folder) or a hub repo id.
    pub base: String,
    /// Hub revision of a repo id (`main`).
    pub revision: String,
    /// `auto` (CUDA when this build has it and a GPU answers, else the CPU), `cpu`, `cuda:N`.
    pub device: String,
    /// Longest fine-tune, such as `"2h"`: training stops at the end of the epoch that passes it
    /// and the run fails; the next run resumes from the checkpoint (`None`: no limit).
    pub time_limit: Option<String>,
    /// The fine-tuning options.
    #[serde(flatten)]
    pub options: BertOptions,
}

impl Default for BertTrain {
    fn default() -> Self {
        BertTrain {
            base: String::new(),
            revision: "main".into(),
            device: "auto".into(),
            time_limit: None,
            options: BertOptions::default(),
        }
    }
}

/// `[train]` of `kind = "zero-shot"`: the label set is the data's (plus a labels file's), each
/// label described by the file or the template, the confidence temperature fitted on the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShotTrain {
    /// Sentence encoder: a Hugging Face folder (relative to the config's folder) or a repo id.
    pub encoder: String,
    /// Hub revision of a repo id (`main`).
    pub revision: String,
    /// Description made from a label name (`{label}`: the name as lower-case words).
    pub template: String,
    /// A labels file `{"label": "description", …}` (relative to the config's folder); its
    /// labels join the data's, and labels it does not describe get the template.
    pub labels: Option<PathBuf>,
    /// Fit the confidence temperature on the training data (true).
    pub calibrate: bool,
    /// Token limit (the encoder's own when absent).
    pub max_len: Option<usize>,
}

impl Default for ZeroShotTrain {
    fn default() -> Self {
        ZeroShotTrain {
            encoder: String::new(),
            revision: "main".into(),
            template: DEFAULT_TEMPLATE.into(),
            labels: None,
            calibrate: true,
            max_len: None,
        }
    }
}

/// The checked `[train]` of one kind.
#[derive(Debug, Clone)]
pub enum TrainPlan {
    /// Bag-of-words MLP.
    Mlp(MlpOptions),
    /// Linear SVM / kernel SVC.
    Svm(SvmOptions),
    /// Fine-tuned BERT.
    Bert(BertTrain),
    /// Sentence encoder with label descriptions.
    ZeroShot(ZeroShotTrain),
}

/// A plan whose encoder is loaded and device checked (at the start of a run, before any work).
pub(super) struct Prepared {
    base_dir: Option<PathBuf>,
    encoder: Option<SentenceEncoder<CpuBackend>>,
    device: DeviceSpec,
}

fn config_err(path: &Path, message: String) -> RetrainError {
    RetrainError::Config { path: path.to_path_buf(), message }
}

impl TrainPlan {
    /// Checks `table` against the options of `kind`; `path` (the config file) names errors.
    pub fn parse(kind: ModelKind, table: &toml::Table, path: &Path) -> Result<TrainPlan, RetrainError> {
        let err = |e: &dyn std::fmt::Display| config_err(path, format!("[train]: {e}"));
        Ok(match kind {
            ModelKind::Mlp => {
                let o: MlpOptions = options(table, path)?;
                o.engine.clone().check().map_err(|e| err(&e))?;
                TrainPlan::Mlp(o)
            }
            ModelKind::Svm => {
                let o: SvmOptions = options(table, path)?;
                o.params.clone().check().map_err(|e| err(&e))?;
                TrainPlan::Svm(o)
            }
            ModelKind::Bert => {
                let mut o: BertTrain = options(table, path)?;
                // An `lr` of one's own holds for multi-label data too, unless
                // `multi_label_lr` is given as well.
                let engine = table.get("engine").and_then(toml::Value::as_table);
                let lr_given = table.contains_key("lr") || engine.is_some_and(|e| e.contains_key("lr"));
                if lr_given && !table.contains_key("multi_label_lr") {
                    o.options.multi_label_lr = None;
                }
                if o.base.trim().is_empty() {
                    return Err(err(&"base: required (a Hugging Face folder or a hub repo id)"));
                }
                o.device.parse::<DeviceSpec>().map_err(|e| err(&e))?;
                if let Some(t) = &o.time_limit {
                    time_limit(t).map_err(|e| err(&e))?;
                }
                o.options.engine.clone().check().map_err(|e| err(&e))?;
                TrainPlan::Bert(o)
            }
            ModelKind::ZeroShot => {
                let o: ZeroShotTrain = options(table, path)?;
                if o.encoder.trim().is_empty() {
                    return Err(err(&"encoder: required (a Hugging Face folder or a hub repo id)"));
                }
                if !o.template.contains("{label}") {
                    return Err(err(&format!("template {:?}: must contain {{label}}", o.template)));
                }
                TrainPlan::ZeroShot(o)
            }
            ModelKind::Ncf => {
                return Err(config_err(
                    path,
                    "kind 'ncf': retraining trains mlp, svm, bert or zero-shot".into(),
                ))
            }
        })
    }

    /// The kind this plan trains.
    pub fn kind(&self) -> ModelKind {
        match self {
            TrainPlan::Mlp(_) => ModelKind::Mlp,
            TrainPlan::Svm(_) => ModelKind::Svm,
            TrainPlan::Bert(_) => ModelKind::Bert,
            TrainPlan::ZeroShot(_) => ModelKind::ZeroShot,
        }
    }

    /// Loads the encoder and checks the device, so that a base that cannot be loaded or a
    /// device that is not there fails the run before anything is trained.
    pub(super) fn prepare(&self, config: &Path) -> Result<Prepared, RetrainError> {
        let dir = config.parent().unwrap_or(Path::new("."));
        let load = |what: &str, spec: &str, revision: &str, max_len: Option<usize>| {
            // A folder relative to the config's folder, else a path or repo id as given.
            let local = dir.join(spec);
            let spec = if local.is_dir() { local.to_string_lossy().into_owned() } else { spec.to_string() };
            SentenceEncoder::<CpuBackend>::from_pretrained(
                &spec,
                Some(revision),
                max_len,
                &Default::default(),
            )
            .map_err(|e| config_err(config, format!("[train] {what} '{spec}' cannot be loaded: {e}")))
        };
        match self {
            TrainPlan::Bert(o) => {
                let device = o.device.parse::<DeviceSpec>().and_then(DeviceSpec::check);
                let device = device.map_err(|e| config_err(config, format!("[train] {e}")))?;
                let (_, base) = load("base", &o.base, &o.revision, None)?;
                Ok(Prepared { base_dir: Some(base), encoder: None, device })
            }
            TrainPlan::ZeroShot(o) => {
                let (encoder, base) = load("encoder", &o.encoder, &o.revision, o.max_len)?;
                if let Some(f) = &o.labels {
                    read_some_label_descriptions(&dir.join(f))
                        .map_err(|e| config_err(config, format!("[train] labels: {e}")))?;
                }
                Ok(Prepared { base_dir: Some(base), encoder: Some(encoder), device: DeviceSpec::Cpu })
            }
            _ => Ok(Prepared { base_dir: None, encoder: None, device: DeviceSpec::Cpu }),
        }
    }
}

/// The labels a zero-shot plan's labels file names (none for other plans, or when the file
/// cannot be read: the run's preparation reports that).
pub(super) fn described_labels(plan: &TrainPlan, config: &Path) -> Vec<String> {
    match plan {
        TrainPlan::ZeroShot(ZeroShotTrain { labels: Some(f), .. }) => {
            read_some_label_descriptions(&config.parent().unwrap_or(Path::new(".")).join(f))
                .map(|l| l.into_iter().map(|(name, _)| name).collect())
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// Parses a time limit such as `90m` or `2h`.
fn time_limit(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("time_limit {text:?}: must be more than zero")),
        Err(e) => Err(format!("time_limit {text:?}: {e} (expected a duration such as 90m or 2h)")),
    }
}

/// `T`'s defaults with `table` laid over them. Keys `T` does not have are errors, except those
/// of `T`'s `engine`, which are moved there (`epochs = 3` means `engine.epochs = 3`).
fn options<T: Serialize + DeserializeOwned + Default>(
    table: &toml::Table,
    path: &Path,
) -> Result<T, RetrainError> {
    fn overlay(base: &mut Value, top: Value) {
        match (base, top) {
            (Value::Object(b), Value::Object(t)) => {
                for (k, v) in t {
                    overlay(b.entry(k).or_insert(Value::Null), v);
                }
            }
            (b, t) => *b = t,
        }
    }
    // Keys the options do not have (a typo would otherwise be ignored silently).
    fn unknown(base: &Value, top: &Value, prefix: &str, out: &mut Vec<String>) {
        if let (Value::Object(b), Value::Object(t)) = (base, top) {
            for (k, v) in t {
                match b.get(k) {
                    None => out.push(format!("{prefix}{k}")),
                    Some(bv) => unknown(bv, v, &format!("{prefix}{k}."), out),
                }
            }
        }
    }
    let mut v = serde_json::to_value(T::default()).expect("options serialize");
    let mut top = serde_json::to_value(table).expect("toml values serialize");
    let engine_keys: Vec<String> =
        v.get("engine").and_then(Value::as_object).map(|e| e.keys().cloned().collect()).unwrap_or_default();
    if let Some(t) = top.as_object_mut() {
        for k in engine_keys.iter().filter(|k| v.get(k.as_str()).is_none()) {
            if let Some(x) = t.remove(k) {
                let engine = t.entry("engine").or_insert_with(|| Value::Object(Default::default()));
                let Some(engine) = engine.as_object_mut() else { continue };
                if engine.insert(k.clone(), x).is_some() {
                    return Err(config_err(
                        path,
                        format!("[train]: {k} is given twice, in [train] and [train.engine]"),
                    ));
                }
            }
        }
    }
    let mut bad = Vec::new();
    unknown(&v, &top, "", &mut bad);
    if !bad.is_empty() {
        let mut known: Vec<&String> = v.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        known.retain(|k| *k != "engine");
        known.extend(&engine_keys);
        return Err(config_err(
            path,
            format!("[train]: unknown option(s) {} (options of this kind: {known:?})", bad.join(", ")),
        ));
    }
    overlay(&mut v, top);
    serde_json::from_value(v).map_err(|e| config_err(path, format!("[train]: {e}")))
}

/// Trains a candidate of `plan` on `data` into `dir` and stores `stored` (the data without
/// synthetic sentences) there as its training data.
/// A fine-tune writes checkpoints under `state_dir/checkpoints` and resumes from them when the
/// last run stopped on the same data and options.
#[allow(clippy::too_many_arguments)] // each is a distinct input of one training run
pub(super) fn train(
    plan: &TrainPlan,
    prepared: Prepared,
    data: &Dataset,
    stored: &Dataset,
    dir: &Path,
    state_dir: &Path,
    config: &Path,
    note: &dyn Fn(&str),
) -> Result<(), RetrainError> {
    match plan {
        TrainPlan::Mlp(o) => {
            let mut o = o.clone();
            o.engine.progress = false;
            intent_train::train_mlp_to_dir(DeviceSpec::Cpu, data, None, &o, dir)?;
        }
        TrainPlan::Svm(o) => {
            intent_train::train_svm_to_dir(data, None, o, dir)?;
        }
        TrainPlan::Bert(o) => {
            let base = prepared.base_dir.as_deref().expect("prepared with the base");
            let mut opts = o.options.clone();
            opts.engine.progress = false;
            let ckpt = state_dir.join(CHECKPOINTS);
            let key = checkpoint_key(data, o, base);
            let key_file = ckpt.join(KEY_FILE);
            if std::fs::read_to_string(&key_file).ok().as_deref() != Some(key.as_str()) {
                if ckpt.exists() {
                    note("the checkpoints left are of other data or options: fine-tuning afresh");
                }
                let _ = std::fs::remove_dir_all(&ckpt);
                std::fs::create_dir_all(&ckpt)
                    .map_err(|source| RetrainError::Io { path: ckpt.clone(), source })?;
                intent_data::durable::write_file(&key_file, key.as_bytes())
                    .map_err(|source| RetrainError::Io { path: key_file.clone(), source })?;
            } else if let Ok(Some(last)) = intent_train::checkpoint::latest(&ckpt) {
                note(&format!("resuming the fine-tune from {}", last.display()));
            }
            opts.engine.checkpoint_dir = Some(ckpt);
            opts.engine.resume = true;
            opts.engine.time_limit_s = o
                .time_limit
                .as_deref()
                .map(|t| time_limit(t).map(|d| d.as_secs_f64()).unwrap_or(f64::INFINITY));
            note(&format!("fine-tuning {} on {} examples ({})", base.display(), data.len(), prepared.device));
            let summary = intent_train::train_bert_to_dir(prepared.device, base, data, None, &opts, dir)?;
            if summary.interrupted {
                return Err(RetrainError::TimeLimit(format!(
                    "the time limit {} was reached after epoch {} of the fine-tune; the next run resumes \
                        from its checkpoint",
                    o.time_limit.as_deref().unwrap_or("?"),
                    summary.history.last().map_or(0, |h| h.epoch)
                )));
            }
        }
        TrainPlan::ZeroShot(o) => {
            if data.multi_label {
                return Err(config_err(config, "kind zero-shot classifies single-label data only".into()));
            }
            let base = prepared.base_dir.as_deref().expect("prepared with the encoder");
            let encoder = prepared.encoder.expect("prepared with the encoder");
            let mut labels: Vec<(String, String)> = match &o.labels {
                Some(f) => {
                    let f = config.parent().unwrap_or(Path::new(".")).join(f);
                    read_some_label_descriptions(&f)?
                }
                None => Vec::new(),
            };
            let missing: Vec<String> =
                data.labels().into_iter().filter(|l| !labels.iter().any(|(x, _)| x == l)).collect();
            labels.extend(describe(&missing, &o.template));
            labels.sort();
            let mut zs = ZeroShot::new(encoder, labels, Some(o.template.clone()))?;
            let mut metrics = serde_json::json!({});
            if o.calibrate {
                let index: std::collections::HashMap<&str, usize> =
                    zs.config.labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
                let (texts, gold): (Vec<&str>, Vec<usize>) = data
                    .examples
                    .iter()
                    .filter_map(|e| Some((e.text.as_str(), *index.get(e.label()?)?)))
                    .unzip();
                let t = zs.calibrate(&texts, &gold)?;
                note(&format!("zero-shot temperature {t:.4} fitted on {} examples", texts.len()));
                metrics = serde_json::json!({ "calibration": { "temperature": t, "examples": texts.len() } });
            }
            zs.save(dir, base, &metrics)?;
        }
    }
    std::fs::create_dir_all(dir.join("data"))
        .map_err(|source| RetrainError::Io { path: dir.into(), source })?;
    write_dataset(&dir.join("data/train.jsonl"), stored)?;
    Ok(())
}

/// Checkpoints of an unfinished fine-tune, under the state folder.
pub(super) const CHECKPOINTS: &str = "checkpoints";
/// What the checkpoints belong to (a hash of the data, the options and the base).
const KEY_FILE: &str = "run.sha256";

fn checkpoint_key(data: &Dataset, o: &BertTrain, base: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    // Texts and labels only: a timestamp or source that changes between exports of the same
    // examples must not throw the checkpoint away.
    for e in &data.examples {
        h.update(e.text.as_bytes());
        h.update([0]);
        h.update(e.labels.join("\u{1f}").as_bytes());
        h.update([0]);
    }
    h.update(serde_json::to_string(&o.options).expect("serializes").as_bytes());
    h.update(base.to_string_lossy().as_bytes());
    hex::encode(h.finalize())
}

/// Removes the checkpoints of a fine-tune (its run has ended).
pub(super) fn clear_checkpoints(state_dir: &Path) {
    let _ = std::fs::remove_dir_all(state_dir.join(CHECKPOINTS));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert_plan(toml_text: &str) -> BertOptions {
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        match TrainPlan::parse(ModelKind::Bert, &table, Path::new("retrain.toml")).unwrap() {
            TrainPlan::Bert(t) => t.options,
            other => panic!("not a BERT plan: {other:?}"),
        }
    }

    /// Multi-label data trains at its own default rate unless the config sets `lr` (in
    /// `[train]` or `[train.engine]`), which then holds for every kind of data.
    #[test]
    fn an_lr_of_ones_own_replaces_the_multi_label_default() {
        let o = bert_plan("base = \"m\"");
        assert_eq!(o.multi_label_lr, Some(intent_train::bert::MULTI_LABEL_LR));
        assert_eq!(o.engine.lr, 5e-5);
        for text in ["base = \"m\"\nlr = 1e-4", "base = \"m\"\n[engine]\nlr = 1e-4"] {
            let o = bert_plan(text);
            assert_eq!((o.engine.lr, o.multi_label_lr), (1e-4, None), "{text}");
        }
        let o = bert_plan("base = \"m\"\nlr = 1e-4\nmulti_label_lr = 3e-4");
        assert_eq!((o.engine.lr, o.multi_label_lr), (1e-4, Some(3e-4)));
    }

    /// `precision` and `head_init` of `intent train bert` in `[train]`; an unknown value is
    /// refused by name.
    #[test]
    fn precision_and_head_init_are_read_and_checked() {
        use intent_models::bert::{HeadInit, Precision};
        assert_eq!(bert_plan("base = \"m\"").precision, Precision::F32);
        assert_eq!(bert_plan("base = \"m\"\nprecision = \"bf16\"").precision, Precision::Bf16);
        assert_eq!(bert_plan("base = \"m\"").head_init, HeadInit::Hf);
        assert_eq!(bert_plan("base = \"m\"\nhead_init = \"torch\"").head_init, HeadInit::Torch);
        let table: toml::Table = toml::from_str("base = \"m\"\nprecision = \"fp8\"").unwrap();
        let e = TrainPlan::parse(ModelKind::Bert, &table, Path::new("retrain.toml")).unwrap_err().to_string();
        assert!(e.contains("retrain.toml") && e.contains("fp8") && e.contains("bf16"), "{e}");
    }
}
