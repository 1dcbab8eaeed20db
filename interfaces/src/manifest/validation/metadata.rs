//! `apiVersion`, `kind` and `metadata`: the application name, OAM label and annotation
//! keys, and the reserved `latest` version.

use super::ValidationFailure;
use crate::manifest::{APPLICATION_KIND, LATEST_VERSION, Manifest, OAM_VERSION};

/// Longest OAM label name (the part after the optional `prefix/`).
const MAX_LABEL_NAME_LEN: usize = 63;
/// Longest DNS subdomain, used as a label prefix.
const MAX_DNS_SUBDOMAIN_LEN: usize = 253;

/// Whether `name` may name an application: wadm's `^[-\w]+$`, restricted to ASCII
/// because the name becomes part of NATS subjects and JetStream KV keys
/// (`wadm.status.{lattice}.{name}`, `{lattice}-{name}`), which admit nothing else.
pub fn is_valid_manifest_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `key` is a valid OAM label or annotation key: an optional DNS-subdomain
/// prefix and `/`, then a name of 1–63 characters of `[A-Za-z0-9._-]` that starts and
/// ends alphanumeric (wadm's rule, OAM spec "metadata").
pub fn is_valid_oam_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_valid_dns_subdomain(prefix) && is_valid_label_name(name),
        None => is_valid_label_name(key),
    }
}

fn is_valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DNS_SUBDOMAIN_LEN
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= MAX_LABEL_NAME_LEN
                && part.starts_with(|c: char| c.is_ascii_alphabetic())
                && part.ends_with(|c: char| c.is_ascii_alphanumeric())
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LABEL_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

const LABEL_RULE: &str = "expected an optional DNS-subdomain prefix and '/', then 1-63 \
     characters of letters, digits, '-', '_' or '.' starting and ending with a letter or digit";

pub(super) fn check(manifest: &Manifest, out: &mut Vec<ValidationFailure>) {
    if manifest.api_version != OAM_VERSION {
        out.push(ValidationFailure::warning(format!(
            "apiVersion '{}' is not '{OAM_VERSION}', the only version wadm 0.21 understands",
            manifest.api_version
        )));
    }
    if manifest.kind != APPLICATION_KIND {
        out.push(ValidationFailure::warning(format!(
            "kind '{}' is not '{APPLICATION_KIND}', the only kind wadm 0.21 understands",
            manifest.kind
        )));
    }
    let name = &manifest.metadata.name;
    if !is_valid_manifest_name(name) {
        out.push(ValidationFailure::error(format!(
            "metadata.name '{name}' is not allowed: use only ASCII letters, digits, '-' and '_' \
             (the name is part of NATS subjects and KV keys)"
        )));
    }
    for key in manifest.metadata.labels.keys() {
        if !is_valid_oam_label_key(key) {
            out.push(ValidationFailure::error(format!(
                "metadata.labels: '{key}' is not a valid OAM label key: {LABEL_RULE}"
            )));
        }
    }
    for key in manifest.metadata.annotations.keys() {
        if !is_valid_oam_label_key(key) {
            out.push(ValidationFailure::error(format!(
                "metadata.annotations: '{key}' is not a valid OAM annotation key: {LABEL_RULE}"
            )));
        }
    }
    if manifest.version() == Some(LATEST_VERSION) {
        out.push(ValidationFailure::error(format!(
            "metadata.annotations.version: '{LATEST_VERSION}' is reserved (it means \"newest\" \
             when deploying); give the application an explicit version such as 'v0.0.1'"
        )));
    }
}
