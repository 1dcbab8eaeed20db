#![doc = include_str!("../README.md")]

pub mod admission;
pub mod artifact;
pub mod capability;
pub mod config;
mod ctl;
pub mod dataplane;
mod events;
mod heartbeat;
mod host;
pub mod lattice;
mod names;
pub mod observability;
pub mod policy;
pub mod provider;
pub mod runtime;

pub use config::HostConfig;
pub use ctl::CtlError;
pub use host::{HOST_VERSION, Host, HostError};
