//! Shared by the command-line tests: run the `intent` binary and check how it ended.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `intent ARGS` in `cwd` (warnings only in the log).
pub fn intent(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_intent"))
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs")
}

/// The standard output of a run that must have succeeded.
pub fn ok(o: &Output) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    out
}

/// A run that failed with exit code 2 and an `error:` line holding `needle`.
pub fn fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.lines().any(|l| l.starts_with("error:") && l.contains(needle)),
        "expected '{needle}' in: {err}"
    );
}
