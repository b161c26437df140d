//! Labels besides the people's (`[labels]`): teacher labels (the server's fallback service, or a
//! stronger model labeling the waiting queue) and pseudo-labels (the served model's own sure
//! answers). Both are fetched into the state folder at the start of a run and join the training
//! data below the human labels: human > teacher > pseudo (held-out texts are removed after).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use intent_data::{load_dataset, normalize_text, Dataset, Example};
use intent_serve::Classifier;

use super::server_calls::{pull_confident, pull_teacher_labels, waiting_texts};
use super::{Labels, RetrainConfig, RetrainError, ServerNotify};

/// The teacher labels (`[labels] teacher`).
const TEACHER: &str = "labels/teacher.jsonl";
/// The pseudo-label candidates (`[labels.pseudo]`).
const PSEUDO: &str = "labels/pseudo.jsonl";

/// Fetches the teacher labels and the pseudo-label candidates; a failure is noted and the last
/// copy used.
pub(super) fn fetch(labels: &Labels, server: &ServerNotify, cfg: &RetrainConfig, note: &dyn Fn(&str)) {
    if let Some(teacher) = &labels.teacher {
        note(&match teach(teacher, labels.min_confidence, server, cfg, &cfg.state_dir.join(TEACHER)) {
            Ok(n) => format!("{n} teacher labels from {teacher}"),
            Err(e) => format!("could not get teacher labels ({e}); using the last copy"),
        });
    }
    if let Some(p) = &labels.pseudo {
        note(&match pull_confident(server, p.min_confidence, &cfg.state_dir.join(PSEUDO)) {
            Ok(n) => format!("{n} answers of confidence ≥ {} for pseudo-labels", p.min_confidence),
            Err(e) => format!("could not get pseudo-labels ({e}); using the last copy"),
        });
    }
}

/// Writes the teacher labels of `teacher` to `dest`: the server's fallback labels, or a teacher
/// model's answers (at least `min_confidence`) for the texts waiting in the labeling queue.
fn teach(
    teacher: &str,
    min_confidence: f64,
    server: &ServerNotify,
    cfg: &RetrainConfig,
    dest: &Path,
) -> Result<usize, String> {
    if teacher == "server" {
        return pull_teacher_labels(server, dest);
    }
    let base = cfg.path.parent().unwrap_or(Path::new("."));
    let spec = intent_serve::ModelSpec::parse(&base.join(teacher).to_string_lossy());
    let dir = spec.resolve().map_err(|e| format!("teacher {teacher}: {e}"))?.path;
    let model = Classifier::load(&dir).map_err(|e| format!("teacher {teacher}: {e}"))?;
    let texts = waiting_texts(server)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for chunk in refs.chunks(256) {
        let predictions = model.predict_batch(chunk, 1).map_err(|e| format!("teacher {teacher}: {e}"))?;
        for (text, p) in chunk.iter().zip(predictions) {
            if f64::from(p.confidence) >= min_confidence {
                out.push(Example::new(*text, p.label).with_source("teacher"));
            }
        }
    }
    let n = out.len();
    std::fs::create_dir_all(dest.parent().expect("in the state folder")).map_err(|e| e.to_string())?;
    intent_data::write_dataset(dest, &Dataset::new(out)).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Adds the teacher labels, then the pseudo-labels, for texts `data` (the people's labels) and
/// `held_out` (normalized) do not have. Pseudo-labels: single-label data only, the surest first,
/// at most `max_per_label` per label and never more than the people's examples. Returns how many
/// of each were added.
pub(super) fn add_below_human(
    cfg: &RetrainConfig,
    data: &mut Dataset,
    held_out: &HashSet<String>,
) -> Result<(Option<usize>, Option<usize>), RetrainError> {
    let Some(labels) = &cfg.labels else { return Ok((None, None)) };
    let opts = intent_data::LoadOptions::default();
    let human = data.len();
    let mut known: HashSet<String> = data.examples.iter().map(|e| normalize_text(&e.text)).collect();
    known.extend(held_out.iter().cloned());
    let mut teacher_n = None;
    let teacher_file = cfg.state_dir.join(TEACHER);
    if labels.teacher.is_some() && teacher_file.is_file() {
        let taught = load_dataset(&teacher_file, None, &opts)?.data;
        let fresh: Vec<Example> =
            taught.examples.into_iter().filter(|e| known.insert(normalize_text(&e.text))).collect();
        teacher_n = Some(fresh.len());
        data.examples.extend(fresh);
    }
    let mut pseudo_n = None;
    let pseudo_file = cfg.state_dir.join(PSEUDO);
    if let (Some(p), true, false) = (&labels.pseudo, pseudo_file.is_file(), data.multi_label) {
        let mut candidates = load_dataset(&pseudo_file, None, &opts)?.data.examples;
        // The surest first (the file keeps each answer's confidence), then by text.
        let confidence = confidences(&pseudo_file);
        let of = |e: &Example| confidence.get(&e.text).copied().unwrap_or(0.0);
        candidates.sort_by(|a, b| of(b).total_cmp(&of(a)).then_with(|| a.text.cmp(&b.text)));
        let mut per_label: BTreeMap<String, usize> = BTreeMap::new();
        let mut added = Vec::new();
        for e in candidates {
            if added.len() >= human {
                break;
            }
            let Some(label) = e.label().map(str::to_string) else { continue };
            let n = per_label.entry(label).or_default();
            if *n < p.max_per_label && known.insert(normalize_text(&e.text)) {
                *n += 1;
                added.push(e.with_source("pseudo"));
            }
        }
        pseudo_n = Some(added.len());
        data.examples.extend(added);
    }
    Ok((teacher_n, pseudo_n))
}

/// Text → confidence of the pseudo-label file's lines.
fn confidences(path: &Path) -> HashMap<String, f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((v["text"].as_str()?.to_string(), v["confidence"].as_f64()?))
        })
        .collect()
}
