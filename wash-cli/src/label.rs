//! `wash label`: set or remove labels on a host.

use std::collections::BTreeMap;

use clap::Args;
use serde_json::json;

use crate::ctl::Lattice;
use crate::output::{Report, labels};

/// `wash label`.
#[derive(Args, Debug, Clone)]
pub struct LabelArgs {
    /// Host id
    pub host_id: String,
    /// Label `key=value` (repeatable); with --delete, `key` alone is enough
    #[arg(required = true)]
    pub labels: Vec<String>,
    /// Remove the labels instead of setting them
    #[arg(long = "delete")]
    pub delete: bool,
}

/// What one `label` argument asks for.
#[derive(Debug, PartialEq, Eq)]
enum LabelChange {
    Set(String, String),
    Remove(String),
}

fn parse_change(input: &str, delete: bool) -> anyhow::Result<LabelChange> {
    if delete {
        let key = input.split_once('=').map_or(input, |(key, _)| key).trim();
        anyhow::ensure!(!key.is_empty(), "`{input}` has an empty label key");
        return Ok(LabelChange::Remove(key.to_string()));
    }
    let (key, value) = crate::parse::key_value(input).map_err(|e| {
        anyhow::anyhow!("{e}; to remove a label write `wash label HOST_ID {input} --delete`")
    })?;
    Ok(LabelChange::Set(key, value))
}

/// Runs `wash label`.
pub async fn run(lattice: &Lattice, args: LabelArgs) -> anyhow::Result<Report> {
    let changes = args
        .labels
        .iter()
        .map(|l| parse_change(l, args.delete))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let host = args.host_id.as_str();
    let mut set = BTreeMap::new();
    let mut removed = Vec::new();
    let mut warnings = Vec::new();
    for change in changes {
        let reply = match &change {
            LabelChange::Set(key, value) => lattice.ctl.put_label(host, key, value).await,
            LabelChange::Remove(key) => lattice.ctl.delete_label(host, key).await,
        };
        let reply = lattice.on_host(host, reply).await?;
        warnings.push(reply.message);
        match change {
            LabelChange::Set(key, value) => {
                set.insert(key, value);
            }
            LabelChange::Remove(key) => removed.push(key),
        }
    }
    let text = if args.delete {
        format!("Removed label(s) {} from host {host}", removed.join(", "))
    } else {
        format!("Set label(s) {} on host {host}", labels(&set))
    };
    let json = if args.delete {
        json!({"host_id": host, "removed": removed})
    } else {
        json!({"host_id": host, "labels": set})
    };
    Ok(Report::action(text, json).warn_all(warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_accepts_a_bare_key() {
        assert_eq!(
            parse_change("zone", true).unwrap(),
            LabelChange::Remove("zone".into())
        );
        assert_eq!(
            parse_change("zone=eu", true).unwrap(),
            LabelChange::Remove("zone".into())
        );
        assert_eq!(
            parse_change("zone=eu", false).unwrap(),
            LabelChange::Set("zone".into(), "eu".into())
        );
        let err = parse_change("zone", false).unwrap_err().to_string();
        assert!(err.contains("--delete"), "{err}");
        assert!(parse_change("", true).is_err());
    }
}
