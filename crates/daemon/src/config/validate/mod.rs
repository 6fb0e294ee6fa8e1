//! Stage 2: one pass over the raw file that builds the typed [`Config`] and collects every problem.
//!
//! Each helper pushes its own issues and returns `None` for a value it could not accept, so that checks
//! depending on that value are skipped instead of producing follow-on noise.
//!
//! By concept: [`backend`] (`[backend]`), [`service`] (`[[service]]` and its damping), [`targets`] (route
//! target syntax and ownership), [`check`] (what both check types share), [`query`], [`serial`] and [`dnssec`]
//! (each type's keys), [`fleet`] (`[fleet]` and `min_announcing`), [`settings`] (`[http]`, `[log]` and the top-level keys), [`values`] (durations, names,
//! addresses used everywhere).

mod backend;
mod check;
mod dnssec;
mod fleet;
mod load;
mod query;
mod serial;
mod service;
mod settings;
mod targets;
mod values;

use std::path::Path;
use std::time::Duration;

use super::raw;
use super::{BackendConfig, Config, ConfigError, ConfigIssue};

/// Which target syntax applies, known once `[backend] kind` is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendKind {
    Bird,
    Frr,
}

/// The state of one validation pass: the issues found so far, and what relative paths are relative to.
struct Validator<'a> {
    issues: Vec<ConfigIssue>,
    base: Option<&'a Path>,
    /// Which FRR prefixes may be targets, from `[backend]` (validated before the services).
    prefix_policy: targets::PrefixPolicy,
    /// With FRR's `announce_via = "kernel-metric"`: the variants that have a metric (every FRR network
    /// target must be one of them).
    frr_kernel_metrics: Option<nsbeacon_routing::frr::KernelMetrics>,
}

pub(crate) fn validate(raw: raw::RawConfig, base: Option<&Path>) -> Result<Config, ConfigError> {
    let mut v = Validator {
        issues: Vec::new(),
        base,
        prefix_policy: targets::PrefixPolicy::default(),
        frr_kernel_metrics: None,
    };
    let backend = v.backend(raw.backend.as_ref());
    let kind = backend.as_ref().map(|b| match b {
        BackendConfig::Bird { .. } => BackendKind::Bird,
        BackendConfig::Frr { .. } => BackendKind::Frr,
    });
    let services = v.services(&raw.services, kind);
    let http = v.http(raw.http.as_ref());
    let log = v.log(raw.log.as_ref());
    let top = v.top_level(&raw);
    let fleet = v.fleet(raw.fleet.as_ref());
    if raw.fleet.is_none() {
        v.min_announcing_without_fleet(&raw.services);
    }
    match backend {
        Some(backend) if v.issues.is_empty() => Ok(Config {
            backend,
            services,
            http,
            log,
            state_dir: top.state_dir,
            drain_file: top.drain_file,
            on_shutdown: top.on_shutdown,
            reconcile_interval: top.reconcile_interval,
            fleet,
        }),
        _ => Err(ConfigError::Invalid(v.issues)),
    }
}

impl Validator<'_> {
    fn issue(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.issues.push(ConfigIssue {
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
            line: None,
        });
    }
}

/// Formats a duration the way it is written in the config (`500ms`, `2s`).
pub(crate) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
