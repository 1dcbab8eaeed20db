//! Application status in wadm 0.21's shape (PROTOCOL.md §6.3): what `model.status`
//! returns and what is published on `wadm.status.{lattice}.{app}`.

use serde::{Deserialize, Serialize};

/// How an application or one of its scalers is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusType {
    /// Nothing can happen yet (no host to place on, a dependency missing).
    Waiting,
    /// Not deployed (also the status of nothing at all).
    #[default]
    Undeployed,
    /// Commands are out; the lattice is moving towards the manifest.
    #[serde(alias = "compensating")]
    Reconciling,
    /// The lattice matches the manifest.
    #[serde(alias = "ready")]
    Deployed,
    /// The manifest cannot be satisfied; the message says why.
    Failed,
    /// Deployed as far as wadm can tell, but wadm cannot currently act or see (partition,
    /// lost NATS connection).
    Unhealthy,
}

impl StatusType {
    /// Precedence in aggregation: wadm's `Failed > Undeployed > Waiting > Reconciling >
    /// Unhealthy > Deployed`.
    fn rank(self) -> u8 {
        match self {
            Self::Failed => 5,
            Self::Undeployed => 4,
            Self::Waiting => 3,
            Self::Reconciling => 2,
            Self::Unhealthy => 1,
            Self::Deployed => 0,
        }
    }

    /// The aggregate of two statuses: the one with the higher precedence.
    #[must_use]
    pub fn combine(self, other: Self) -> Self {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }

    /// The aggregate of many statuses; [`StatusType::Undeployed`] when there are none,
    /// as in wadm.
    pub fn aggregate(statuses: impl IntoIterator<Item = Self>) -> Self {
        let mut iter = statuses.into_iter();
        match iter.next() {
            None => Self::Undeployed,
            Some(first) => iter.fold(first, Self::combine),
        }
    }
}

/// A status with its reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// The status.
    #[serde(rename = "type")]
    pub status_type: StatusType,
    /// Why, for people; omitted when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl StatusInfo {
    /// A status with a message.
    #[must_use]
    pub fn new(status_type: StatusType, message: impl Into<String>) -> Self {
        Self {
            status_type,
            message: message.into(),
        }
    }

    /// [`StatusType::Deployed`] without message.
    #[must_use]
    pub fn deployed() -> Self {
        Self::new(StatusType::Deployed, "")
    }

    /// [`StatusType::Reconciling`].
    #[must_use]
    pub fn reconciling(message: impl Into<String>) -> Self {
        Self::new(StatusType::Reconciling, message)
    }

    /// [`StatusType::Failed`].
    #[must_use]
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(StatusType::Failed, message)
    }

    /// [`StatusType::Waiting`].
    #[must_use]
    pub fn waiting(message: impl Into<String>) -> Self {
        Self::new(StatusType::Waiting, message)
    }

    /// [`StatusType::Unhealthy`].
    #[must_use]
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self::new(StatusType::Unhealthy, message)
    }

    /// [`StatusType::Undeployed`].
    #[must_use]
    pub fn undeployed(message: impl Into<String>) -> Self {
        Self::new(StatusType::Undeployed, message)
    }
}

/// The status of one scaler of an application.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalerStatus {
    /// Scaler id (SHA-256 of its parameters).
    #[serde(default)]
    pub id: String,
    /// `SpreadScaler`, `DaemonScaler`, `LinkScaler`, … .
    #[serde(default)]
    pub kind: String,
    /// What it scales: a component or provider id, or `source -(ns:pkg)-> target`.
    #[serde(default)]
    pub name: String,
    /// Its status and reason.
    #[serde(rename = "status")]
    pub info: StatusInfo,
}

/// The status of one application: wadm's `Status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The aggregate status and its reason.
    #[serde(rename = "status")]
    pub info: StatusInfo,
    /// One entry per scaler; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scalers: Vec<ScalerStatus>,
    /// Deprecated in wadm 0.14, always written as `""` for old readers.
    #[serde(default)]
    pub version: String,
    /// Deprecated in wadm 0.14, always written as `[]` for old readers.
    #[serde(default)]
    pub components: Vec<serde_json::Value>,
}

