//! What a command prints: small aligned tables for people, JSON for scripts.
//!
//! Every command returns a [`Report`]; `main` prints it in the chosen
//! [`OutputKind`]. Queries report the control-interface response objects
//! themselves as JSON; actions report `{"success": true, …}`. Errors are printed
//! by [`print_error`]: on stderr as text, or as `{"success": false, "error": …}`
//! on stdout with `--output json`.

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

    /// The JSON document this report prints with `--output json`.
    pub fn json(&self) -> Value {
        let mut json = self.json.clone();
        if !self.warnings.is_empty()
            && let Value::Object(object) = &mut json
        {
            object.insert("warnings".into(), json!(self.warnings));
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
                let text = self.text.trim_end();
                if !text.is_empty() {
                    println!("{text}");
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
    fn labels_are_joined_in_order() {
        let map = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".into(), "1".into())]);
        assert_eq!(labels(&map), "a=1, b=2");
    }
}
