//! nsbeacon: announce a node's anycast DNS route only while the local DNS service answers correctly.

pub mod cli;
pub mod config;
pub mod health;
pub mod metrics;
pub mod reconcile;
