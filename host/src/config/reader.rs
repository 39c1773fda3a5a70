//! A small reader over toml's spanned document tree.
//!
//! serde stops at the first error and loses positions; walking the spanned
//! tree ourselves lets every field be checked, every problem be reported with
//! its line and column, and each field's validation stay a one-liner.

use std::cell::RefCell;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{ConfigError, line_col};

/// One file under check: its name, its text and the problems found so far.
pub(crate) struct Doc<'a> {
    file: &'a Path,
    text: &'a str,
    errors: RefCell<Vec<ConfigError>>,
}

impl<'a> Doc<'a> {
    /// Starts checking `text`, which came from `file`.
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Self {
            file,
            text,
            errors: RefCell::new(Vec::new()),
        }
    }

    /// 1-based (line, column) of a byte offset in this file.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        line_col(self.text, offset)
    }

    /// Records a problem with `field` at byte offset `at`.
    pub(crate) fn error(&self, at: usize, field: &str, message: impl Into<String>) {
        let (line, col) = self.position(at);
        self.error_at((line, col), field, message);
    }

    /// Records a problem with `field` at an already computed position.
    pub(crate) fn error_at(
        &self,
        (line, col): (usize, usize),
        field: &str,
        message: impl Into<String>,
    ) {
        self.errors.borrow_mut().push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Parses the text as a TOML document; a syntax error is recorded and
    /// gives `None`, since nothing else in the file can then be trusted.
    pub(crate) fn parse(&self) -> Option<Spanned<DeTable<'a>>> {
        match DeTable::parse(self.text) {
            Ok(table) => Some(table),
            Err(e) => {
                let at = e.span().map_or(0, |span| span.start);
                let message = e.message().lines().next().unwrap_or("invalid TOML");
                self.error(at, "(syntax)", message);
                None
            }
        }
    }

    /// The problems found, in the order they appear in the file.
    pub(crate) fn into_errors(self) -> Vec<ConfigError> {
        let mut errors = self.errors.into_inner();
        errors.sort_by_key(|e| (e.line, e.col));
        errors
    }
}

/// The outcome of reading one optional field.
#[derive(Debug)]
pub(crate) enum Read<T> {
    /// The key is not in the file.
    Absent,
    /// The key is there but its value was rejected (already reported).
    Invalid,
    /// The value, and the byte offset where it starts.
    Valid(T, usize),
}

impl<T> Read<T> {
    /// The value, or `default` when absent or invalid (an invalid value has
    /// been reported, so the default only keeps checking going).
    pub(crate) fn or(self, default: T) -> T {
        self.ok().unwrap_or(default)
    }

    /// The value, if there is a valid one.
    pub(crate) fn ok(self) -> Option<T> {
        match self {
            Read::Valid(value, _) => Some(value),
            Read::Absent | Read::Invalid => None,
        }
    }
}

/// Reads the fields of one TOML table, remembering which keys were asked for
/// so that [`Table::finish`] can report every other key as unknown.
pub(crate) struct Table<'r, 'i> {
    doc: &'r Doc<'r>,
    entries: Option<&'r DeTable<'i>>,
    path: String,
    known: Vec<&'static str>,
}

impl<'r, 'i> Table<'r, 'i> {
    /// A reader for a document's top-level table.
    pub(crate) fn root(doc: &'r Doc<'r>, entries: &'r DeTable<'i>) -> Self {
        Self {
            doc,
            entries: Some(entries),
            path: String::new(),
            known: Vec::new(),
        }
    }

    /// Whether the table is in the file at all (an optional section).
    pub(crate) fn is_present(&self) -> bool {
        self.entries.is_some()
    }

    /// Dotted path of `key` in this table, as shown in errors.
    pub(crate) fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn lookup(&mut self, key: &'static str) -> Option<&'r Spanned<DeValue<'i>>> {
        self.known.push(key);
        self.entries?.get(key)
    }

