//! `nsbeacon run`: wires the tasks together and handles signals and systemd.
//!
//! ```text
//!  probe task (per check) --mpsc--> service task (per service, owns ServiceHealth)
//!                                      |  desired steps (watch)         | ServiceReport
//!                                      v                                v
//!                                   reconciler --> BIRD / FRR        /status, /metrics
//!  drain watcher (drain store + drain file) --watch--> service tasks
//! ```
//!
//! - SIGTERM / SIGINT: stop probing, withdraw this node's targets (unless `on_shutdown = "keep"`), exit 0.
//! - SIGUSR1: run every check of every service at once (`nsbeacon probe --now`, hooks of the DNS
//!   server's unit), instead of at its next interval.
//! - SIGHUP: reload the config; services whose config is unchanged keep their state and routes; on an
//!   invalid file the old config stays in force (logged, counted in `nsbeacon_config_reloads_total`).
//! - systemd `Type=notify`: `READY=1` after the first reconcile pass; `WATCHDOG=1` pings at half of
//!   `WatchdogSec` while the reconciler keeps reporting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::backend::{Backend, BackendSetupError};
use crate::birdlog;
use crate::clock::unix_now;
use crate::config::{self, BackendConfig, CheckKind, Config, OnShutdown, ServiceConfig};
use crate::drainwatch;
use crate::executor::{ExecutorSettings, RouteExecutor, ShutdownWithdrawalFailed};
use crate::fleet::{Fleet, FleetSetupError};
use crate::health::ServiceState;
use crate::http::{self, BindError, HttpState};
use crate::metrics::{CheckSeries, Metrics, MetricsError, PER_ZONE_SERIES_LIMIT};
use crate::routes::{DesiredTable, TargetId};
use crate::service::{ServiceRuntime, Shared};
use crate::status::{DaemonInfo, RoutingReport};
use crate::warm;
use nsbeacon_routing::{RouteState, RouteTarget, RoutingBackend};

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Metrics could not be set up.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The backend settings were rejected.
    #[error(transparent)]
    Backend(#[from] BackendSetupError),
    /// The HTTP listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers failed: {0}")]
    Signals(std::io::Error),
    /// Withdrawing at shutdown failed for some targets: they may still be announced.
    #[error(transparent)]
    ShutdownWithdrawal(#[from] ShutdownWithdrawalFailed),
    /// The shutdown withdrawal did not finish within its bound: targets may still be announced.
    #[error(
        "the shutdown withdrawal did not finish within {0:?} (the BGP daemon did not answer); route targets may still be announced"
    )]
    ShutdownTimeout(Duration),
    /// The fleet guard could not be set up (`[fleet]`).
    #[error(transparent)]
    Fleet(#[from] FleetSetupError),
    /// The reconciler task died before it could withdraw.
    #[error("the reconciler failed during shutdown ({0}); route targets may still be announced")]
    ShutdownAborted(String),
}

/// Upper bound on the shutdown withdrawal: each target gets one backend timeout, plus slack.
fn shutdown_bound(config: &Config) -> Duration {
    let targets = config
        .services
        .iter()
        .map(|s| s.announce.len() + s.degrade.len())
        .sum::<usize>();
    config.backend.timeout() * u32::try_from(targets + 1).unwrap_or(1000) + Duration::from_secs(2)
}

