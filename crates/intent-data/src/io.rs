//! File reading and atomic writing shared by the loaders and writers.

use std::fs;
use std::path::Path;

use crate::error::{DataError, Location, Result};

/// The UTF-8 byte-order mark.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads a whole file as UTF-8, without a leading byte-order mark. Invalid bytes give an error
/// naming the line they are on.
pub fn read_text(path: &Path) -> Result<String> {
    let mut bytes = fs::read(path).map_err(|e| DataError::io(path, e))?;
    // A UTF-8 byte-order mark (as some Windows editors write) is not text.
    if bytes.starts_with(UTF8_BOM) {
        bytes.drain(..UTF8_BOM.len());
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..valid].iter().filter(|&&b| b == b'\n').count();
        DataError::invalid(
            Location::line(path, line),
            format!("not valid UTF-8 (byte offset {valid}); input files must be UTF-8 encoded"),
        )
    })
}

/// Writes `bytes` to `path` crash-safely through [`crate::durable::write_file`] (temporary file,
/// fsync, rename, fsync of the folder): readers never see a half-written file and a failed
/// write leaves the old file as it was.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::durable::write_file(path, bytes).map_err(|e| DataError::io(path, e))
}

/// Lists the `*.json` files of a folder, sorted by name.
pub fn json_files_in(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::invalid(Location::file(dir), "folder has no *.json file"));
    }
    Ok(files)
}