    /// Reads `key` through `convert`; a rejection is reported at the value.
    pub(crate) fn read<T>(
        &mut self,
        key: &'static str,
        convert: impl FnOnce(&DeValue<'i>) -> Result<T, String>,
    ) -> Read<T> {
        let Some(value) = self.lookup(key) else {
            return Read::Absent;
        };
        let at = value.span().start;
        match convert(value.get_ref()) {
            Ok(v) => Read::Valid(v, at),
            Err(message) => {
                self.doc.error(at, &self.field(key), message);
                Read::Invalid
            }
        }
    }

    /// Reads a string field and hands it to `parse`.
    pub(crate) fn parsed<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Read<T> {
        self.read(key, |v| parse(expect_str(v)?))
    }

    /// Like [`Table::parsed`], but a missing key is reported (at 1:1, since
    /// there is nothing to point at).
    pub(crate) fn required<T>(
        &mut self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let read = self.parsed(key, parse);
        if matches!(read, Read::Absent) {
            self.missing(key, "required key is missing");
        }
        read.ok()
    }

    /// A duration such as `"250ms"` or `"1h 30m"`, at least `min`.
    pub(crate) fn duration(&mut self, key: &'static str, min: Duration) -> Read<Duration> {
        self.parsed(key, |s| parse_duration(s, min))
    }

    /// Reports a problem with this table as a whole, at `key` in its path
    /// (there is no value to point at: 1:1).
    pub(crate) fn missing(&self, key: &str, message: &str) {
        self.doc.error(0, &self.field(key), message);
    }

    /// A whole number within `range`.
    pub(crate) fn u32_in(&mut self, key: &'static str, range: RangeInclusive<u32>) -> Read<u32> {
        self.read(key, |v| {
            let DeValue::Integer(i) = v else {
                return Err(expected("an integer", v));
            };
            i128::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| range.contains(n))
                .ok_or_else(|| describe_range(&range))
        })
    }

    /// A boolean.
    pub(crate) fn bool(&mut self, key: &'static str) -> Read<bool> {
        self.read(key, |v| match v {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(expected("a boolean", other)),
        })
    }

    /// A path; a relative one is taken relative to `base`.
    pub(crate) fn path(&mut self, key: &'static str, base: &Path) -> Read<PathBuf> {
        self.parsed(key, |s| match s {
            "" => Err("path must not be empty".to_owned()),
            _ => Ok(base.join(s)),
        })
    }

    /// An array of strings, each checked by `item`; a rejected item is
    /// reported at that item as `key[index]`, and all items are checked.
    pub(crate) fn list<T>(
        &mut self,
        key: &'static str,
        item: impl Fn(&str) -> Result<T, String>,
    ) -> Read<Vec<T>> {
        let Some(value) = self.lookup(key) else {
            return Read::Absent;
        };
        let field = self.field(key);
        let DeValue::Array(items) = value.get_ref() else {
            self.doc.error(
                value.span().start,
                &field,
                expected("an array", value.get_ref()),
            );
            return Read::Invalid;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut valid = true;
        for (index, element) in items.iter().enumerate() {
            match expect_str(element.get_ref()).and_then(&item) {
                Ok(v) => out.push(v),
                Err(message) => {
                    self.doc
                        .error(element.span().start, &format!("{field}[{index}]"), message);
                    valid = false;
                }
            }
        }
        if valid {
            Read::Valid(out, value.span().start)
        } else {
            Read::Invalid
        }
    }

    /// A command line: a non-empty array of non-empty strings.
    pub(crate) fn argv(&mut self, key: &'static str) -> Read<Vec<String>> {
        match self.list(key, |s| non_empty(s).map(str::to_owned)) {
            Read::Valid(argv, at) if argv.is_empty() => {
                self.doc
                    .error(at, &self.field(key), "command must not be empty");
                Read::Invalid
            }
            read => read,
        }
    }

    /// The sub-table at `key`, to read with the same rules. An absent (or
    /// mistyped, which is reported) sub-table reads as empty, so its fields
    /// take their defaults.
    pub(crate) fn table(&mut self, key: &'static str) -> Table<'r, 'i> {
        let entries = self.lookup(key).and_then(|value| match value.get_ref() {
            DeValue::Table(entries) => Some(entries),
            other => {
                self.doc.error(
                    value.span().start,
                    &self.field(key),
                    expected("a table", other),
                );
                None
            }
        });
        Table {
            doc: self.doc,
            entries,
            path: self.field(key),
            known: Vec::new(),
        }
    }

    /// An array of tables (`[[key]]`), each to read with the same rules as
    /// `key[index]`; anything else at `key` is reported.
    pub(crate) fn tables(&mut self, key: &'static str) -> Vec<Table<'r, 'i>> {
        let Some(value) = self.lookup(key) else {
            return Vec::new();
        };
        let field = self.field(key);
        let DeValue::Array(items) = value.get_ref() else {
            self.doc.error(
                value.span().start,
                &field,
                expected("an array of tables ([[...]])", value.get_ref()),
            );
            return Vec::new();
        };
        let mut tables = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(entries) => tables.push(Table {
                    doc: self.doc,
                    entries: Some(entries),
                    path: format!("{field}[{index}]"),
                    known: Vec::new(),
                }),
                other => self.doc.error(
                    item.span().start,
                    &format!("{field}[{index}]"),
                    expected("a table", other),
                ),
            }
        }
        tables
    }

    /// A free-form table of scalars (strings, numbers, booleans), as
    /// `(key, text)` pairs in the order written; a pair that `allowed`
    /// rejects is reported at its key and left out.
    pub(crate) fn scalars(
        &mut self,
        key: &'static str,
        mut allowed: impl FnMut(&str, &str) -> Result<(), String>,
    ) -> Vec<(String, String)> {
        let table = self.table(key);
        let Some(entries) = table.entries else {
            return Vec::new();
        };
        let mut pairs: Vec<_> = entries.iter().collect();
        pairs.sort_by_key(|(k, _)| k.span().start);
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let text = match scalar_text(v.get_ref()) {
                Ok(text) => text,
                Err(message) => {
                    self.doc
                        .error(v.span().start, &table.field(k.get_ref()), message);
                    continue;
                }
            };
            match allowed(k.get_ref(), &text) {
                Ok(()) => out.push((k.get_ref().to_string(), text)),
                Err(message) => self
                    .doc
                    .error(k.span().start, &table.field(k.get_ref()), message),
            }
        }
        out
    }

    /// Reports every key of this table that no read asked for.
    pub(crate) fn finish(self) {
        let Some(entries) = self.entries else { return };
        for (key, _) in entries.iter() {
            if !self
                .known
                .iter()
                .any(|known| *known == key.get_ref().as_ref())
            {
                let message = format!(
                    "unknown key `{}`; expected one of: {}",
                    key.get_ref(),
                    self.known.join(", ")
                );
                self.doc
                    .error(key.span().start, &self.field(key.get_ref()), message);
            }
        }
    }
}

