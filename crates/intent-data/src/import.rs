//! Importers for the public benchmark data sets (CLINC150, BANKING77, NLU++, MovieLens).

use std::path::{Path, PathBuf};

use crate::error::{DataError, Location, Result, Skipped};
use crate::formats::interactions::{Interaction, Interactions};
use crate::formats::{LoadOptions, Loaded};
use crate::io::read_text;
use crate::record::{Dataset, Example};
use crate::validate::check_example;

/// The splits of CLINC150 `data_full.json`.
pub const CLINC150_ALL_SPLITS: [&str; 6] = ["train", "val", "test", "oos_train", "oos_val", "oos_test"];

/// Imports CLINC150 (`data_full.json`: split → list of `[text, intent]`). Rows of the `oos_*`
/// splits keep their label `oos`.
pub fn import_clinc150(path: &Path, splits: &[&str]) -> Result<Loaded<Dataset>> {
    let text = read_text(path)?;
    let doc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| DataError::json(path, &e))?;
    let mut examples = Vec::new();
    let mut locations = Vec::new();
    for split in splits {
        let rows = doc.get(*split).and_then(|v| v.as_array()).ok_or_else(|| {
            let have: Vec<_> = doc.keys().map(String::as_str).collect();
            DataError::invalid(
                Location::json(path, format!("$.{split}")),
                format!(
                    "no split '{split}' (a list of [text, intent]) in this file; it has: {}",
                    have.join(", ")
                ),
            )
        })?;
        for (i, row) in rows.iter().enumerate() {
            let pair = row.as_array().filter(|a| a.len() == 2);
            let (t, l) = match pair.map(|a| (a[0].as_str(), a[1].as_str())) {
                Some((Some(t), Some(l))) => (t, l),
                _ => {
                    return Err(DataError::invalid(
                        Location::json(path, format!("$.{split}[{i}]")),
                        format!("expected [text, intent] (two strings), found {row}"),
                    ))
                }
            };
            let ex = Example::new(t, l).with_source(format!("clinc150:{split}"));
            check_example(&ex, false).map_err(|reason| {
                DataError::invalid(Location::json(path, format!("$.{split}[{i}]")), reason)
            })?;
            examples.push(ex);
            locations.push(Location::json(path, format!("$.{split}[{i}]")));
        }
    }
    Ok(Loaded { data: Dataset::new(examples), skipped: vec![], locations })
}

/// Loads a labeled CSV with a header: a `text` column and a label column named `category`
/// (BANKING77), `label` or `intent`. A row with a missing column is an error naming its line.
pub fn load_labeled_csv(path: &Path, opts: &LoadOptions) -> Result<Loaded<Dataset>> {
    let text = read_text(path)?;
    let delimiter = if path.extension().is_some_and(|e| e == "tsv") { b'\t' } else { b',' };
    let mut reader =
        csv::ReaderBuilder::new().flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let headers =
        reader.headers().map_err(|e| DataError::invalid(Location::line(path, 1), e.to_string()))?.clone();
    let find =
        |names: &[&str]| headers.iter().position(|h| names.contains(&h.trim().to_ascii_lowercase().as_str()));
    let text_col = find(&["text", "utterance", "sentence"]).ok_or_else(|| {
        DataError::invalid(
            Location::line(path, 1),
            format!("header has no `text` column (found: {})", headers.iter().collect::<Vec<_>>().join(",")),
        )
    })?;
    let label_col = find(&["category", "label", "intent"]).ok_or_else(|| {
        DataError::invalid(
            Location::line(path, 1),
            format!(
                "header has no `category`, `label` or `intent` column (found: {})",
                headers.iter().collect::<Vec<_>>().join(",")
            ),
        )
    })?;
    let mut examples = Vec::new();
    let mut skipped = Vec::new();
    let mut locations = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            DataError::invalid(Location::line(path, line), format!("bad CSV row: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let check = || -> std::result::Result<Example, String> {
            if record.len() != headers.len() {
                return Err(format!(
                    "expected {} columns ({}), found {}",
                    headers.len(),
                    headers.iter().collect::<Vec<_>>().join(","),
                    record.len()
                ));
            }
            let ex = Example::new(record[text_col].to_string(), record[label_col].trim().to_string());
            check_example(&ex, false)?;
            Ok(ex)
        };
        match check() {
            Ok(ex) => {
                examples.push(ex);
                locations.push(Location::line(path, line));
            }
            Err(reason) if opts.skip_invalid => {
                skipped.push(Skipped { location: Location::line(path, line), reason })
            }
            Err(reason) => return Err(DataError::invalid(Location::line(path, line), reason)),
        }
    }
    Ok(Loaded { data: Dataset::new(examples), skipped, locations })
}

