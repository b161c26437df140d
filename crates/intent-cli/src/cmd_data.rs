//! `intent data …`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use intent_data::augment::{augment, AugmentConfig};
use intent_data::formats::outcomes::read_outcomes;
use intent_data::split::{merge, stratified_split, ConflictPolicy, SplitConfig};
use intent_data::validate::{validate_dataset, Severity};
use intent_data::{import, write_dataset};

use crate::common::InputFlags;

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Check files: syntax, records, labels, duplicates and conflicts. Exit 1 on errors.
    Validate(ValidateArgs),
    /// Per-label counts, text lengths, warnings.
    Stats(StatsArgs),
    /// Convert a public data set (or intents files) to labeled JSONL (interactions JSON for MovieLens).
    Import(ImportArgs),
    /// Add synthetic sentences per label (synonyms, templates, swap, deletion).
    Augment(AugmentArgs),
    /// Stratified train / validation (/ test) split.
    Split(SplitArgs),
    /// Merge files, de-duplicating by normalized text.
    Merge(MergeArgs),
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// Files or folders to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub input: InputFlags,
    /// Warn about labels with fewer examples (interactions: users with fewer interactions).
    #[arg(long, default_value_t = 5)]
    pub min_per_label: usize,
    /// The files are recommender interactions JSON (detected from a top-level `interactions`
    /// list when not given).
    #[arg(long, conflicts_with = "format")]
    pub interactions: bool,
}

/// True for a JSON file with a top-level `interactions` list.
fn is_interactions_file(path: &std::path::Path) -> bool {
    path.is_file()
        && std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.get("interactions").is_some_and(serde_json::Value::is_array))
}