/// "expected a string, found an integer".
fn expected(what: &str, found: &DeValue<'_>) -> String {
    let found = match found {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    };
    format!("expected {what}, found {found}")
}

fn expect_str<'v>(value: &'v DeValue<'_>) -> Result<&'v str, String> {
    value.as_str().ok_or_else(|| expected("a string", value))
}

/// Rejects the empty string.
pub(crate) fn non_empty(s: &str) -> Result<&str, String> {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(s)
    }
}

/// The longest duration medic takes anywhere (config keys, `maintenance
/// --for`): ten years. Longer ones are typos, and times that far out cannot
/// be added to the clock or written as RFC 3339.
pub const DURATION_MAX: Duration = Duration::from_secs(315_576_000); // 10 × 365.25 days

/// Parses a duration such as `30s` or `10m`, at least `min` and at most
/// [`DURATION_MAX`]; the error is worded for the admin.
pub fn parse_duration(s: &str, min: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    if d < min {
        return Err(format!(
            "duration {s:?} is too short; the minimum is {}",
            humantime::format_duration(min)
        ));
    }
    if d > DURATION_MAX {
        return Err(format!(
            "duration {s:?} is too long; the maximum is {}",
            humantime::format_duration(DURATION_MAX)
        ));
    }
    Ok(d)
}

fn describe_range(range: &RangeInclusive<u32>) -> String {
    if *range.end() == u32::MAX {
        format!("must be a whole number of at least {}", range.start())
    } else {
        format!(
            "must be a whole number between {} and {}",
            range.start(),
            range.end()
        )
    }
}

/// The text a kit sees for a scalar setting: strings as is, integers in
/// decimal, floats as written, booleans as `true`/`false`.
fn scalar_text(value: &DeValue<'_>) -> Result<String, String> {
    match value {
        DeValue::String(s) => Ok(s.to_string()),
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix())
            .map(|n| n.to_string())
            .map_err(|e| format!("invalid integer: {e}")),
        DeValue::Float(f) => Ok(f.as_str().to_owned()),
        DeValue::Boolean(b) => Ok(b.to_string()),
        DeValue::Datetime(d) => Ok(d.to_string()),
        DeValue::Array(_) | DeValue::Table(_) => {
            Err(expected("a string, number or boolean", value))
        }
    }
}