/// The fold files of an NLU++ domain folder, in fold order. `path` may be the NLU++ root (the
/// `banking` domain is used), a domain folder, or a single fold file.
pub fn nlupp_fold_files(path: &Path) -> Result<Vec<(usize, PathBuf)>> {
    if path.is_file() {
        return Ok(vec![(0, path.to_path_buf())]);
    }
    let dir = if path.join("banking").is_dir() { path.join("banking") } else { path.to_path_buf() };
    let mut folds = Vec::new();
    for f in crate::io::json_files_in(&dir)? {
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if let Some(n) = stem.strip_prefix("fold").and_then(|n| n.parse::<usize>().ok()) {
            folds.push((n, f));
        }
    }
    folds.sort();
    if folds.is_empty() {
        return Err(DataError::invalid(Location::file(&dir), "no foldN.json files here"));
    }
    Ok(folds)
}

/// Imports NLU++ folds (multi-label; an example may have no intent). `folds`: which fold numbers
/// to read (all when `None`).
pub fn import_nlupp(path: &Path, folds: Option<&[usize]>) -> Result<Loaded<Dataset>> {
    let files = nlupp_fold_files(path)?;
    if let Some(want) = folds {
        let have: Vec<usize> = files.iter().map(|(n, _)| *n).collect();
        if let Some(missing) = want.iter().find(|n| !have.contains(n)) {
            return Err(DataError::Option {
                name: "--folds",
                message: format!("fold {missing} not found (have {have:?})"),
            });
        }
    }
    let mut examples = Vec::new();
    let mut locations = Vec::new();
    for (n, file) in files {
        if folds.is_some_and(|want| !want.contains(&n)) {
            continue;
        }
        let text = read_text(&file)?;
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| DataError::json(&file, &e))?;
        for (i, row) in rows.iter().enumerate() {
            let loc = || Location::json(&file, format!("$[{i}]"));
            let t = row
                .get("text")
                .and_then(|t| t.as_str())
                .ok_or_else(|| DataError::invalid(loc(), "row has no `text` string"))?;
            let labels = match row.get("intents") {
                None | Some(serde_json::Value::Null) => vec![],
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| DataError::invalid(loc(), "`intents` must be a list of strings"))
                    })
                    .collect::<Result<Vec<_>>>()?,
                Some(_) => return Err(DataError::invalid(loc(), "`intents` must be a list of strings")),
            };
            let ex = Example::multi(t, labels).with_source(format!("nlupp:fold{n}"));
            check_example(&ex, true).map_err(|r| DataError::invalid(loc(), r))?;
            examples.push(ex);
            locations.push(loc());
        }
    }
    Ok(Loaded { data: Dataset { examples, multi_label: true }, skipped: vec![], locations })
}

/// Imports MovieLens `u.data` (tab-separated `user item rating timestamp`): every rating is an
/// implicit interaction whose `implicit_rating` is the star rating.
pub fn import_movielens(path: &Path) -> Result<Interactions> {
    let text = read_text(path)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let loc = || Location::line(path, i + 1);
        if cols.len() != 4 {
            return Err(DataError::invalid(
                loc(),
                format!(
                    "expected 4 tab-separated columns (user item rating timestamp), found {}",
                    cols.len()
                ),
            ));
        }
        let rating: f32 = cols[2]
            .trim()
            .parse()
            .map_err(|_| DataError::invalid(loc(), format!("rating '{}' is not a number", cols[2])))?;
        let ts: i64 = cols[3]
            .trim()
            .parse()
            .map_err(|_| DataError::invalid(loc(), format!("timestamp '{}' is not an integer", cols[3])))?;
        rows.push(Interaction {
            user_id: cols[0].trim().to_string(),
            item_id: cols[1].trim().to_string(),
            timestamp: Some(ts),
            interaction_type: Some("rating".into()),
            implicit_rating: rating,
        });
    }
    Ok(Interactions::new(rows))
}

/// Parses a fold list such as `0-15` or `0,3,5-7`.
pub fn parse_folds(spec: &str) -> Result<Vec<usize>> {
    let bad = || DataError::Option {
        name: "--folds",
        message: format!("'{spec}' is not a fold list like 0-15 or 0,3,5-7"),
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if a > b || b - a > 10_000 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}
