//! Crash-safe writes: the one helper every writer of the toolkit goes through.
//!
//! - [`write_file`]: a temporary file beside the target, fsync, rename over the target, fsync of
//!   the folder. Readers see the old file or the new one, never a part; after a crash the target
//!   is one of the two and at most a hidden `.NAME.tmp-…` file is left over.
//! - [`replace_dir`]: puts a finished folder in place of another. On Linux the two are swapped
//!   by one `renameat2(RENAME_EXCHANGE)`, so the target path never stops naming a complete folder;
//!   where the kernel or file system cannot swap, the old folder is renamed aside first (a short
//!   window without the target) and put back if the second rename fails.
//! - [`sync_tree`], [`sync_dir`]: fsync what a folder holds, and a folder's own entries.
//!
//! Hand-written: the crates of the field (`tempfile`'s `persist`, `atomicwrites`) rename files
//! but neither fsyncs the parent folder in every path nor swaps folders.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The folder a path lies in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A hidden name beside `path` that no other writer (thread or process) picks:
/// `.NAME.KIND-PID-N`.
pub fn sibling_name(path: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_of(path).join(format!(".{name}.{kind}-{}-{n}", std::process::id()))
}

/// Makes the entries of `dir` (creations, renames) durable. Folders that cannot be opened for
/// reading (some platforms) are skipped.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match fs::File::open(dir) {
        Ok(f) => f.sync_all(),
        Err(_) => Ok(()),
    }
}

/// Fsyncs every regular file under `dir`, every folder under it, and `dir` itself.
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            fs::File::open(entry.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

/// Writes `bytes` to `path` crash-safely (see the module docs). Creates the parent folder. On
/// an error the temporary file is removed and `path` is as it was.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file_then(path, bytes, || {})
}

/// [`write_file`], calling `before_rename` once the temporary file is complete and synced (the
/// registry's crash tests stop the process there).
pub fn write_file_then(path: &Path, bytes: &[u8], before_rename: impl FnOnce()) -> io::Result<()> {
    let dir = parent_of(path);
    fs::create_dir_all(dir)?;
    let tmp = sibling_name(path, "tmp");
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        before_rename();
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Puts the complete folder `fresh` at `target` (see the module docs) and removes what was
/// there. `fresh` must be on the same file system as `target` (a sibling). Its files are synced
/// first, then the parent folder after the swap.
pub fn replace_dir(fresh: &Path, target: &Path) -> io::Result<()> {
    sync_tree(fresh)?;
    let parent = parent_of(target);
    if !target.exists() {
        fs::rename(fresh, target)?;
        return sync_dir(parent);
    }
    let old = if exchange(fresh, target)? {
        fresh.to_path_buf() // now the old folder
    } else {
        let old = sibling_name(target, "old");
        fs::rename(target, &old)?;
        if let Err(e) = fs::rename(fresh, target) {
            let _ = fs::rename(&old, target); // put the old folder back
            return Err(e);
        }
        old
    };
    sync_dir(parent)?;
    // The new folder is in place: a failure to remove the old one (a hidden sibling) only
    // leaves it behind.
    if let Err(e) = fs::remove_dir_all(&old) {
        tracing::warn!("{}: could not remove the replaced folder: {e}", old.display());
    }
    Ok(())
}

/// Swaps two paths atomically. `Ok(false)`: this kernel or file system cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: both pointers are NUL-terminated strings that live across the call; AT_FDCWD makes
    // relative paths relative to the working folder, as `fs::rename` does.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE)
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTSUP) => Ok(false),
        _ => Err(e),
    }
}

/// Swaps two paths atomically. `Ok(false)`: this platform cannot.
#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_file_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/a.txt");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> =
            fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.txt");
        write_file(&p, b"old").unwrap();
        // A folder in the way of the rename target's temporary: make the target a folder.
        let blocked = d.path().join("dir");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write_file(&blocked, b"new").is_err());
        assert_eq!(fs::read(blocked.join("x")).unwrap(), b"x");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2, "no temporary file left");
    }

    #[test]
    fn replace_dir_swaps_contents_and_removes_the_old_folder() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("model");
        let first = d.path().join(".fresh1");
        fs::create_dir(&first).unwrap();
        fs::write(first.join("f"), b"1").unwrap();
        replace_dir(&first, &target).unwrap();
        assert_eq!(fs::read(target.join("f")).unwrap(), b"1");
        let second = d.path().join(".fresh2");
        fs::create_dir(&second).unwrap();
        fs::write(second.join("f"), b"2").unwrap();
        replace_dir(&second, &target).unwrap();
        assert_eq!(fs::read(target.join("f")).unwrap(), b"2");
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("model")], "old folder removed");
    }
}
