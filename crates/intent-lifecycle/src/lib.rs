//! intent-lifecycle: what happens to a model after its first training. [`retrain`] runs the
//! automated retraining loop (triggers → merged data → candidate → held-out validation →
//! register and promote in the [`intent_registry`] → tell the server → history), and
//! [`retrain::schedule`] installs it in cron; [`hub`] pushes a model folder to the Hugging Face
//! Hub (deploy with `intent serve --model hf://ORG/NAME`).
//!
//! ```
//! use intent_lifecycle::retrain::RetrainConfig;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("retrain.toml");
//! let toml = "model = \"faq\"\nkind = \"mlp\"\nbase_data = \"base.jsonl\"\nholdout = \"holdout.jsonl\"\n";
//! std::fs::write(&path, toml)?;
//! let config = RetrainConfig::read(&path)?;
//! assert_eq!(config.model, "faq");
//! assert_eq!(config.triggers.min_new_samples, 50); // the default
//! assert_eq!(config.holdout, dir.path().join("holdout.jsonl")); // relative to the file
//! # Ok(())
//! # }
//! ```

pub mod hub;
pub mod retrain;
