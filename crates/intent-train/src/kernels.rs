//! cubecl's kernel caches (CUDA and Vulkan builds): where compiled kernels and autotune results
//! persist between runs, and how many kernels a run compiled.
//!
//! burn's CUDA backend JIT-compiles every kernel (NVRTC) the first time a tensor shape needs it,
//! and autotunes matmuls per shape; 0.1–2 s each. cubecl keeps autotune results on disk by
//! default but compiled PTX only when its configuration says so. [`configure`] switches both on
//! before the first kernel, in one folder:
//!
//! 1. a `cubecl.toml` (or the `[cubecl]` section of a `burn.toml`) in the working directory or
//!    above it wins: cubecl reads it as documented there (`[compilation] cache = "global"`);
//! 2. otherwise `$INTENT_KERNEL_CACHE`, else `$XDG_CACHE_HOME/intent/cubecl`, else
//!    `~/.cache/intent/cubecl`.
//!
//! cubecl's two caches are append-only JSON-lines files there, so the number of lines added during
//! a run is the number of kernels it compiled (and of shapes it autotuned). cubecl's environment
//! variables hold in case 2 as in case 1: `CUBECL_DEBUG_LOG` (compilation and autotune log),
//! `CUBECL_AUTOTUNE_LEVEL` (`minimal`, `balanced` (the default), `extensive`, `full`).
//!
//! CUDA builds keep a third cache there. cubecl's cache holds PTX, which the CUDA driver still
//! compiles to machine code (SASS) whenever a process loads it, one kernel at a time; the driver
//! keeps those results in its own JIT cache, `$CUDA_CACHE_PATH`, by default `~/.nv/ComputeCache`,
//! which a container or a fresh home folder loses while a kept kernel cache survives.
//! [`keep_cuda_jit_cache_with_kernels`] points `CUDA_CACHE_PATH` at `cuda-jit/` beside the kernel
//! cache when the user has not set it, so a warm start is warm for both compilers.

use std::path::{Path, PathBuf};

/// Environment variable naming the kernel-cache folder.
pub const CACHE_ENV: &str = "INTENT_KERNEL_CACHE";

/// The folder [`configure`] uses when no cubecl configuration file is found.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("intent").join("cubecl")
}

/// A `cubecl.toml`, `CubeCL.toml`, `burn.toml` or `Burn.toml` in `start` or a folder above it.
pub fn config_file_above(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|d| {
        ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"]
            .iter()
            .map(|n| d.join(n))
            .find(|p| p.is_file())
    })
}

/// Lines in the `*.json.log` files under `dir` (recursively): cache entries.
pub fn cache_entries(dir: &Path) -> usize {
    let Ok(read) = std::fs::read_dir(dir) else { return 0 };
    read.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                cache_entries(&p)
            } else if p.to_string_lossy().ends_with(".json.log") {
                std::fs::read(&p).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
            } else {
                0
            }
        })
        .sum()
}

/// The CUDA driver's JIT cache folder variable (NVIDIA's name).
pub const CUDA_JIT_CACHE_ENV: &str = "CUDA_CACHE_PATH";

/// Where the CUDA driver's JIT cache belongs: `cuda-jit/` in `kernel_cache`, unless the user set
/// `CUDA_CACHE_PATH` (`user_setting`) or a cubecl configuration file (`config_file`) decides where
/// kernels are cached (then the driver's default stays too).
pub fn cuda_jit_cache_dir(
    user_setting: Option<&std::ffi::OsStr>,
    config_file: Option<&Path>,
    kernel_cache: &Path,
) -> Option<PathBuf> {
    (user_setting.is_none() && config_file.is_none()).then(|| kernel_cache.join("cuda-jit"))
}

/// Sets `CUDA_CACHE_PATH` to [`cuda_jit_cache_dir`] for this process (see the module
/// documentation) and returns it; `None` when it stays as it is. Call it at the start of `main`,
/// before any thread runs (it changes the environment) and before the first CUDA call (the
/// driver reads the variable once). The folder itself is made by [`configure`].
pub fn keep_cuda_jit_cache_with_kernels() -> Option<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let user = std::env::var_os(CUDA_JIT_CACHE_ENV);
    let dir = cuda_jit_cache_dir(user.as_deref(), config_file_above(&cwd).as_deref(), &default_cache_dir())?;
    std::env::set_var(CUDA_JIT_CACHE_ENV, &dir);
    Some(dir)
}

