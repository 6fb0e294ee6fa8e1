//! nsbeacon: announce a node's anycast DNS route only while the local DNS service answers correctly.
//!
//! Modules: [`config`] (TOML to typed config), [`health`] (the pure state machine), [`drain`] (persistent
//! drains) are the policy; [`service`] (probe and service tasks), [`reconcile`] (the only code calling the
//! BGP daemon), [`backend`], [`http`], [`metrics`], [`drainwatch`], [`daemon`] and [`cli`] are the runtime.

pub mod backend;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod drain;
pub mod drainwatch;
pub mod health;
pub mod http;
pub mod metrics;
pub mod reconcile;
pub mod service;