/// The signal streams the daemon reacts to, installed before anything else so that a SIGHUP or SIGTERM
/// arriving during start-up is handled (queued) instead of killing the process with the default action.
#[derive(Debug)]
pub struct Signals {
    sigterm: tokio::signal::unix::Signal,
    sigint: tokio::signal::unix::Signal,
    sighup: tokio::signal::unix::Signal,
    sigusr1: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; must run inside the tokio runtime.
    pub fn install() -> Result<Signals, DaemonError> {
        Ok(Signals {
            sigterm: signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
            sigint: signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
            sighup: signal(SignalKind::hangup()).map_err(DaemonError::Signals)?,
            sigusr1: signal(SignalKind::user_defined1()).map_err(DaemonError::Signals)?,
        })
    }
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(
    config_path: PathBuf,
    config: Config,
    log_level: Option<LogLevelSetter>,
    signals: Signals,
) -> Result<(), DaemonError> {
    // Absolute, so logs and /status say which file a SIGHUP re-reads even after a chdir.
    let config_path = std::fs::canonicalize(&config_path).unwrap_or(config_path);
    let metrics = Metrics::new()?;
    let backend = Arc::new(Backend::from_config(&config.backend)?);
    let backend_kind = backend.kind();
    let Signals {
        mut sigterm,
        mut sigint,
        mut sighup,
        mut sigusr1,
    } = signals;

    let (desired_tx, desired_rx) = watch::channel(DesiredTable::new());
    let drain_paths = drainwatch::DrainPaths {
        state_dir: config.state_dir.clone(),
        drain_file: config.drain_file.clone(),
    };
    let (drain_paths_tx, drain_paths_rx) = watch::channel(drain_paths);
    let (drains_tx, drains_rx) = watch::channel(drainwatch::read(&drain_paths_rx.borrow()));
    let info = Arc::new(RwLock::new(DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        config_path: config_path.display().to_string(),
        started_unix: unix_now(),
        config_loaded_unix: unix_now(),
        reloads_ok: 0,
        reloads_failed: 0,
        last_reload_error: None,
        on_shutdown: config.on_shutdown,
        drains: drainwatch::describe(&drains_rx.borrow()),
    }));
    let (missing_tx, missing_rx) = watch::channel(std::collections::HashSet::new());
    let missing_tx = Arc::new(missing_tx);
    let fleet = config
        .fleet
        .as_ref()
        .map(Fleet::start)
        .transpose()?
        .map(Arc::new);
    let shared = Shared {
        metrics: metrics.clone(),
        desired: desired_tx,
        services: Arc::new(RwLock::new(BTreeMap::new())),
        drains: drains_rx.clone(),
        missing_targets: missing_rx,
        fleet: fleet.clone(),
    };

    let stop_tasks = CancellationToken::new();
    tokio::spawn(drainwatch::watch_loop(
        drain_paths_rx,
        drains_tx,
        info.clone(),
        stop_tasks.clone(),
    ));

    let withdraw_on_shutdown =
        Arc::new(AtomicBool::new(config.on_shutdown == OnShutdown::Withdraw));
    let nudge = Arc::new(tokio::sync::Notify::new());
    if let BackendConfig::Bird {
        socket, timeout, ..
    } = &config.backend
    {
        tokio::spawn(birdlog::watch(
            socket.clone(),
            *timeout,
            nudge.clone(),
            stop_tasks.clone(),
        ));
    }
    let (reconciler, handles) = RouteExecutor::new(
        backend.clone(),
        ExecutorSettings {
            backend_kind,
            interval: config.reconcile_interval,
            withdraw_on_shutdown: withdraw_on_shutdown.clone(),
            nudge,
            missing: missing_tx,
            event_log: ExecutorSettings::event_log_from_env(),
        },
        desired_rx,
        metrics.clone(),
    );

    // Bind HTTP before touching anything: a taken port (say, a second nsbeacon) fails start-up before this
    // process has changed a single route.
    let stop_http = CancellationToken::new();
    let http_state = HttpState {
        metrics: metrics.clone(),
        services: shared.services.clone(),
        routing: handles.report.clone(),
        info: info.clone(),
        fleet: fleet.as_ref().map(|f| f.report()),
    };
    let http_task = match http::serve(config.http.listen, http_state, stop_http.clone()).await {
        Ok(task) => task,
        Err(e) => {
            stop_tasks.cancel();
            return Err(e.into());
        }
    };

