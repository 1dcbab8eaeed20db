#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod claims;
pub mod ctl;
pub mod event;
pub mod inventory;
pub mod link;
pub mod liveness;
pub mod manifest;
pub mod messaging;
pub mod policy;
pub mod provider;
pub mod reconnect;
pub mod subject;

#[cfg(feature = "client")]
pub mod client;
