//! Labeled JSONL: one `{"text", "label"}` object per line, or `{"text", "labels": [..]}` for
//! multi-label data, with optional `confidence`, `source` and `timestamp`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Location, Result, Skipped};
use crate::formats::{LoadOptions, Loaded};
use crate::record::{Dataset, Example};
use crate::validate::check_example;

/// One line of a labeled JSONL file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabeledRecord {
    /// The utterance.
    pub text: String,
    /// The label (single-label data). `gold` is accepted too, so that an evaluation errors
    /// file can be read back.
    #[serde(default, alias = "gold", skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The labels (multi-label data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Confidence of the label, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// Where the record came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was labeled (any string, or a number which is kept as text).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "string_or_number")]
    pub timestamp: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => {
            Err(serde::de::Error::custom(format!("timestamp must be a string or number, found {other}")))
        }
    }
}

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses one line into an example, or says what is wrong with it.
fn parse_line(line: &str) -> std::result::Result<(Example, bool), String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m).to_string();
        if e.is_eof() {
            format!("truncated JSON object: {msg}")
        } else {
            format!("not valid JSON: {msg}")
        }
    })?;
    if !value.is_object() {
        return Err(format!(
            "expected a JSON object like {{\"text\": \"…\", \"label\": \"…\"}}, found {}",
            type_name(&value)
        ));
    }
    let rec: LabeledRecord = serde_json::from_value(value).map_err(|e| format!("bad record: {e}"))?;
    let (labels, multi) = match (rec.label, rec.labels) {
        (Some(_), Some(_)) => return Err("record has both `label` and `labels`; use one".into()),
        (Some(l), None) => (vec![l], false),
        (None, Some(ls)) => (ls, true),
        (None, None) => return Err("record has no `label` (or `labels` for multi-label data)".into()),
    };
    let example = Example {
        text: rec.text,
        labels,
        confidence: rec.confidence,
        source: rec.source,
        timestamp: rec.timestamp,
    };
    Ok((example, multi))
}

/// Loads a labeled JSONL file. Blank lines are ignored. A bad line is an error naming its line,
/// or, with `skip_invalid`, is left out and listed in [`Loaded::skipped`].
pub fn load_jsonl(path: &Path, opts: &LoadOptions) -> Result<Loaded<Dataset>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let bytes = bytes.strip_prefix(crate::io::UTF8_BOM).unwrap_or(&bytes);
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    let mut multi_label = false;
    let mut locations = Vec::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let loc = Location::line(path, i + 1);
        let parsed = std::str::from_utf8(raw)
            .map_err(|e| {
                format!("not valid UTF-8 (byte {} of the line); files must be UTF-8", e.valid_up_to() + 1)
            })
            .and_then(|line| {
                let line = line.trim_end_matches('\r');
                if line.trim().is_empty() {
                    return Ok(None);
                }
                let (ex, multi) = parse_line(line)?;
                check_example(&ex, multi)?;
                Ok(Some((ex, multi)))
            });
        match parsed {
            Ok(None) => {}
            Ok(Some((ex, multi))) => {
                multi_label |= multi;
                examples.push(ex);
                locations.push(loc);
            }
            Err(reason) if opts.skip_invalid => skipped.push(Skipped { location: loc, reason }),
            Err(reason) => return Err(DataError::invalid(loc, reason)),
        }
    }
    Ok(Loaded { data: Dataset { examples, multi_label }, skipped, locations })
}

/// Renders a data set as labeled JSONL (`label` for single-label, `labels` for multi-label).
pub fn to_jsonl(data: &Dataset) -> String {
    let mut out = String::new();
    for e in &data.examples {
        let (label, labels) =
            if data.multi_label { (None, Some(e.labels.clone())) } else { (e.labels.first().cloned(), None) };
        let rec = LabeledRecord {
            text: e.text.clone(),
            label,
            labels,
            confidence: e.confidence,
            source: e.source.clone(),
            timestamp: e.timestamp.clone(),
        };
        out.push_str(&serde_json::to_string(&rec).expect("a record always serializes"));
        out.push('\n');
    }
    out
}

/// Writes a data set as labeled JSONL, atomically.
pub fn write_jsonl(path: &Path, data: &Dataset) -> Result<()> {
    crate::io::atomic_write(path, to_jsonl(data).as_bytes())
}
