//! The small top-level settings: `[http]`, `[log]`, `state_dir`, `drain_file`, `on_shutdown`,
//! `reconcile_interval`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Validator;
use super::raw::{RawConfig, RawHttp, RawLog};
use crate::config::{
    DEFAULT_HTTP_LISTEN, DEFAULT_RECONCILE_INTERVAL, DEFAULT_STATE_DIR, HttpConfig, LogConfig,
    LogFormat, MAX_INTERVAL, OnShutdown,
};

/// The top-level keys outside any table.
pub(super) struct TopLevel {
    pub state_dir: PathBuf,
    pub drain_file: Option<PathBuf>,
    pub on_shutdown: OnShutdown,
    pub reconcile_interval: Duration,
}

impl Validator<'_> {
    pub(super) fn top_level(&mut self, raw: &RawConfig) -> TopLevel {
        let state_dir = self
            .absolute_path("state_dir", raw.state_dir.as_deref())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let drain_file = self.absolute_path("drain_file", raw.drain_file.as_deref());
        let on_shutdown = match raw.on_shutdown.as_deref() {
            None | Some("withdraw") => OnShutdown::Withdraw,
            Some("keep") => OnShutdown::Keep,
            Some(other) => {
                self.issue(
                    "on_shutdown",
                    format!("{other:?} is not a shutdown behaviour"),
                    "use \"withdraw\" (default: withdraw this node's routes before exiting) or \"keep\"",
                );
                OnShutdown::Withdraw
            }
        };
        let reconcile_interval = self
            .duration_in(
                "reconcile_interval",
                raw.reconcile_interval.as_deref(),
                Duration::from_millis(100),
                MAX_INTERVAL,
            )
            .unwrap_or(DEFAULT_RECONCILE_INTERVAL);
        TopLevel {
            state_dir,
            drain_file,
            on_shutdown,
            reconcile_interval,
        }
    }

    pub(super) fn http(&mut self, raw: Option<&RawHttp>) -> HttpConfig {
        let listen = raw
            .and_then(|h| h.listen.as_deref())
            .and_then(|s| match s.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.issue(
                        "http.listen",
                        format!("{s:?} is not an IP address with a port"),
                        "write e.g. \"127.0.0.1:9753\" or \"[::1]:9753\"",
                    );
                    None
                }
            })
            .unwrap_or(DEFAULT_HTTP_LISTEN);
        HttpConfig { listen }
    }

    pub(super) fn log(&mut self, raw: Option<&RawLog>) -> LogConfig {
        let mut log = LogConfig::default();
        let Some(raw) = raw else { return log };
        if let Some(level) = raw.level.as_deref() {
            if level.trim().is_empty() {
                self.issue(
                    "log.level",
                    "empty",
                    "use info (default), debug, warn, error or trace",
                );
            } else if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
                self.issue(
                    "log.level",
                    format!("{level:?} is not a log filter: {e}"),
                    "use info (default), debug, warn, error, trace, or a directive like \"info,nsbeacon=debug\"",
                );
            } else {
                log.level = level.to_owned();
            }
        }
        match raw.format.as_deref() {
            None | Some("text") => {}
            Some("json") => log.format = LogFormat::Json,
            Some(other) => self.issue(
                "log.format",
                format!("{other:?} is not a log format"),
                "use \"text\" (default) or \"json\"",
            ),
        }
        log
    }
}