    // Services before the reconciler: their initial desired state (withdrawn while starting) must be in
    // the table before its first pass.
    let warm_announced = warm_restart_targets(&config, &backend).await;
    let mut services: BTreeMap<String, ServiceRuntime> = BTreeMap::new();
    for service in &config.services {
        services.insert(
            service.name.clone(),
            ServiceRuntime::start(service.clone(), &shared, &warm_announced),
        );
    }
    let stop_reconciler = CancellationToken::new();
    let reconciler_task = tokio::spawn(reconciler.run(stop_reconciler.clone()));
    let mut fleet_view = fleet
        .as_ref()
        .map(|f| FleetViewTask::start(f, &config, &metrics));

    info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config_path.display(),
        backend = backend_kind,
        services = config.services.len(),
        http = %config.http.listen,
        "nsbeacon running"
    );

    spawn_systemd(
        handles.first_pass,
        handles.report.clone(),
        stop_tasks.clone(),
    );

    let mut current = config;
    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { info!("SIGINT: shutting down"); break; }
            _ = sigusr1.recv() => {
                info!(services = services.len(), "SIGUSR1: probing every service now");
                for service in services.values() {
                    service.probe_now();
                }
            }
            _ = sighup.recv() => {
                info!(config = %config_path.display(), "SIGHUP: reloading the configuration");
                // Off this task (bounded in time and size): a slow or hung file system never delays a
                // shutdown signal.
                let loaded = tokio::select! {
                    loaded = config::load_async(&config_path) => loaded,
                    _ = sigterm.recv() => { info!("SIGTERM during a reload: shutting down"); break; }
                    _ = sigint.recv() => { info!("SIGINT during a reload: shutting down"); break; }
                };
                match loaded {
                    Ok(new) => {
                        apply_reload(&current, &new, &mut services, &shared).await;
                        if let Some(f) = &fleet {
                            if new.fleet.as_ref() != Some(f.config()) {
                                warn!(setting = "[fleet]", "this setting changed but only takes effect after a restart (per-service min_announcing applies at once)");
                            }
                            if let Some(view) = fleet_view.take() {
                                view.stop().await;
                            }
                            fleet_view = Some(FleetViewTask::start(f, &new, &metrics));
                        }
                        if new.log.level != current.log.level {
                            match &log_level {
                                Some(set) => match set(&new.log.level) {
                                    Ok(()) => info!(level = %new.log.level, "log level changed"),
                                    Err(e) => warn!(error = %e, "could not change the log level"),
                                },
                                None => warn!("RUST_LOG is set and overrides [log] level; not changing it"),
                            }
                        }
                        withdraw_on_shutdown.store(new.on_shutdown == OnShutdown::Withdraw, Ordering::SeqCst);
                        drain_paths_tx.send_replace(drainwatch::DrainPaths {
                            state_dir: new.state_dir.clone(),
                            drain_file: new.drain_file.clone(),
                        });
                        metrics.config_reloads_total.with_label_values(&["success"]).inc();
                        {
                            let mut i = info.write().unwrap_or_else(PoisonError::into_inner);
                            i.reloads_ok += 1;
                            i.config_loaded_unix = unix_now();
                            i.last_reload_error = None;
                            i.on_shutdown = new.on_shutdown;
                        }
                        current = new;
                    }
                    Err(e) => {
                        error!(error = %e, "reload rejected; the previous configuration stays in force");
                        metrics.config_reloads_total.with_label_values(&["failure"]).inc();
                        {
                            let mut i = info.write().unwrap_or_else(PoisonError::into_inner);
                            i.reloads_failed += 1;
                            i.last_reload_error = Some(e.to_string());
                        }
                    }
                }
            }
        }
    }

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // Stop probing first so no service publishes an announcement while we withdraw.
    stop_tasks.cancel();
    for (_, service) in std::mem::take(&mut services) {
        service.stop().await;
    }
    if let Some(view) = fleet_view.take() {
        view.stop().await;
    }
    drop(shared);
    if let Some(fleet) = fleet {
        // Before the withdrawal: the other nodes must stop counting this one as announcing first.
        leave_fleet(fleet, &current).await;
    }
    stop_reconciler.cancel();
    let bound = shutdown_bound(&current);
    let outcome = match tokio::time::timeout(bound, reconciler_task).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(failed))) => Err(DaemonError::from(failed)),
        // The reconciler panicked: nothing says the withdrawal happened.
        Ok(Err(e)) => Err(DaemonError::ShutdownAborted(e.to_string())),
        Err(_) => Err(DaemonError::ShutdownTimeout(bound)),
    };
    if outcome.is_ok() && !withdraw_on_shutdown.load(Ordering::SeqCst) {
        record_warm_restart(&current, &handles.report.borrow());
    }
    stop_http.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), http_task).await;
    match &outcome {
        Ok(()) => info!("nsbeacon stopped"),
        Err(_) => error!("nsbeacon stopped; route targets may still be announced"),
    }
    outcome
}

