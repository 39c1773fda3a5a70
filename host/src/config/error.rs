//! Configuration errors: one precise, located message per problem.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a configuration file.
///
/// Every error is located (file, 1-based line and column, dotted field path)
/// so an operator can go straight to the offending spot; `Display` renders it
/// as `FILE:LINE:COL: FIELD: MESSAGE`, the format editors and CI logs
/// understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {field}: {message}", file.display())]
pub struct ConfigError {
    /// The file the problem is in, as it was named to the loader.
    pub file: PathBuf,
    /// 1-based line of the offending value (or key, for unknown keys).
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// Dotted path of the field, e.g. `recovery.window` or `grants.connect[1]`;
    /// `(syntax)` for TOML syntax errors and `(file)` for unreadable files.
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

/// Every problem found while loading a configuration, reported together.
///
/// Fixing a config one error per daemon restart is tedious, so loading keeps
/// going after a problem and collects them all. Never empty. `Display` puts
/// one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based (line, column) of byte `offset` in `text`; the column counts
/// characters, not bytes. Offsets past the end point just after the text.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
    let line = before.matches('\n').count() + 1;
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}