static CACHE_DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

/// Switches cubecl's persistent kernel and autotune caches on (once per process, before the
/// first GPU kernel; see the module documentation for where). Returns the folder when this
/// process chose it, `None` when a cubecl configuration file decides. A no-op without the `cuda`
/// or `vulkan` feature.
pub fn configure() -> Option<PathBuf> {
    CACHE_DIR
        .get_or_init(|| {
            let cwd = std::env::current_dir().unwrap_or_default();
            if let Some(file) = config_file_above(&cwd) {
                tracing::info!("kernel caches: as configured in {}", file.display());
                return None;
            }
            let dir = default_cache_dir();
            if let Err(e) = std::fs::create_dir_all(&dir) {
                tracing::warn!("kernel cache {}: {e}; kernels are compiled afresh each run", dir.display());
                return None;
            }
            // The driver's JIT cache, when `keep_cuda_jit_cache_with_kernels` put it here.
            if let Some(jit) = std::env::var_os(CUDA_JIT_CACHE_ENV).map(PathBuf::from) {
                if jit.starts_with(&dir) {
                    let _ = std::fs::create_dir_all(&jit);
                }
            }
            set_cubecl_caches(&dir).then(|| {
                tracing::info!("kernel caches (compiled kernels, autotune results): {}", dir.display());
                dir
            })
        })
        .clone()
}

/// Cache entries so far in the folder [`configure`] chose (`None` when it chose none).
pub fn entries_so_far() -> Option<usize> {
    CACHE_DIR.get().cloned().flatten().map(|d| cache_entries(&d))
}

#[cfg(any(feature = "cuda", feature = "vulkan"))]
fn set_cubecl_caches(dir: &Path) -> bool {
    use burn::cubecl::config::{cache::CacheConfig, CubeClRuntimeConfig, RuntimeConfig};
    // cubecl applies its environment variables (`CUBECL_DEBUG_LOG`, `CUBECL_AUTOTUNE_LEVEL`, …)
    // only to a configuration it loads itself; one that is `set` must carry them already.
    let mut config = CubeClRuntimeConfig::default().override_from_env();
    config.compilation.cache = Some(CacheConfig::File(dir.to_path_buf()));
    config.autotune.cache = CacheConfig::File(dir.to_path_buf());
    // `set` panics when cubecl's configuration was already read (a kernel ran before): then the
    // caches stay as cubecl found them.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ok = std::panic::catch_unwind(|| CubeClRuntimeConfig::set(config)).is_ok();
    std::panic::set_hook(prev);
    ok
}

#[cfg(not(any(feature = "cuda", feature = "vulkan")))]
fn set_cubecl_caches(_dir: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_config_files_above_and_counts_cache_lines() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(deep.join("cuda/0.10.0")).unwrap();
        assert_eq!(config_file_above(&deep).filter(|p| p.starts_with(dir.path())), None);
        std::fs::write(dir.path().join("a/cubecl.toml"), "[compilation]\ncache = \"global\"\n").unwrap();
        assert_eq!(config_file_above(&deep), Some(dir.path().join("a/cubecl.toml")));
        std::fs::write(deep.join("cuda/0.10.0/ptx.json.log"), "{}\n{}\n{}\n").unwrap();
        std::fs::write(deep.join("other.txt"), "x\ny\n").unwrap();
        assert_eq!(cache_entries(&deep), 3);
        assert_eq!(cache_entries(&deep.join("missing")), 0);
    }

    #[test]
    fn the_cuda_jit_cache_goes_beside_the_kernels_unless_the_user_or_a_config_file_says() {
        let cache = Path::new("/data/kernels");
        let jit = Some(PathBuf::from("/data/kernels/cuda-jit"));
        assert_eq!(cuda_jit_cache_dir(None, None, cache), jit);
        let own = std::ffi::OsStr::new("/scratch/nv");
        assert_eq!(cuda_jit_cache_dir(Some(own), None, cache), None, "the user's setting stays");
        assert_eq!(cuda_jit_cache_dir(None, Some(Path::new("/p/cubecl.toml")), cache), None);
    }
}
