//! File formats: loaders and writers, plus detection of the format from a file's content.

pub mod intents;
pub mod interactions;
pub mod jsonl;
pub mod multilabel;
pub mod outcomes;
pub mod rasa;

use std::path::Path;
use std::str::FromStr;

use crate::error::{DataError, Location, Result, Skipped};
use crate::record::Dataset;

/// Options shared by the loaders.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Leave bad records out (and list them) instead of failing on the first one.
    pub skip_invalid: bool,
}

/// What a loader returns: the data plus the records it left out under `skip_invalid`.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The loaded data.
    pub data: T,
    /// Records left out, with where and why.
    pub skipped: Vec<Skipped>,
    /// Where each kept record came from (file and line or JSON path), parallel to the
    /// examples of a [`Dataset`]; used to point at a record in later errors.
    pub locations: Vec<Location>,
}

/// The labeled-data formats the toolkit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One `{"text", "label"}` object per line.
    Jsonl,
    /// Chatbot intents files (a file or a folder).
    Intents,
    /// Outcome definitions (a file or a folder).
    Outcomes,
    /// `{"metadata", "samples": [{"text", "taxonomy_codes"}]}`.
    MultiLabel,
    /// CSV with a `text` column and a `category` / `label` / `intent` column (BANKING77).
    Csv,
    /// CLINC150 `data_full.json` (all splits, `oos` kept).
    Clinc150,
    /// NLU++ fold files (a fold file or the folder of folds).
    Nlupp,
    /// Rasa NLU training data (`nlu.yml`, or a folder of YAML files).
    Rasa,
}

impl FromStr for Format {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "jsonl" => Format::Jsonl,
            "intents" => Format::Intents,
            "outcomes" => Format::Outcomes,
            "multilabel" | "multi-label" => Format::MultiLabel,
            "csv" | "banking77" => Format::Csv,
            "clinc150" => Format::Clinc150,
            "nlupp" => Format::Nlupp,
            "rasa" => Format::Rasa,
            other => {
                return Err(DataError::Option {
                    name: "--format",
                    message: format!(
                        "unknown format '{other}'; expected jsonl, intents, outcomes, multilabel, csv, \
                            clinc150, nlupp or rasa"
                    ),
                })
            }
        })
    }
}

/// Guesses the format of `path` from what it holds (a folder, the extension, then the JSON keys).
pub fn detect_format(path: &Path) -> Result<Format> {
    let is_yaml = |p: &Path| p.extension().is_some_and(|e| e == "yml" || e == "yaml");
    if path.is_dir() {
        if path.join("banking").is_dir() || path.join("fold0.json").is_file() {
            return Ok(Format::Nlupp);
        }
        if path.join("nlu.yml").is_file()
            || std::fs::read_dir(path)
                .map_err(|e| DataError::io(path, e))?
                .any(|e| e.is_ok_and(|e| is_yaml(&e.path())))
        {
            return Ok(Format::Rasa);
        }
        let first = crate::io::json_files_in(path)?.remove(0);
        let text = crate::io::read_text(&first)?;
        let looks_outcome =
            text.contains("\"examples\"") && text.contains("\"name\"") && !text.contains("\"tag\"");
        return Ok(if looks_outcome { Format::Outcomes } else { Format::Intents });
    }
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "jsonl" | "ndjson" => return Ok(Format::Jsonl),
        "csv" | "tsv" => return Ok(Format::Csv),
        "yml" | "yaml" => return Ok(Format::Rasa),
        _ => {}
    }
    let text = crate::io::read_text(path)?;
    let trimmed = text.trim_start();
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => {
            let has = |k: &str| map.contains_key(k);
            if has("samples") {
                Ok(Format::MultiLabel)
            } else if has("tag") || has("intents") && map["intents"].is_array() {
                Ok(Format::Intents)
            } else if has("name") && has("examples") {
                Ok(Format::Outcomes)
            } else if has("train") && (has("oos_train") || has("test")) {
                Ok(Format::Clinc150)
            } else if has("interactions") {
                Err(DataError::invalid(
                    Location::file(path),
                    "this is an interactions file (recommender data), not labeled utterances",
                ))
            } else {
                Ok(Format::Jsonl) // a one-line JSONL file
            }
        }
        Ok(serde_json::Value::Array(items)) => match items.first() {
            Some(v) if v.get("tag").is_some() => Ok(Format::Intents),
            Some(v) if v.get("intents").is_some() => Ok(Format::Nlupp),
            _ => Err(DataError::invalid(
                Location::file(path),
                "a JSON list, but not of intents {\"tag\", \"patterns\"} nor NLU++ rows \
                    {\"text\", \"intents\"}",
            )),
        },
        // Several objects one after another: JSONL.
        Err(e) if trimmed.starts_with('{') && e.to_string().contains("trailing characters") => {
            Ok(Format::Jsonl)
        }
        Err(e) if ext == "json" || !trimmed.starts_with('{') => Err(DataError::json(path, &e)),
        _ => Ok(Format::Jsonl),
    }
}

/// Loads labeled utterances from `path` in `format` (detected when `None`).
pub fn load_dataset(path: &Path, format: Option<Format>, opts: &LoadOptions) -> Result<Loaded<Dataset>> {
    if !path.exists() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    let format = match format {
        Some(f) => f,
        None => detect_format(path)?,
    };
    match format {
        Format::Jsonl => jsonl::load_jsonl(path, opts),
        Format::Intents => intents::load_intents(path, opts),
        Format::Outcomes => {
            let data = outcomes::outcomes_to_dataset(&outcomes::read_outcomes(path)?);
            let locations = vec![Location::file(path); data.len()];
            Ok(Loaded { data, skipped: vec![], locations })
        }
        Format::MultiLabel => multilabel::load_multilabel(path, opts),
        Format::Csv => crate::import::load_labeled_csv(path, opts),
        Format::Clinc150 => crate::import::import_clinc150(path, &crate::import::CLINC150_ALL_SPLITS),
        Format::Nlupp => crate::import::import_nlupp(path, None),
        Format::Rasa => {
            let data = outcomes::outcomes_to_dataset(&rasa::read_rasa_nlu(path)?);
            let locations = vec![Location::file(path); data.len()];
            Ok(Loaded { data, skipped: vec![], locations })
        }
    }
}

/// Writes a data set: labeled JSONL, or multi-label JSON when `path` ends in `.json` and the
/// data is multi-label.
pub fn write_dataset(path: &Path, data: &Dataset) -> Result<()> {
    let json_ext = path.extension().is_some_and(|e| e == "json");
    if data.multi_label && json_ext {
        multilabel::write_multilabel(path, data)
    } else {
        jsonl::write_jsonl(path, data)
    }
}
