//! What the store holds, turned into what the reconciler takes: one [`DeployedApp`] per
//! stored application, plus "tombstones" for applications deleted from the store while
//! things they started may still run (a `model.del` removes the stored versions at
//! once; the reconciler still needs the last manifest to remove its links and configs).
//! Pure: no I/O.

use std::collections::BTreeMap;

use trellis_interfaces::manifest::Manifest;

use crate::reconcile::DeployedApp;
use crate::status::{AppStatus, StatusType};
use crate::stored::StoredManifest;

/// The reconciler's view of one stored application: the deployed version (or, when
/// undeployed, the newest) with every other stored version as history.
#[must_use]
pub fn deployed_app(stored: &StoredManifest) -> Option<DeployedApp> {
    let (manifest, deployed) = match stored.deployed() {
        Some(m) => (m, true),
        None => (stored.current()?, false),
    };
    let previous: Vec<Manifest> = stored
        .versions()
        .filter_map(|v| stored.get_version(v))
        .filter(|m| m.version() != manifest.version())
        .cloned()
        .collect();
    let app = if deployed {
        DeployedApp::deployed(manifest.clone())
    } else {
        DeployedApp::undeployed(manifest.clone())
    };
    Some(app.with_previous(previous))
}

/// The applications of one lattice as the reconciler sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppSet {
    /// Stored applications by name.
    stored: BTreeMap<String, DeployedApp>,
    /// Deleted applications still being cleaned up after, by name.
    tombstones: BTreeMap<String, DeployedApp>,
}

impl AppSet {
    /// Replaces the stored applications with what the store holds now. An application
    /// that disappeared becomes a tombstone (undeployed, with its last manifest and
    /// history) until [`Self::settle`] sees nothing of it left.
    pub fn replace(&mut self, stored: &[StoredManifest]) {
        let mut next = BTreeMap::new();
        for s in stored {
            if let Some(app) = deployed_app(s) {
                self.tombstones.remove(app.name());
                next.insert(app.name().to_string(), app);
            }
        }
        for (name, gone) in std::mem::take(&mut self.stored) {
            if !next.contains_key(&name) {
                let DeployedApp {
                    manifest, previous, ..
                } = gone;
                self.tombstones.insert(
                    name,
                    DeployedApp::undeployed(manifest).with_previous(previous),
                );
            }
        }
        self.stored = next;
    }

    /// Every application to reconcile: stored ones and tombstones.
    #[must_use]
    pub fn all(&self) -> Vec<DeployedApp> {
        self.stored
            .values()
            .chain(self.tombstones.values())
            .cloned()
            .collect()
    }

    /// Whether `name` is a deleted application being cleaned up after (its status is
    /// not published: the delete already published `undeployed`).
    #[must_use]
    pub fn is_tombstone(&self, name: &str) -> bool {
        self.tombstones.contains_key(name)
    }

    /// Drops tombstones whose cleanup is complete according to this pass's statuses.
    pub fn settle(&mut self, statuses: &BTreeMap<String, AppStatus>) {
        self.tombstones
            .retain(|name, _| !statuses.get(name).is_some_and(cleanup_done));
    }

    /// Names of every stored application.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.stored.keys().map(String::as_str)
    }
}

/// An undeployed application's status message is empty exactly when the reconciler
/// found nothing left to remove (see `reconcile::app::reconcile_app`).
fn cleanup_done(status: &AppStatus) -> bool {
    status.info.status_type == StatusType::Undeployed && status.info.message.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StatusInfo;

    fn manifest(name: &str, version: &str) -> Manifest {
        let yaml = format!(
            r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: {version}
spec:
  components:
    - name: hello
      type: component
      properties:
        image: file:///hello.wasm
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#
        );
        Manifest::from_yaml(&yaml).unwrap()
    }

    fn stored(name: &str, versions: &[&str], deployed: Option<&str>) -> StoredManifest {
        let mut s = StoredManifest::default();
        for v in versions {
            s.add_version(manifest(name, v)).unwrap();
        }
        if let Some(v) = deployed {
            s.deploy(Some(v)).unwrap();
        }
        s
    }

    #[test]
    fn deployed_version_runs_with_the_others_as_history() {
        let app = deployed_app(&stored("a", &["v1", "v2", "v3"], Some("v2"))).unwrap();
        assert!(app.deployed);
        assert_eq!(app.manifest.version(), Some("v2"));
        let history: Vec<_> = app.previous.iter().filter_map(Manifest::version).collect();
        assert_eq!(history, ["v1", "v3"]);
    }

    #[test]
    fn undeployed_app_is_reconciled_as_undeployed_newest() {
        let app = deployed_app(&stored("a", &["v1", "v2"], None)).unwrap();
        assert!(!app.deployed);
        assert_eq!(app.manifest.version(), Some("v2"));
        assert!(deployed_app(&StoredManifest::default()).is_none());
    }

    #[test]
    fn deleted_app_becomes_a_tombstone_until_nothing_is_left() {
        let mut set = AppSet::default();
        set.replace(&[stored("a", &["v1"], Some("v1")), stored("b", &["v1"], None)]);
        assert_eq!(set.all().len(), 2);
        set.replace(&[stored("b", &["v1"], None)]);
        assert!(set.is_tombstone("a"));
        let all = set.all();
        let a = all.iter().find(|d| d.name() == "a").unwrap();
        assert!(!a.deployed, "a deleted app is reconciled as undeployed");

        let mut statuses = BTreeMap::new();
        statuses.insert(
            "a".to_string(),
            AppStatus::bare(StatusInfo::undeployed("Removing 1 thing(s)")),
        );
        set.settle(&statuses);
        assert!(set.is_tombstone("a"), "kept while something is left");
        statuses.insert("a".to_string(), AppStatus::bare(StatusInfo::undeployed("")));
        set.settle(&statuses);
        assert!(!set.is_tombstone("a"));
        assert_eq!(set.all().len(), 1);
    }

    #[test]
    fn a_tombstone_put_again_is_a_stored_app_again() {
        let mut set = AppSet::default();
        set.replace(&[stored("a", &["v1"], Some("v1"))]);
        set.replace(&[]);
        assert!(set.is_tombstone("a"));
        set.replace(&[stored("a", &["v2"], Some("v2"))]);
        assert!(!set.is_tombstone("a"));
        assert_eq!(set.names().collect::<Vec<_>>(), ["a"]);
    }
}