/// The fleet view task of one config's services (restarted on reload, when the services may change).
struct FleetViewTask {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl FleetViewTask {
    fn start(fleet: &Fleet, config: &Config, metrics: &Metrics) -> FleetViewTask {
        let stop = CancellationToken::new();
        let services = config
            .services
            .iter()
            .map(|s| {
                let min = config
                    .fleet
                    .as_ref()
                    .map_or(config::DEFAULT_MIN_ANNOUNCING, |f| f.min_announcing(s));
                (s.name.clone(), crate::fleet::min_announcing(min))
            })
            .collect();
        let task = fleet.view_task(services, metrics.clone(), stop.clone());
        FleetViewTask { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Leaves the fleet at shutdown, bounded: the lease is revoked so this node's records vanish at once.
async fn leave_fleet(fleet: Arc<Fleet>, config: &Config) {
    let bound = config
        .fleet
        .as_ref()
        .map_or(Duration::from_secs(1), |f| f.timeout)
        + Duration::from_millis(500);
    match Arc::try_unwrap(fleet) {
        Ok(fleet) => {
            if tokio::time::timeout(bound, fleet.leave()).await.is_err() {
                warn!(
                    ?bound,
                    "leaving the fleet timed out; this node's records expire after the lease TTL"
                );
            }
        }
        Err(_) => {
            warn!(
                "the fleet member is still in use; this node's records expire after the lease TTL"
            )
        }
    }
}

/// The targets a warm restart may keep: those in the record a clean `keep` exit left (see [`warm`]) that
/// belong to a configured service and that the BGP daemon reports announced right now. Any doubt (no
/// record, a stale one, an unreachable daemon) means a cold start: nothing is announced before DNS is
/// verified.
async fn warm_restart_targets(config: &Config, backend: &Backend) -> Vec<RouteTarget> {
    let Some(record) = warm::take(&config.state_dir) else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    for (target, _) in config.route_targets() {
        if !record.announced.contains(&TargetId::of(target)) {
            continue;
        }
        let bound = config.backend.timeout().saturating_mul(2);
        match tokio::time::timeout(bound, backend.read(target)).await {
            Ok(Ok(status)) if status.value.state == RouteState::Announced => {
                kept.push(target.clone())
            }
            Ok(Ok(_)) => {
                info!(target = %target, "warm restart: the BGP daemon no longer announces this target; starting it cold")
            }
            Ok(Err(e)) => {
                warn!(target = %target, error = %e, "warm restart: cannot read the target; starting it cold")
            }
            Err(_) => {
                warn!(target = %target, ?bound, "warm restart: reading the target timed out; starting it cold")
            }
        }
    }
    info!(
        previous_pid = record.pid,
        kept = kept.len(),
        "warm restart after a clean on_shutdown = \"keep\" exit: announced routes are kept while the first probes run"
    );
    kept
}

/// After a clean `keep` exit: records what is announced, for the next start (see [`warm`]).
fn record_warm_restart(config: &Config, report: &RoutingReport) {
    let announced: Vec<TargetId> = report
        .targets
        .iter()
        .filter(|t| t.actual == Some(RouteState::Announced) && t.desired == RouteState::Announced)
        .map(|t| t.id.clone())
        .collect();
    match warm::save(&config.state_dir, announced) {
        Ok(()) => {
            info!(path = %warm::path(&config.state_dir).display(), "warm-restart record written for the next start")
        }
        Err(e) => {
            warn!(error = %e, path = %warm::path(&config.state_dir).display(), "could not write the warm-restart record; the next start will be cold")
        }
    }
}

/// Applies a reloaded config: unchanged services keep running untouched; changed ones are reconfigured in
/// place (state and check history kept); removed ones stop and the reconciler withdraws their targets; new
/// ones start in `starting`.
async fn apply_reload(
    old: &Config,
    new: &Config,
    services: &mut BTreeMap<String, ServiceRuntime>,
    shared: &Shared,
) {
    for (what, changed) in [
        ("[backend]", old.backend != new.backend),
        ("[http]", old.http != new.http),
        ("[log] format", old.log.format != new.log.format),
        (
            "reconcile_interval",
            old.reconcile_interval != new.reconcile_interval,
        ),
    ] {
        if changed {
            warn!(
                setting = what,
                "this setting changed but only takes effect after a restart"
            );
        }
    }
    let mut unchanged = 0;
    let names: Vec<String> = services.keys().cloned().collect();
    for name in names {
        let Some(runtime) = services.get_mut(&name) else {
            continue;
        };
        match new.service(&name) {
            Some(config) if *config == runtime.config => unchanged += 1,
            Some(config) => {
                // Series of checks the new config no longer has must go; the others continue.
                let gone: Vec<CheckSeries> = check_series(&runtime.config)
                    .into_iter()
                    .filter(|c| !config.checks.iter().any(|n| n.name == c.name))
                    .collect();
                shared.metrics.forget_service(&name, &gone, &[]);
                info!(service = %name, "service changed by reload; reconfiguring it in place");
                runtime.reconfigure(config.clone()).await;
            }
            None => {
                let Some(runtime) = services.remove(&name) else {
                    continue;
                };
                let checks = check_series(&runtime.config);
                runtime.stop().await;
                let states: Vec<&str> = ServiceState::ALL.iter().map(|s| s.as_str()).collect();
                shared.metrics.forget_service(&name, &checks, &states);
                info!(service = %name, "service removed by reload; its targets will be withdrawn");
                if let Some(fleet) = &shared.fleet {
                    // Its record would otherwise stay in etcd for as long as this node lives, counted
                    // as announcing a service this node no longer announces.
                    fleet.remove_service(&name).await;
                }
                shared.desired.send_modify(|t| {
                    t.remove(&name);
                });
                shared
                    .services
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&name);
            }
        }
    }
    for service in &new.services {
        if !services.contains_key(&service.name) {
            if old.service(&service.name).is_none() {
                info!(service = %service.name, "service added by reload");
            }
            services.insert(
                service.name.clone(),
                ServiceRuntime::start(service.clone(), shared, &[]),
            );
        }
    }
    info!(
        unchanged,
        services = new.services.len(),
        "configuration reloaded"
    );
}

/// The metric label sets a service's checks export, for [`Metrics::forget_service`].
fn check_series(service: &ServiceConfig) -> Vec<CheckSeries> {
    service
        .checks
        .iter()
        .map(|c| CheckSeries {
            name: c.name.clone(),
            zones: match &c.kind {
                CheckKind::Serial(s) if s.zones.len() <= PER_ZONE_SERIES_LIMIT => {
                    s.zones.iter().map(ToString::to_string).collect()
                }
                CheckKind::Dnssec(d) if d.zones.len() <= PER_ZONE_SERIES_LIMIT => {
                    d.zones.iter().map(ToString::to_string).collect()
                }
                _ => Vec::new(),
            },
        })
        .collect()
}

/// Tells systemd READY=1 after the first reconcile pass, then pings the watchdog while the reconciler
/// keeps publishing reports.
fn spawn_systemd(
    first_pass: tokio::sync::oneshot::Receiver<()>,
    report: watch::Receiver<RoutingReport>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        if first_pass.await.is_err() {
            return;
        }
        // READY=1 either way (the service runs and supervises), but a missing target is said in the
        // unit's status line, so `systemctl status nsbeacon` shows it.
        let missing: Vec<String> = report
            .borrow()
            .targets
            .iter()
            .filter(|t| t.missing)
            .map(|t| format!("{} {}", t.id.kind.as_str(), t.id.target))
            .collect();
        let status = if missing.is_empty() {
            "running".to_owned()
        } else {
            format!(
                "ERROR: the BGP daemon has no {}; the services listing them are down",
                missing.join(", ")
            )
        };
        if let Err(e) = sd_notify::notify(
            false,
            &[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(&status),
            ],
        ) {
            warn!(error = %e, "telling systemd READY=1 failed");
        }
        if missing.is_empty() {
            info!("first reconcile pass done; ready");
        } else {
            error!(missing = %missing.join(", "), "first reconcile pass done; ready, but route targets are missing in the BGP daemon");
        }
        let Some(timeout) = watchdog_timeout(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        ) else {
            return;
        };
        let every = timeout / 2;
        info!(every = ?every, "systemd watchdog enabled");
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Alive means the reconciler finished a pass within the watchdog timeout (it publishes after
            // every pass, at least once per reconcile interval, and during backend outages once per
            // backoff step). A wedged reconciler stops the pings and systemd restarts nsbeacon.
            let last = report.borrow().last_reconcile_unix;
            let fresh = report.has_changed().is_ok()
                && last.is_some_and(|t| unix_now() - t < timeout.as_secs_f64());
            if fresh {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            } else {
                warn!(last_pass_unix = ?last, "the reconciler has not finished a pass within the watchdog timeout; not pinging systemd");
            }
        }
    });
}

/// The watchdog timeout systemd asks for, per sd_watchdog_enabled(3): `WATCHDOG_USEC` set and non-zero,
/// and `WATCHDOG_PID` either unset or this process. (sd-notify 0.4 insists on `WATCHDOG_PID`.)
pub fn watchdog_timeout(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    match pid {
        Some(pid) if pid.trim().parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

/// Changes the log filter of the running process (SIGHUP with a new `[log] level`).
pub type LogLevelSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Sets up tracing: `level` as an env-filter directive (RUST_LOG overrides), text or JSON lines on stderr.
/// Returns how to change the level later, unless RUST_LOG is in charge.
pub fn init_logging(level: &str, json: bool) -> Option<LogLevelSetter> {
    use tracing_subscriber::EnvFilter;
    let from_env = EnvFilter::try_from_default_env().ok();
    let env_in_charge = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    fn setter<L, S>(handle: tracing_subscriber::reload::Handle<L, S>) -> LogLevelSetter
    where
        L: From<EnvFilter> + Send + Sync + 'static,
        S: 'static,
    {
        Box::new(move |level: &str| {
            let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
            handle.reload(filter).map_err(|e| e.to_string())
        })
    }
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let lines = if json {
        lines.json().flatten_event(true).boxed()
    } else {
        lines.boxed()
    };
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .try_init();
    let set = setter(handle);
    if let Err(e) = result {
        eprintln!("nsbeacon: logging was already set up: {e}");
        return None;
    }
    (!env_in_charge).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_timeout_follows_sd_watchdog_enabled() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_timeout(Some("400000"), None),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            watchdog_timeout(Some("400000"), Some(&me)),
            Some(Duration::from_millis(400))
        );
        assert_eq!(watchdog_timeout(Some("400000"), Some("1")), None);
        assert_eq!(watchdog_timeout(Some("0"), None), None);
        assert_eq!(watchdog_timeout(Some("soon"), None), None);
        assert_eq!(watchdog_timeout(None, None), None);
    }
}