/// Checks an interactions file, printing what was found; true when it has errors.
fn validate_interactions_file(path: &std::path::Path, min_per_user: usize) -> bool {
    match intent_data::formats::interactions::load_interactions(path) {
        Err(e) => {
            println!("{}: INVALID: {e:#}", path.display());
            true
        }
        Ok(data) => {
            let findings = intent_data::validate::validate_interactions(&data, min_per_user);
            let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
            let m = &data.metadata;
            println!(
                "{}: {} interactions, {} users, {} items, {} error(s), {} warning(s)",
                path.display(),
                m.num_interactions,
                m.num_users,
                m.num_items,
                errors,
                findings.len() - errors
            );
            for finding in &findings {
                println!("  {:?}: {}", finding.severity, finding.message);
            }
            errors > 0
        }
    }
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// File or folder.
    pub file: PathBuf,
    #[command(flatten)]
    pub input: InputFlags,
    /// Warn about labels with fewer examples.
    #[arg(long, default_value_t = 10)]
    pub min_per_label: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Source format.
    #[arg(long, value_parser = ["clinc150", "banking77", "nlupp", "movielens", "intents", "rasa"])]
    pub format: String,
    /// Source file or folder (data_full.json, train.csv, the NLU++ folder, u.data, intents
    /// folder, Rasa's nlu.yml or its data folder).
    pub src: PathBuf,
    /// Output file (.jsonl; .json for MovieLens interactions).
    #[arg(long)]
    pub out: PathBuf,
    /// CLINC150 splits to take, comma-separated (train, val, test, oos_train, oos_val, oos_test).
    #[arg(long, default_value = "train,val,test,oos_train,oos_val,oos_test")]
    pub splits: String,
    /// NLU++ folds to take, e.g. 0-15 or 0,3,5-7 (default: all).
    #[arg(long)]
    pub folds: Option<String>,
    /// Rasa: also write one outcome definition per intent into this folder (examples and the
    /// synonyms its examples use, for `intent data augment --outcomes`).
    #[arg(long)]
    pub outcomes_out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct AugmentArgs {
    /// Labeled data to augment.
    #[arg(long)]
    pub train: PathBuf,
    #[command(flatten)]
    pub input: InputFlags,
    /// Outcome definitions (synonyms, templates): a file or a folder such as crates/intent-cli/data/outcomes.
    #[arg(long)]
    pub outcomes: Option<PathBuf>,
    /// Synthetic sentences per label.
    #[arg(long, default_value_t = 5)]
    pub augment_factor: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file (originals + synthetic).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct SplitArgs {
    /// Labeled data to split.
    #[arg(long)]
    pub train: PathBuf,
    #[command(flatten)]
    pub input: InputFlags,
    /// Share of each label for training.
    #[arg(long, default_value_t = 0.8)]
    pub train_fraction: f64,
    /// Share of each label for a test set (0: no test.jsonl).
    #[arg(long, default_value_t = 0.0)]
    pub test_fraction: f64,
    /// Minimum validation examples per label.
    #[arg(long, default_value_t = 1)]
    pub min_val_per_label: usize,
    /// Seed of the shuffle.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output folder for train.jsonl, val.jsonl (and test.jsonl).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Files to merge, in order.
    #[arg(required = true, num_args = 2..)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub input: InputFlags,
    /// Same text, different labels: keep the first record (originals preserved) or the last
    /// (later files correct earlier labels).
    #[arg(long, default_value = "keep-first", value_parser = ["keep-first", "keep-last"])]
    pub conflict: String,
    /// Output file.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Validate(a) => {
            let mut failed = false;
            for f in &a.files {
                if a.interactions || is_interactions_file(f) {
                    failed |= validate_interactions_file(f, a.min_per_label);
                    continue;
                }
                match a.input.load(f) {
                    Err(e) => {
                        println!("{}: INVALID: {e:#}", f.display());
                        failed = true;
                    }
                    Ok(loaded) => {
                        let findings = validate_dataset(&loaded.data, a.min_per_label);
                        let errors = findings.iter().filter(|f| f.severity == Severity::Error).count();
                        println!(
                            "{}: {} records, {} labels, {} skipped, {} error(s), {} warning(s)",
                            f.display(),
                            loaded.data.len(),
                            loaded.data.labels().len(),
                            loaded.skipped.len(),
                            errors,
                            findings.len() - errors
                        );
                        for s in &loaded.skipped {
                            println!("  skipped {s}");
                        }
                        for finding in &findings {
                            println!("  {:?}: {}", finding.severity, finding.message);
                        }
                        failed |= errors > 0;
                    }
                }
            }
            Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        DataCommand::Stats(a) => {
            let loaded = a.input.load(&a.file)?;
            let s = intent_data::stats::stats(&loaded.data, a.min_per_label);
            let advice = intent_train::advice::data_size_advice(&loaded.data);
            if a.json {
                let mut v = serde_json::to_value(&s)?;
                v["advice"] = serde_json::json!(advice);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{}: {} examples, {} labels{}",
                    a.file.display(),
                    s.examples,
                    s.labels,
                    if s.multi_label { " (multi-label)" } else { "" }
                );
                if let Some(l) = &s.length {
                    println!(
                        "tokens per text: min {} median {} mean {:.1} p95 {} max {}",
                        l.min, l.median, l.mean, l.p95, l.max
                    );
                }
                for (label, n) in &s.per_label {
                    println!("  {n:>6}  {label}");
                }
                for w in &s.warnings {
                    println!("warning: {w}");
                }
                if let Some(a) = advice {
                    println!("advice: {a}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Import(a) => {
            match a.format.as_str() {
                "movielens" => {
                    let i = import::import_movielens(&a.src)?;
                    intent_data::formats::interactions::write_interactions(&a.out, &i)?;
                    println!(
                        "{}: {} interactions, {} users, {} items",
                        a.out.display(),
                        i.metadata.num_interactions,
                        i.metadata.num_users,
                        i.metadata.num_items
                    );
                    return Ok(ExitCode::SUCCESS);
                }
                fmt => {
                    let loaded = match fmt {
                        "clinc150" => {
                            let splits: Vec<&str> =
                                a.splits.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                            import::import_clinc150(&a.src, &splits)?
                        }
                        "banking77" if a.src.is_dir() => anyhow::bail!(
                            "{}: a folder; --format banking77 reads one CSV file of the data set \
                             (its train.csv or test.csv)",
                            a.src.display()
                        ),
                        "banking77" => import::load_labeled_csv(&a.src, &Default::default())?,
                        "nlupp" => {
                            let folds = a.folds.as_deref().map(import::parse_folds).transpose()?;
                            import::import_nlupp(&a.src, folds.as_deref())?
                        }
                        "rasa" => {
                            let outcomes = intent_data::formats::rasa::read_rasa_nlu(&a.src)?;
                            if let Some(dir) = &a.outcomes_out {
                                intent_data::formats::outcomes::write_outcomes(dir, &outcomes)?;
                                let synonyms: usize = outcomes.iter().map(|o| o.synonyms.len()).sum();
                                println!(
                                    "{}: {} outcome definitions, {synonyms} synonym entries",
                                    dir.display(),
                                    outcomes.len()
                                );
                            }
                            let data = intent_data::formats::outcomes::outcomes_to_dataset(&outcomes);
                            intent_data::formats::Loaded { locations: Vec::new(), skipped: Vec::new(), data }
                        }
                        _ => intent_data::formats::intents::load_intents(&a.src, &Default::default())?,
                    };
                    write_dataset(&a.out, &loaded.data)
                        .with_context(|| format!("writing {}", a.out.display()))?;
                    println!(
                        "{}: {} examples, {} labels",
                        a.out.display(),
                        loaded.data.len(),
                        loaded.data.labels().len()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Augment(a) => {
            let data = a.input.load(&a.train)?.data;
            let outcomes = a.outcomes.as_deref().map(read_outcomes).transpose()?.unwrap_or_default();
            let out = augment(&data, &outcomes, AugmentConfig { factor: a.augment_factor, seed: a.seed });
            for (label, made) in &out.short {
                tracing::warn!(
                    "label '{label}': only {made} unique synthetic sentence(s) of {} wanted",
                    a.augment_factor
                );
            }
            write_dataset(&a.out, &out.data)?;
            println!(
                "{}: {} originals + {} synthetic",
                a.out.display(),
                data.len(),
                out.data.len() - data.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Split(a) => {
            let data = a.input.load(&a.train)?.data;
            let cfg = SplitConfig {
                train_fraction: a.train_fraction,
                test_fraction: a.test_fraction,
                min_val_per_label: a.min_val_per_label,
                seed: a.seed,
            };
            let s = stratified_split(&data, cfg)?;
            std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
            write_dataset(&a.out.join("train.jsonl"), &s.train)?;
            write_dataset(&a.out.join("val.jsonl"), &s.val)?;
            if a.test_fraction > 0.0 {
                write_dataset(&a.out.join("test.jsonl"), &s.test)?;
            }
            println!(
                "{}: train {}, val {}, test {}",
                a.out.display(),
                s.train.len(),
                s.val.len(),
                s.test.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Merge(a) => {
            let parts =
                a.files.iter().map(|f| a.input.load(f).map(|l| l.data)).collect::<Result<Vec<_>>>()?;
            let policy =
                if a.conflict == "keep-last" { ConflictPolicy::KeepLast } else { ConflictPolicy::KeepFirst };
            let m = merge(&parts, policy);
            for c in &m.conflicts {
                tracing::warn!("conflict on \"{}\": kept {:?}, dropped {:?}", c.text, c.kept, c.dropped);
            }
            write_dataset(&a.out, &m.data)?;
            println!(
                "{}: {} records ({} duplicates dropped, {} conflicts resolved by {})",
                a.out.display(),
                m.data.len(),
                m.duplicates,
                m.conflicts.len(),
                a.conflict
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
