//! What a command prints: small aligned tables for people, JSON for scripts.
//!
//! Every command returns a [`Report`]; `main` prints it in the chosen
//! [`OutputKind`]. Queries report the control-interface response objects
//! themselves as JSON; actions report `{"success": true, …}`. Errors are printed
//! by [`print_error`]: on stderr as text, or as `{"success": false, "error": …}`
//! on stdout with `--output json`. A report can also carry a failure (an
//! inspected artifact whose claims do not verify): it is printed like any
//! report, the failure goes to stderr as `error: …`, and wash exits non-zero.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// How results are printed (`-o/--output`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputKind {
    /// Sentences and aligned tables, for people.
    #[default]
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// The result of a successful command, printable both ways.
#[derive(Debug)]
pub struct Report {
    text: String,
    json: Value,
    warnings: Vec<String>,
    notes: Vec<String>,
    failure: Option<String>,
}

impl Report {
    /// A query result: `text` for people, `value` itself as the JSON document.
    pub fn data<T: Serialize>(text: String, value: &T) -> anyhow::Result<Self> {
        let json = serde_json::to_value(value)
            .map_err(|e| anyhow::anyhow!("cannot render the result as JSON: {e}"))?;
        Ok(Self {
            text,
            json,
            warnings: Vec::new(),
            notes: Vec::new(),
            failure: None,
        })
    }

    /// An action result: `text` for people, `{"success": true, …fields}` as JSON.
    pub fn action(text: String, fields: Value) -> Self {
        let mut object = Map::new();
        object.insert("success".into(), Value::Bool(true));
        if let Value::Object(fields) = fields {
            object.extend(fields);
        }
        Self {
            text,
            json: Value::Object(object),
            warnings: Vec::new(),
            notes: Vec::new(),
            failure: None,
        }
    }

    /// Attaches a warning from a host (e.g. "kept the old image"); ignored if empty.
    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        let warning = warning.into();
        if !warning.trim().is_empty() {
            self.warnings.push(warning);
        }
        self
    }

    /// Attaches several warnings.
    pub fn warn_all(self, warnings: impl IntoIterator<Item = String>) -> Self {
        warnings.into_iter().fold(self, Report::warn)
    }

    /// Attaches a note for people (e.g. "generated a key and stored it in …").
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Attaches several notes.
    pub fn note_all(self, notes: impl IntoIterator<Item = String>) -> Self {
        notes.into_iter().fold(self, Report::note)
    }

    /// Marks the report as a failure: it is still printed, but wash then
    /// prints `error: {message}` (text mode) and exits non-zero. The JSON
    /// document is expected to say what failed itself.
    pub fn fail(mut self, message: impl Into<String>) -> Self {
        self.failure = Some(message.into());
        self
    }

    /// Adds (or replaces) one field of the JSON document, when it is an object.
    pub fn with_field(mut self, key: &str, value: Value) -> Self {
        if let Value::Object(object) = &mut self.json {
            object.insert(key.to_string(), value);
        }
        self
    }

    /// The failure attached with [`Report::fail`], if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The JSON document this report prints with `--output json`.
    pub fn json(&self) -> Value {
        let mut json = self.json.clone();
        if let Value::Object(object) = &mut json {
            if !self.warnings.is_empty() {
                object.insert("warnings".into(), json!(self.warnings));
            }
            if !self.notes.is_empty() {
                object.insert("notes".into(), json!(self.notes));
            }
        }
        json
    }

    /// Prints the report on stdout (warnings on stderr in text mode).
    pub fn print(&self, kind: OutputKind) {
        match kind {
            OutputKind::Text => {
                for warning in &self.warnings {
                    eprintln!("warning: {warning}");
                }
                for note in &self.notes {
                    eprintln!("note: {note}");
                }
                let text = self.text.trim_end();
                if !text.is_empty() {
                    println!("{text}");
                }
                if let Some(failure) = &self.failure {
                    eprintln!("error: {failure}");
                }
            }
            OutputKind::Json => {
                let json = self.json();
                // Objects that hold only a result carry warnings inline; a bare
                // response array cannot, so its warnings go to stderr.
                if !matches!(json, Value::Object(_)) {
                    for warning in &self.warnings {
                        eprintln!("warning: {warning}");
                    }
                }
                print_json(&json);
            }
        }
    }
}

