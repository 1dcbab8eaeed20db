#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod annotations;
pub mod api;
pub mod command;
pub mod observed;
pub mod pending;
pub mod policy;
pub mod reconcile;
pub mod runner;
pub mod server;
pub mod sim;
pub mod status;
pub mod stored;

pub use command::Command;
pub use observed::{LatticeState, Observation};
pub use pending::PendingCommands;
pub use policy::FailurePolicy;
pub use reconcile::{DeployedApp, Reconciliation, reconcile};
pub use status::{AppStatus, ScalerStatus, StatusInfo, StatusType};
pub use stored::StoredManifest;
