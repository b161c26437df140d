//! Chatbot intents files: `{"tag", "patterns": [..], "responses": [..], "context_set"?}`.
//! A file holds one such object, a list of them, or `{"intents": [..]}`; a folder holds any
//! number of such files (`data/intents/*.json`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Location, Result, Skipped};
use crate::formats::{LoadOptions, Loaded};
use crate::io::{atomic_write, json_files_in, read_text};
use crate::record::{Dataset, Example};
use crate::validate::check_example;

/// One intent: a tag, the patterns users say, and the bot's responses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The label.
    pub tag: String,
    /// Example utterances.
    pub patterns: Vec<String>,
    /// Responses the assistant may give.
    #[serde(default)]
    pub responses: Vec<String>,
    /// Optional dialogue context the intent sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_set: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntentsDoc {
    Wrapped { intents: Vec<Intent> },
    One(Intent),
    Many(Vec<Intent>),
}

/// Reads the intents of one file (any of the three layouts).
pub fn read_intents_file(path: &Path) -> Result<Vec<Intent>> {
    let text = read_text(path)?;
    // First check the syntax, so that a truncated file reports its line.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| DataError::json(path, &e))?;
    match serde_json::from_value::<IntentsDoc>(value.clone()) {
        Ok(IntentsDoc::Wrapped { intents }) | Ok(IntentsDoc::Many(intents)) => Ok(intents),
        Ok(IntentsDoc::One(intent)) => Ok(vec![intent]),
        Err(_) => {
            // Untagged enums give vague errors: re-parse as the closest shape for a precise one.
            let err = match &value {
                serde_json::Value::Array(_) => serde_json::from_value::<Vec<Intent>>(value).err(),
                v if v.get("intents").is_some() => {
                    serde_json::from_value::<BTreeMap<String, Vec<Intent>>>(value).err()
                }
                _ => serde_json::from_value::<Intent>(value).err(),
            };
            let msg = err.map_or_else(|| "unrecognised layout".to_string(), |e| e.to_string());
            Err(DataError::invalid(
                Location::file(path),
                format!(
                    "expected an intent {{\"tag\", \"patterns\", \"responses\"}}, a list of them or \
                    {{\"intents\": [..]}}: {msg}"
                ),
            ))
        }
    }
}

/// Reads intents from a file or from every `*.json` file of a folder.
pub fn read_intents(path: &Path) -> Result<Vec<(std::path::PathBuf, Vec<Intent>)>> {
    if path.is_dir() {
        json_files_in(path)?.into_iter().map(|f| read_intents_file(&f).map(|i| (f, i))).collect()
    } else {
        Ok(vec![(path.to_path_buf(), read_intents_file(path)?)])
    }
}

/// Turns intents into labeled examples: one example per pattern, labeled with the tag.
pub fn intents_to_dataset(
    files: &[(std::path::PathBuf, Vec<Intent>)],
    opts: &LoadOptions,
) -> Result<Loaded<Dataset>> {
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    let mut locations = Vec::new();
    for (file, intents) in files {
        for (i, intent) in intents.iter().enumerate() {
            if intent.tag.trim().is_empty() {
                let loc = Location::json(file, format!("$[{i}].tag"));
                if opts.skip_invalid {
                    skipped.push(Skipped { location: loc, reason: "empty tag".into() });
                    continue;
                }
                return Err(DataError::invalid(loc, "empty tag: every intent needs a label"));
            }
            for (j, pattern) in intent.patterns.iter().enumerate() {
                let ex =
                    Example::new(pattern.clone(), intent.tag.clone()).with_source(file.display().to_string());
                let loc = Location::json(file, format!("intent '{}' patterns[{j}]", intent.tag));
                if let Err(reason) = check_example(&ex, false) {
                    if opts.skip_invalid {
                        skipped.push(Skipped { location: loc, reason });
                        continue;
                    }
                    return Err(DataError::invalid(loc, reason));
                }
                examples.push(ex);
                locations.push(loc);
            }
        }
    }
    Ok(Loaded { data: Dataset::new(examples), skipped, locations })
}

/// Loads an intents file or folder as a labeled data set.
pub fn load_intents(path: &Path, opts: &LoadOptions) -> Result<Loaded<Dataset>> {
    intents_to_dataset(&read_intents(path)?, opts)
}

/// Groups a single-label data set into intents (patterns in order; no responses).
pub fn dataset_to_intents(data: &Dataset) -> Vec<Intent> {
    let mut by_tag: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &data.examples {
        if let Some(l) = e.label() {
            by_tag.entry(l).or_default().push(e.text.clone());
        }
    }
    by_tag
        .into_iter()
        .map(|(tag, patterns)| Intent {
            tag: tag.to_string(),
            patterns,
            responses: vec![],
            context_set: None,
        })
        .collect()
}

/// Writes intents as one `<tag>.json` file each into `dir`.
pub fn write_intents_dir(dir: &Path, intents: &[Intent]) -> Result<()> {
    for intent in intents {
        let safe: String = intent
            .tag
            .chars()
            .map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .collect();
        let json = serde_json::to_string_pretty(intent).expect("intent serializes");
        atomic_write(&dir.join(format!("{safe}.json")), json.as_bytes())?;
    }
    Ok(())
}
