//! nsbeacon: announce a node's anycast DNS route only while the local DNS service answers correctly.
//!
//! # Running it
//!
//! ```text
//! nsbeacon [-c /etc/nsbeacon/nsbeacon.toml] [run]     the daemon (foreground; systemd Type=notify)
//! nsbeacon check-config                               validate; exit 0, or 2 listing every problem
//! nsbeacon status [--json] [--addr 127.0.0.1:9753]    ask the running daemon; aligned table or its JSON
//! nsbeacon probe [SERVICE]                            run the checks once, print everything seen
//! nsbeacon drain [SERVICE] [--reason TEXT]            withdraw on purpose (persists across restarts)
//! nsbeacon undrain [SERVICE]                          cancel that drain
//! ```
//!
//! Exit codes: 0 success; 1 runtime failure (`run`: a shutdown withdrawal failed; `probe`: a check failed
//! hard; `status`: the daemon is unreachable); 2 configuration error (`check-config --live`: a route
//! target missing in the BGP daemon); 3 `status`: the daemon answers but its BGP daemon does not, or it is
//! not ready yet; 4 `probe`: no hard failure, but a soft signal (the service would be degraded).
//!
//! Drains are written to the drain store in `state_dir` (and, for scripts, `drain_file`: while it exists
//! every service is drained). The daemon re-reads both every 250 ms, so `drain`/`undrain` work whether or
//! not it runs, and nothing reachable over HTTP can change routing.
//!
//! HTTP (default `127.0.0.1:9753`, `[http] listen`): `/metrics` (Prometheus text, every family in
//! [`metrics`]), `/status` (JSON: services, states and reasons, each check's last outcome with latency and
//! identity, targets desired vs actual, backend health, drains, damping, reload counters), `/healthz` (200
//! once the first reconcile pass has run, 503 before).
//!
//! Signals: SIGTERM/SIGINT withdraw this node's targets (`on_shutdown = "withdraw"`, the default) and exit
//! 0; SIGHUP reloads the config: unchanged services keep their state and routes; changed ones are
//! reconfigured in place, keeping their state and check history by check name; removed ones are
//! withdrawn; an invalid file is rejected, logged and counted, and the old config stays. `[log] level`
//! changes apply at once; `[backend]`, `[http]`, `[log] format` and `reconcile_interval` changes need a
//! restart.
//!
//! # Modules
//!
//! Policy: [`config`] (TOML to typed config), [`health`] (the pure state machine), [`routes`] (the route
//! vocabulary: desired table, target ids, merging), [`drain`] (persistent drains), [`warm`] (the
//! warm-restart record), [`file`] (the bounded reader every file read goes through). Runtime, in data-path
//! order: [`probe`] (probe tasks, recording runs), [`service`] (service tasks), [`executor`] (the only
//! code calling the BGP daemon, running the pure route book in [`routes::book`]), [`backend`], [`status`] (the typed status model), [`http`], [`metrics`],
//! [`drainwatch`], [`birdlog`], [`clock`], [`daemon`] (wiring, signals, systemd) and [`cli`].
//! ARCHITECTURE.md at the root draws the tasks.

pub mod backend;
pub mod birdlog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod drain;
pub mod drainwatch;
pub mod executor;
pub mod file;
pub mod fleet;
pub mod health;
pub mod http;
pub mod load;
pub mod metrics;
pub mod probe;
pub mod procwatch;
pub mod routes;
pub mod service;
pub mod status;
pub mod warm;
