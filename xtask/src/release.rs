//! `cargo xtask release [--cuda] [--skip-checks] [--out DIR]`: the release archive of the `intent`
//! binary. Refuses a tree with uncommitted changes and a version without a CHANGELOG entry;
//! runs the gates of CI (format, lints, tests; `--skip-checks` leaves them out for a second run
//! of the same commit); builds the release binary (with the CUDA backend when asked); packs
//! `intent-VERSION-TARGET[-cuda].tar.gz` (the binary, README.md, LICENSE, CHANGELOG.md in one
//! folder) into `dist/`, with a `.sha256` file in the format of `sha256sum`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Runs `cmd`, failing with its description when it does not succeed.
fn run(cmd: &mut Command, what: &str) -> Result<()> {
    eprintln!("== {what}");
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn output(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The workspace version (`[workspace.package] version` of the root `Cargo.toml`).
fn version(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).context("reading Cargo.toml")?;
    let manifest: toml::Table = toml::from_str(&text).context("parsing Cargo.toml")?;
    manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .context("Cargo.toml: no [workspace.package] version")
}

/// Whether CHANGELOG.md has a `## VERSION` or `## [VERSION]` heading.
fn has_changelog_entry(changelog: &str, version: &str) -> bool {
    changelog.lines().any(|l| {
        let Some(h) = l.strip_prefix("## ") else { return false };
        let h = h.trim_start();
        let h = h.strip_prefix('[').unwrap_or(h);
        h.strip_prefix(version).is_some_and(|rest| rest.is_empty() || rest.starts_with([']', ' ', '-']))
    })
}

/// SHA-256 of a file, in hex.
fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Packs `files` (path in the archive's folder, file on disk) into `archive` under `folder/`.
fn pack(archive: &Path, folder: &str, files: &[(&str, PathBuf)]) -> Result<()> {
    let tmp = archive.with_extension("partial");
    let gz = flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, path) in files {
        tar.append_path_with_name(path, format!("{folder}/{name}"))
            .with_context(|| format!("adding {}", path.display()))?;
    }
    let gz = tar.into_inner()?;
    let file = gz.finish()?;
    file.sync_all()?;
    std::fs::rename(&tmp, archive)?;
    Ok(())
}

/// `cargo xtask release …`.
pub fn release(args: &[String]) -> Result<()> {
    let (mut cuda, mut skip_checks, mut out) = (false, false, PathBuf::from("dist"));
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cuda" => cuda = true,
            "--skip-checks" => skip_checks = true,
            "--out" => out = it.next().context("--out needs a folder")?.into(),
            other => bail!("release: unknown argument '{other}' (expected --cuda, --skip-checks, --out DIR)"),
        }
    }
    let root =
        PathBuf::from(output(Command::new("git").args(["rev-parse", "--show-toplevel"]), "git")?.trim());
    std::env::set_current_dir(&root)?;
    let dirty = output(Command::new("git").args(["status", "--porcelain"]), "git status")?;
    if !dirty.trim().is_empty() {
        bail!("the tree has uncommitted changes; commit or stash them first:\n{}", dirty.trim_end());
    }
    let version = version(&root)?;
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).context("reading CHANGELOG.md")?;
    if !has_changelog_entry(&changelog, &version) {
        bail!("CHANGELOG.md has no entry for {version} (a `## {version}` heading)");
    }
    let cargo = || super::cargo();
    if !skip_checks {
        run(cargo().args(["fmt", "--all", "--check"]), "cargo fmt --check")?;
        run(
            cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
            "cargo clippy",
        )?;
        run(cargo().args(["test", "--workspace"]), "cargo test")?;
    }
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "intent-cli"]);
    if cuda {
        build.args(["--features", "cuda"]);
    }
    run(&mut build, "cargo build --release")?;
    let host = output(Command::new("rustc").arg("-vV"), "rustc -vV")?;
    let target = host.lines().find_map(|l| l.strip_prefix("host: ")).context("rustc -vV: no host line")?;
    let name = format!("intent-{version}-{target}{}", if cuda { "-cuda" } else { "" });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let archive = out.join(format!("{name}.tar.gz"));
    let binary = root.join("target/release").join(format!("intent{}", std::env::consts::EXE_SUFFIX));
    pack(
        &archive,
        &name,
        &[
            ("intent", binary),
            ("README.md", root.join("README.md")),
            ("LICENSE", root.join("LICENSE")),
            ("CHANGELOG.md", root.join("CHANGELOG.md")),
        ],
    )?;
    let digest = sha256_file(&archive)?;
    let sum = out.join(format!("{name}.tar.gz.sha256"));
    std::fs::write(&sum, format!("{digest}  {name}.tar.gz\n"))?;
    println!("{}\n{}  sha256 {digest}", archive.display(), sum.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changelog_entries_are_found_by_version() {
        let log = "# Changelog\n\n## [0.2.0] - 2027-01-05\n- more\n\n## 0.1.0\n- first\n";
        assert!(has_changelog_entry(log, "0.2.0"));
        assert!(has_changelog_entry(log, "0.1.0"));
        assert!(!has_changelog_entry(log, "0.1"));
        assert!(!has_changelog_entry(log, "0.3.0"));
        assert!(!has_changelog_entry("- 0.1.0 mentioned in a line\n", "0.1.0"));
    }

    #[test]
    fn archives_hold_the_files_under_one_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b.md"));
        std::fs::write(&a, b"binary").unwrap();
        std::fs::write(&b, b"# readme").unwrap();
        let archive = dir.path().join("x.tar.gz");
        pack(&archive, "intent-1.0.0-host", &[("intent", a), ("README.md", b)]).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(File::open(&archive).unwrap()));
        let mut names: Vec<(String, String)> = tar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                (e.path().unwrap().display().to_string(), s)
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ("intent-1.0.0-host/README.md".to_string(), "# readme".to_string()),
                ("intent-1.0.0-host/intent".to_string(), "binary".to_string())
            ]
        );
        // The checksum is the one of the bytes (sha256 of "abc" is the FIPS 180-2 example).
        std::fs::write(dir.path().join("abc"), b"abc").unwrap();
        assert_eq!(
            sha256_file(&dir.path().join("abc")).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
