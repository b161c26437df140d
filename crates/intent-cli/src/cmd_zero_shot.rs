//! `intent zero-shot`: a classifier from a sentence-embedding model and label descriptions,
//! without training. Writes a model folder (`--out`) that `intent eval` and `intent predict`
//! use like any other, and/or classifies the texts given.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use intent_models::bert::SentenceEncoder;
use intent_models::zero_shot::{describe, read_label_descriptions, ZeroShot, DEFAULT_TEMPLATE};
use intent_models::CpuBackend;

use crate::common::InputFlags;

#[derive(Args, Debug)]
pub struct ZeroShotArgs {
    /// Sentence-embedding model: a Hugging Face folder (`cargo xtask fetch-model minilm` puts
    /// all-MiniLM-L6-v2 in models/all-MiniLM-L6-v2) or a hub repo id such as
    /// sentence-transformers/all-MiniLM-L6-v2 (hub cache, HF_HUB_OFFLINE, HF_ENDPOINT honoured).
    #[arg(long, value_name = "DIR|REPO_ID")]
    pub encoder: String,
    /// Hub revision (branch, tag or commit) when --encoder is a repo id.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Labels file: {"label": "description", …}.
    #[arg(long, conflicts_with = "labels_from")]
    pub labels: Option<PathBuf>,
    /// Take the label set of this labeled data file and describe each label with --template.
    #[arg(long)]
    pub labels_from: Option<PathBuf>,
    /// Description made from a label name ({label}: the name as lower-case words, split at
    /// `_`, `-`, `.` and case changes: `BookFlight`, `alarm.set` → "book flight", "alarm set").
    #[arg(long, default_value = DEFAULT_TEMPLATE)]
    pub template: String,
    /// Fit the confidence temperature on this labeled data (else 0.05).
    #[arg(long)]
    pub calibrate_on: Option<PathBuf>,
    /// Token limit of the encoder (default: its max_position_embeddings).
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Write the zero-shot model folder here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Alternatives per prediction.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    #[command(flatten)]
    pub input: InputFlags,
    /// Texts to classify (one JSON object per text on stdout).
    pub texts: Vec<String>,
}

pub fn run(a: ZeroShotArgs) -> Result<ExitCode> {
    let labels = match (&a.labels, &a.labels_from) {
        (Some(p), _) => read_label_descriptions(p)?,
        (None, Some(p)) => describe(&a.input.load(p)?.data.labels(), &a.template),
        (None, None) => anyhow::bail!(
            "give --labels FILE ({{\"label\": \"description\", …}}) or \
            --labels-from DATA (label names + --template)"
        ),
    };
    let (encoder, encoder_dir) = SentenceEncoder::<CpuBackend>::from_pretrained(
        &a.encoder,
        Some(&a.revision),
        a.max_len,
        &Default::default(),
    )
    .with_context(|| format!("loading the encoder {}", a.encoder))?;
    // The exact text each label is embedded from (also kept in the folder's config.json).
    for (label, description) in &labels {
        eprintln!("label {label:?} is described as {description:?}");
    }
    let template = a.labels.is_none().then(|| a.template.clone());
    let mut zs = ZeroShot::new(encoder, labels, template)?;
    let mut metrics = serde_json::json!({});
    if let Some(p) = &a.calibrate_on {
        let data = a.input.load(p)?.data;
        let index: std::collections::HashMap<&str, usize> =
            zs.config.labels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
        let rows: Vec<(&str, usize)> =
            data.examples.iter().filter_map(|e| Some((e.text.as_str(), *index.get(e.label()?)?))).collect();
        if rows.is_empty() {
            anyhow::bail!("{}: no example has one of the {} labels", p.display(), index.len());
        }
        let (texts, gold): (Vec<&str>, Vec<usize>) = rows.into_iter().unzip();
        let t = zs.calibrate(&texts, &gold)?;
        println!("temperature {t:.4} fitted on {} examples of {}", texts.len(), p.display());
        metrics = serde_json::json!({
            "calibration": { "temperature": t, "fitted_on": p, "examples": texts.len() }
        });
    }
    if let Some(out) = &a.out {
        zs.save(out, &encoder_dir, &metrics).with_context(|| format!("writing {}", out.display()))?;
        println!("saved {} ({} labels)", out.display(), zs.config.labels.len());
    }
    let model = intent_serve::Classifier::ZeroShot(zs);
    let texts: Vec<&str> = a.texts.iter().map(String::as_str).filter(|t| !t.trim().is_empty()).collect();
    for (t, p) in texts.iter().zip(model.predict_batch(&texts, a.top_k)?) {
        let mut v = serde_json::to_value(&p)?;
        v["text"] = serde_json::Value::String(t.to_string());
        println!("{}", serde_json::to_string(&v)?);
    }
    Ok(ExitCode::SUCCESS)
}
