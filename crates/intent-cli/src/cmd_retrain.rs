//! `intent retrain`: the retraining job (triggers, merged data, validation, deploy, history).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use intent_lifecycle::retrain::{record_bad_config, retrain, status, RetrainConfig, RunOptions, RunStatus};

/// Retrain when a trigger fires: merge the base data with new labeled files, train the
/// configured model kind, validate it on the held-out set (quality gate, no regression against
/// `current`), register and promote it, reload the server. One history line per run.
#[derive(Args, Debug)]
pub struct RetrainArgs {
    /// The job's configuration (`retrain.toml`).
    #[arg(long)]
    pub config: PathBuf,
    /// Run whatever the triggers say.
    #[arg(long)]
    pub force: bool,
    /// Say what would happen; change nothing.
    #[arg(long, conflicts_with = "status")]
    pub dry_run: bool,
    /// Print the last run, what the triggers say now and the registry state.
    #[arg(long)]
    pub status: bool,
}

/// Exit codes: 0 deployed, skipped or dry run; 1 candidate rejected; 2 failed.
pub fn run(a: RetrainArgs) -> Result<ExitCode> {
    let cfg = match RetrainConfig::read(&a.config) {
        Ok(c) => c,
        Err(e) => {
            // A run that cannot start is still a run: the history says so (not for --status or
            // --dry-run, which change nothing).
            if !a.status && !a.dry_run {
                if let Some(h) = record_bad_config(&a.config, &e) {
                    eprintln!("recorded as failed in {}", h.display());
                }
            }
            return Err(e.into());
        }
    };
    if a.status {
        let s = status(&cfg).with_context(|| format!("status of {}", a.config.display()))?;
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    let line = retrain(&cfg, RunOptions { force: a.force, dry_run: a.dry_run, ..RunOptions::default() })
        .with_context(|| format!("retrain ({})", a.config.display()))?;
    println!("{}: {}", line.status, line.reason);
    println!("{line}");
    Ok(match line.status {
        RunStatus::Rejected => ExitCode::from(1),
        RunStatus::Failed => ExitCode::from(2),
        _ => ExitCode::SUCCESS,
    })
}