fn print_json(value: &Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`wash … | head`) is not worth an error message.
    let _ = writeln!(stdout, "{text}");
}

/// Prints a failure: `error: …` on stderr, or a JSON error object on stdout.
pub fn print_error(kind: OutputKind, error: &anyhow::Error) {
    let message = format!("{error:#}");
    match kind {
        OutputKind::Text => eprintln!("error: {message}"),
        OutputKind::Json => print_json(&json!({"success": false, "error": message})),
    }
}

/// A plain text table: a header row and left-aligned columns two spaces apart.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, without trailing spaces.
    pub fn render(&self) -> String {
        let cell = |row: &[String], column: usize| -> String {
            row.get(column).cloned().unwrap_or_default()
        };
        let widths: Vec<usize> = self
            .headers
            .iter()
            .enumerate()
            .map(|(column, header)| {
                self.rows
                    .iter()
                    .map(|row| cell(row, column).chars().count())
                    .chain(std::iter::once(header.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_string()).collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (column, width) in widths.iter().enumerate() {
                let text = cell(row, column);
                let _ = write!(line, "{text:<width$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Sets `key` in a JSON object (a no-op on anything else, where `value[key] =`
/// would panic).
pub fn set(json: &mut Value, key: &str, value: Value) {
    if let Value::Object(object) = json {
        object.insert(key.to_string(), value);
    }
}

/// Labelled values, one per line, values aligned after the longest label:
/// the layout of a single object (claims, a key) for people.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0);
    rows.iter().fold(String::new(), |mut out, (label, value)| {
        let line = format!("{label:<width$}  {value}");
        out.push_str(line.trim_end());
        out.push('\n');
        out
    })
}

/// Labels as `k=v, k=v` in key order.
pub fn labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims() {
        let mut table = Table::new(&["ID", "NAME", "IMAGE"]);
        table.row(vec!["hello".into(), String::new(), "file:///x".into()]);
        table.row(vec!["a-much-longer-id".into(), "n".into()]);
        assert_eq!(
            table.render(),
            "ID                NAME  IMAGE\n\
             hello                   file:///x\n\
             a-much-longer-id  n\n"
        );
    }

    #[test]
    fn action_json_has_success_and_warnings() {
        let report = Report::action("done".into(), json!({"component_id": "hello"}))
            .warn("kept the old image")
            .warn("  ");
        assert_eq!(
            report.json(),
            json!({"success": true, "component_id": "hello", "warnings": ["kept the old image"]})
        );
    }

    #[test]
    fn data_json_is_the_object_itself() {
        let report = Report::data("x".into(), &vec![1, 2]).unwrap();
        assert_eq!(report.json(), json!([1, 2]));
    }

    #[test]
    fn fields_align_values() {
        let text = fields(&[
            ("Name", "hello".into()),
            ("Account", "A1".into()),
            ("Tags", String::new()),
        ]);
        assert_eq!(text, "Name     hello\nAccount  A1\nTags\n");
    }

    #[test]
    fn notes_go_into_json_and_failures_are_kept() {
        let report = Report::data("x".into(), &json!({"valid": false}))
            .unwrap()
            .note("generated a key")
            .fail("hash mismatch");
        assert_eq!(
            report.json(),
            json!({"valid": false, "notes": ["generated a key"]})
        );
        assert_eq!(report.failure(), Some("hash mismatch"));
    }

    #[test]
    fn labels_are_joined_in_order() {
        let map = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".into(), "1".into())]);
        assert_eq!(labels(&map), "a=1, b=2");
    }
}
