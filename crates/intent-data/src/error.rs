//! Error type of the data layer. Every variant names the file and, where it applies, the line
//! (or JSON path) and what was expected, so a user can fix the input without reading code.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where in an input a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or folder) read.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// JSON path such as `$.samples[3].text`, when known.
    pub path: Option<String>,
}

impl Location {
    /// A location naming only a file.
    pub fn file(file: impl AsRef<Path>) -> Self {
        Location { file: file.as_ref().to_path_buf(), line: None, path: None }
    }
    /// A location naming a file and a 1-based line.
    pub fn line(file: impl AsRef<Path>, line: usize) -> Self {
        Location { file: file.as_ref().to_path_buf(), line: Some(line), path: None }
    }
    /// A location naming a file and a JSON path.
    pub fn json(file: impl AsRef<Path>, path: impl Into<String>) -> Self {
        Location { file: file.as_ref().to_path_buf(), line: None, path: Some(path.into()) }
    }
    /// The same location with a line added.
    pub fn with_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(path) = &self.path {
            write!(f, " ({path})")?;
        }
        Ok(())
    }
}

/// Errors of the data layer.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The input is not well formed (syntax), or a record does not have the expected shape.
    #[error("{location}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// What was wrong and what was expected.
        message: String,
    },
    /// The data set as a whole cannot be used for the requested operation.
    #[error("{0}")]
    Dataset(String),
    /// A bad option value (fraction out of range, …).
    #[error("invalid option {name}: {message}")]
    Option {
        /// Flag or field name.
        name: &'static str,
        /// What was expected.
        message: String,
    },
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        DataError::Io { path: path.as_ref().to_path_buf(), source }
    }
    /// An invalid-input error at `location`.
    pub fn invalid(location: Location, message: impl Into<String>) -> Self {
        DataError::Invalid { location, message: message.into() }
    }
    /// A JSON syntax or shape error from serde_json, located by its line.
    pub fn json(file: impl AsRef<Path>, err: &serde_json::Error) -> Self {
        let loc = if err.line() > 0 { Location::line(&file, err.line()) } else { Location::file(&file) };
        // serde_json appends " at line L column C"; the location already says where.
        let text = err.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) => format!("{} (column {})", &text[..i], err.column()),
            None => text,
        };
        let message = if err.is_eof() { format!("truncated JSON: {message}") } else { message };
        DataError::Invalid { location: loc, message }
    }
}

/// Result alias of the data layer.
pub type Result<T> = std::result::Result<T, DataError>;

/// A record that was left out under `--skip-invalid`, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where the record was.
    pub location: Location,
    /// Why it was left out.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}
