//! Offline validation of a parsed [`Manifest`], with the verdicts of wadm 0.21.1's
//! validator (`wadm-types/src/validation.rs`): the same manifests are valid, invalid or
//! valid-with-warnings. Messages differ from wadm's on purpose: each one says where the
//! problem is (component, trait, field) and, where it can, what was probably meant.
//!
//! `metadata.rs` checks the name, labels, annotations and version; `components.rs`
//! component names, ids, properties, trait shapes and secrets; `links.rs` link targets,
//! interfaces, duplicates and link config; `known.rs` holds the table of interfaces the
//! wasmCloud host knows and the "did you mean" helper.

mod components;
mod known;
mod links;
mod metadata;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Component, Manifest, Trait};

pub use known::{KNOWN_INTERFACES, KnownNamespace, KnownPackage};
pub use metadata::{is_valid_manifest_name, is_valid_oam_label_key};

/// How bad a [`ValidationFailure`] is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ValidationFailureLevel {
    /// Probably a mistake, but wadm deploys the manifest anyway.
    #[default]
    Warning,
    /// wadm refuses the manifest.
    Error,
}

impl fmt::Display for ValidationFailureLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warning => "warning",
            Self::Error => "error",
        })
    }
}

/// One problem found in a manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValidationFailure {
    /// Error or warning.
    pub level: ValidationFailureLevel,
    /// What is wrong and where: component, trait and field.
    pub msg: String,
}

impl ValidationFailure {
    /// An error.
    pub fn error(msg: impl Into<String>) -> Self {
        Self {
            level: ValidationFailureLevel::Error,
            msg: msg.into(),
        }
    }

    /// A warning.
    pub fn warning(msg: impl Into<String>) -> Self {
        Self {
            level: ValidationFailureLevel::Warning,
            msg: msg.into(),
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.level == ValidationFailureLevel::Error
    }
}

impl fmt::Display for ValidationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.level, self.msg)
    }
}

/// Summaries of a list of [`ValidationFailure`]s.
pub trait ValidationOutput {
    /// No errors (warnings allowed): wadm would accept the manifest.
    fn valid(&self) -> bool;
    /// The errors.
    fn errors(&self) -> Vec<&ValidationFailure>;
    /// The warnings.
    fn warnings(&self) -> Vec<&ValidationFailure>;
}

impl ValidationOutput for [ValidationFailure] {
    fn valid(&self) -> bool {
        !self.iter().any(ValidationFailure::is_error)
    }

    fn errors(&self) -> Vec<&ValidationFailure> {
        self.iter().filter(|f| f.is_error()).collect()
    }

    fn warnings(&self) -> Vec<&ValidationFailure> {
        self.iter().filter(|f| !f.is_error()).collect()
    }
}

/// Every problem in `manifest`, errors and warnings, in the order the checks run:
/// metadata, components, traits, links, secrets. An empty list means a clean manifest.
pub fn validate(manifest: &Manifest) -> Vec<ValidationFailure> {
    let mut out = Vec::new();
    metadata::check(manifest, &mut out);
    components::check_names_and_ids(manifest, &mut out);
    components::check_properties(manifest, &mut out);
    components::check_traits(manifest, &mut out);
    links::check_targets(manifest, &mut out);
    links::check_interfaces(manifest, &mut out);
    links::check_duplicates(manifest, &mut out);
    links::check_config_names(manifest, &mut out);
    links::check_deprecated_and_ignored(manifest, &mut out);
    components::check_secrets(manifest, &mut out);
    out
}

/// `component 'NAME' (spec.components[I])`.
fn component_at(index: usize, component: &Component) -> String {
    format!("component '{}' (spec.components[{index}])", component.name)
}

/// `component 'NAME', trait 'TYPE' (spec.components[I].traits[J])`.
fn trait_at(index: usize, component: &Component, trait_index: usize, t: &Trait) -> String {
    format!(
        "component '{}', trait '{}' (spec.components[{index}].traits[{trait_index}])",
        component.name, t.trait_type
    )
}

/// Every trait of every component with its position.
fn traits_with_position(
    manifest: &Manifest,
) -> impl Iterator<Item = (usize, &Component, usize, &Trait)> {
    manifest.components().enumerate().flat_map(|(ci, c)| {
        c.traits()
            .iter()
            .enumerate()
            .map(move |(ti, t)| (ci, c, ti, t))
    })
}
