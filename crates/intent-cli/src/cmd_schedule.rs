//! `intent schedule`: a crontab entry that runs `intent retrain` monthly, weekly, daily or on
//! days of the month; `STATE_DIR/cron_status.json` says when it last ran and runs next.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use intent_lifecycle::retrain::schedule::{
    entry, entry_config, forget_installed, record_installed, replace, write_cron_status, CronAt,
};
use intent_lifecycle::retrain::{status, RetrainConfig};

/// Install, show or remove the crontab entry of a retrain config.
#[derive(Subcommand, Debug)]
pub enum ScheduleCommand {
    /// Add (or replace) the crontab entry that runs `intent retrain --config CONFIG` (monthly by
    /// default); `--print` only prints the line.
    Install(InstallArgs),
    /// Whether the config has an entry, when it runs, and the last retrain.
    Status(ConfigArg),
    /// Remove the config's entry (other crontab lines stay).
    Remove(ConfigArg),
}

/// The retrain config.
#[derive(Args, Debug)]
pub struct ConfigArg {
    /// The job's configuration.
    #[arg(long, default_value = "retrain.toml")]
    pub config: PathBuf,
}

/// `intent schedule install`.
#[derive(Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// `monthly` (on --day), `weekly` (on --weekday), `daily`, or days of the month such as
    /// `1,15`.
    #[arg(long, default_value = "monthly")]
    pub every: String,
    /// Day of the week of `--every weekly`: mon … sun, or 0 (Sunday) to 6.
    #[arg(long, default_value = "mon")]
    pub weekday: String,
    /// Day of the month of `--every monthly` (1–31; beyond 28 skips the shorter months).
    #[arg(long, default_value_t = 1)]
    pub day: u8,
    /// Hour (0–23, the cron daemon's local time).
    #[arg(long, default_value_t = 3)]
    pub hour: u8,
    /// Minute (0–59).
    #[arg(long, default_value_t = 0)]
    pub minute: u8,
    /// Print the line instead of installing it.
    #[arg(long)]
    pub print: bool,
    /// The `intent` binary cron runs (default: this one).
    #[arg(long)]
    pub exe: Option<PathBuf>,
}

/// Reads and checks the config; returns it with its absolute path.
fn config(arg: &ConfigArg) -> Result<(RetrainConfig, PathBuf)> {
    let abs = std::fs::canonicalize(&arg.config)
        .with_context(|| format!("{}: the retrain config", arg.config.display()))?;
    Ok((RetrainConfig::read(&abs)?, abs))
}

fn crontab(args: &[&str], stdin: Option<&str>) -> Result<std::process::Output> {
    let mut cmd = Command::new("crontab");
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!(
            "the crontab program is not installed (Debian: apt-get \
            install cron); use --print and add the line to your scheduler yourself"
        ),
        _ => anyhow!("running crontab: {e}"),
    })?;
    if let Some(text) = stdin {
        child.stdin.take().expect("piped").write_all(text.as_bytes()).context("writing to crontab")?;
    }
    child.wait_with_output().context("running crontab")
}

/// The current crontab (empty when the user has none).
fn read_crontab() -> Result<String> {
    let o = crontab(&["-l"], None)?;
    let err = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else if err.contains("no crontab") {
        Ok(String::new())
    } else {
        bail!("crontab -l failed: {}", err.trim())
    }
}

fn write_crontab(text: &str) -> Result<()> {
    let o = crontab(&["-"], Some(text))?;
    if !o.status.success() {
        bail!("crontab - refused the new table: {}", String::from_utf8_lossy(&o.stderr).trim());
    }
    Ok(())
}

/// Runs a schedule command.
pub fn run(c: ScheduleCommand) -> Result<ExitCode> {
    match c {
        ScheduleCommand::Install(a) => {
            let at = CronAt::new(&a.every, a.day, &a.weekday, a.hour, a.minute).map_err(|e| anyhow!(e))?;
            let (cfg, abs) = config(&a.config)?;
            let exe = match a.exe {
                Some(p) => std::fs::canonicalize(&p).with_context(|| format!("--exe {}", p.display()))?,
                None => std::env::current_exe().context("finding this binary")?,
            };
            let log = std::path::absolute(cfg.state_dir.join("cron.log")).context("the log path")?;
            let line = entry(&at, &exe, &abs, &log);
            if cfg.server.is_some() {
                tracing::warn!(
                    "the config reloads a server: the cron job needs its admin token \
                    (server.token_file, or the variable in the crontab)"
                );
            }
            if a.print {
                println!("{line}");
                return Ok(ExitCode::SUCCESS);
            }
            let (text, removed) = replace(&read_crontab()?, &abs, Some(&line));
            write_crontab(&text)?;
            record_installed(&cfg.state_dir, &at)
                .with_context(|| format!("recording the schedule in {}", cfg.state_dir.display()))?;
            let status = write_cron_status(&cfg).context("writing cron_status.json")?;
            println!(
                "{} the crontab entry of {}: {}",
                if removed > 0 { "replaced" } else { "installed" },
                abs.display(),
                at.describe()
            );
            println!("{line}");
            println!("next run: {}", status["next_run"].as_str().unwrap_or("-"));
        }
        ScheduleCommand::Status(a) => {
            let (cfg, abs) = config(&a)?;
            let table = read_crontab()?;
            let key = abs.to_string_lossy();
            let lines: Vec<&str> = table.lines().filter(|l| entry_config(l) == Some(key.as_ref())).collect();
            match lines.as_slice() {
                [] => println!("not scheduled: no crontab entry runs {}", abs.display()),
                ls => {
                    for l in ls {
                        let when = CronAt::parse(l)
                            .map_or_else(|| "a hand-edited time".to_string(), |m| m.describe());
                        println!("scheduled: {when}\n{l}");
                    }
                }
            }
            let s = status(&cfg).with_context(|| format!("status of {}", abs.display()))?;
            match &s.last_run {
                Some(r) => println!("last run: {} at {} ({})", r.status, r.timestamp_unix, r.reason),
                None => println!("last run: none"),
            }
            println!("triggers now: {}", s.triggers);
            let cron = write_cron_status(&cfg).context("writing cron_status.json")?;
            println!("{}: {cron}", cfg.state_dir.join("cron_status.json").display());
        }
        ScheduleCommand::Remove(a) => {
            let abs = std::fs::canonicalize(&a.config)
                .unwrap_or_else(|_| std::path::absolute(&a.config).unwrap_or(a.config.clone()));
            let (text, removed) = replace(&read_crontab()?, Path::new(&abs), None);
            if let Ok(cfg) = RetrainConfig::read(&abs) {
                forget_installed(&cfg.state_dir);
                let _ = write_cron_status(&cfg);
            }
            if removed == 0 {
                println!("nothing to remove: no crontab entry runs {}", abs.display());
            } else {
                write_crontab(&text)?;
                println!(
                    "removed {removed} crontab entr{} of {}",
                    if removed == 1 { "y" } else { "ies" },
                    abs.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