impl AppStatus {
    /// The aggregate of `scalers`: the highest-precedence type, with the messages of
    /// the scalers in that state joined by `"; "`.
    #[must_use]
    pub fn from_scalers(scalers: Vec<ScalerStatus>) -> Self {
        let status_type = StatusType::aggregate(scalers.iter().map(|s| s.info.status_type));
        let message = if status_type == StatusType::Deployed {
            String::new()
        } else {
            scalers
                .iter()
                .filter(|s| s.info.status_type == status_type && !s.info.message.is_empty())
                .map(|s| s.info.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        Self {
            info: StatusInfo::new(status_type, message),
            scalers,
            version: String::new(),
            components: Vec::new(),
        }
    }

    /// A status with no scalers.
    #[must_use]
    pub fn bare(info: StatusInfo) -> Self {
        Self {
            info,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StatusType::*;
    use serde_json::json;

    #[test]
    fn aggregation_follows_wadm_precedence() {
        let order = [
            Failed,
            Undeployed,
            Waiting,
            Reconciling,
            Unhealthy,
            Deployed,
        ];
        for (i, higher) in order.iter().enumerate() {
            for lower in order.iter().skip(i) {
                assert_eq!(higher.combine(*lower), *higher, "{higher:?} vs {lower:?}");
                assert_eq!(lower.combine(*higher), *higher, "{lower:?} vs {higher:?}");
            }
        }
        assert_eq!(StatusType::aggregate([]), Undeployed);
        assert_eq!(StatusType::aggregate([Deployed, Deployed]), Deployed);
        assert_eq!(StatusType::aggregate([Deployed, Unhealthy]), Unhealthy);
        assert_eq!(
            StatusType::aggregate([Deployed, Reconciling, Undeployed, Failed]),
            Failed
        );
    }

    #[test]
    fn serde_shape_matches_wadm() {
        let status = AppStatus::from_scalers(vec![
            ScalerStatus {
                id: "abc".into(),
                kind: "SpreadScaler".into(),
                name: "app-http".into(),
                info: StatusInfo::deployed(),
            },
            ScalerStatus {
                id: "def".into(),
                kind: "LinkScaler".into(),
                name: "a -(wasi:http)-> b".into(),
                info: StatusInfo::reconciling("Putting link"),
            },
        ]);
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({
                "status": {"type": "reconciling", "message": "Putting link"},
                "scalers": [
                    {"id": "abc", "kind": "SpreadScaler", "name": "app-http",
                     "status": {"type": "deployed"}},
                    {"id": "def", "kind": "LinkScaler", "name": "a -(wasi:http)-> b",
                     "status": {"type": "reconciling", "message": "Putting link"}}
                ],
                "version": "",
                "components": []
            })
        );
        let empty = AppStatus::bare(StatusInfo::undeployed(""));
        assert_eq!(
            serde_json::to_value(&empty).unwrap(),
            json!({"status": {"type": "undeployed"}, "version": "", "components": []})
        );
    }

    #[test]
    fn aliases_and_unhealthy_parse() {
        let t: StatusType = serde_json::from_str("\"compensating\"").unwrap();
        assert_eq!(t, Reconciling);
        let t: StatusType = serde_json::from_str("\"ready\"").unwrap();
        assert_eq!(t, Deployed);
        let t: StatusType = serde_json::from_str("\"unhealthy\"").unwrap();
        assert_eq!(t, Unhealthy);
        let s: AppStatus = serde_json::from_value(json!({"status": {"type": "deployed"}})).unwrap();
        assert_eq!(s.info, StatusInfo::deployed());
    }

    #[test]
    fn message_joins_scalers_in_the_aggregate_state() {
        let s = AppStatus::from_scalers(vec![
            ScalerStatus {
                info: StatusInfo::failed("spread eu unsatisfiable"),
                ..ScalerStatus::default()
            },
            ScalerStatus {
                info: StatusInfo::reconciling("scaling"),
                ..ScalerStatus::default()
            },
            ScalerStatus {
                info: StatusInfo::failed("config x missing"),
                ..ScalerStatus::default()
            },
        ]);
        assert_eq!(s.info.status_type, Failed);
        assert_eq!(s.info.message, "spread eu unsatisfiable; config x missing");
    }
}
