//! Load signals (`[service.load]`): how much the DNS server receives, read from its own statistics and the
//! kernel on an interval, and whether that is an overload.
//!
//! Why: during the 2015 root DNS attacks sites took about 100 times their normal load, and the sites
//! that withdrew pushed the attack, and their good traffic, onto their neighbours (Moura et al., IMC
//! 2016, "absorb" vs "withdraw"). A probe that times out under a flood would make nsbeacon withdraw and
//! pass the attack on. With a load signal, health can tell "broken" from "busy" (see
//! `health/overload.rs`).
//!
//! One task per service that has `[service.load]`, started, reconfigured and stopped with the service
//! like the process watch. Every `interval` it reads the server's request counter ([`read`]: Knot's and
//! NSD's control sockets, BIND's statistics channel) and the kernel's UDP receive errors, each bounded by
//! `timeout`; the [`detect::Detector`] turns readings into rates, a baseline and the verdict; the task
//! exports the metrics and publishes a [`LoadView`] to the service task. A failed read is logged (once
//! per episode), counted, and gives no signal for that interval: never a panic, never a made-up rate.
//! The task never changes routes: only the service's health decides, and only for failing probes.

pub mod detect;
pub mod read;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::config::{LoadConfig, LoadSource};
use crate::metrics::Metrics;

pub use detect::{Assessment, Detector, Reading};

/// What the load task last saw, for health, `/status` and the service's report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadView {
    /// `knot`, `nsd`, `bind` or `none`; empty before the first reading.
    pub source: &'static str,
    /// The server's request counter at the last good read.
    pub queries_total: Option<u64>,
    /// The kernel's UDP `InErrors` at the last good read.
    pub udp_in_errors_total: Option<u64>,
    /// The kernel's UDP `RcvbufErrors` at the last good read.
    pub udp_rcvbuf_errors_total: Option<u64>,
    /// Rates, baseline and verdict.
    pub assessment: Assessment,
    /// The last read's errors, if any (`None` when everything read).
    pub error: Option<String>,
    /// Readings taken so far.
    pub readings: u64,
}

/// A service's running load task.
#[derive(Debug)]
pub struct LoadTask {
    config: watch::Sender<LoadConfig>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl LoadTask {
    /// Starts reading for `service` with `config`, publishing into `out`. A notification on `read_now`
    /// (the service task's, when a probe times out) takes a reading at once instead of at the next tick.
    pub fn spawn(
        service: &str,
        config: LoadConfig,
        metrics: &Metrics,
        out: &Arc<watch::Sender<LoadView>>,
        read_now: Arc<Notify>,
        cancel: CancellationToken,
        span: &tracing::Span,
    ) -> LoadTask {
        let (tx, rx) = watch::channel(config);
        let handle = tokio::spawn(
            run(
                service.to_owned(),
                rx,
                metrics.clone(),
                out.clone(),
                read_now,
                cancel.clone(),
            )
            .instrument(span.clone()),
        );
        LoadTask {
            config: tx,
            cancel,
            handle,
        }
    }

    /// New settings (SIGHUP): the baseline is kept; a new source starts its counters afresh.
    pub fn reconfigure(&self, config: LoadConfig) {
        self.config.send_if_modified(|old| {
            if *old == config {
                false
            } else {
                *old = config;
                true
            }
        });
    }

    /// Stops the task and waits for it.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.handle.await;
    }
}

/// The shortest time between two readings asked for by timed-out probes.
const READ_NOW_GAP: Duration = Duration::from_millis(50);

/// The task: read, assess, export, publish, every interval (and when a probe times out) until `cancel`.
async fn run(
    service: String,
    mut config_rx: watch::Receiver<LoadConfig>,
    metrics: Metrics,
    out: Arc<watch::Sender<LoadView>>,
    read_now: Arc<Notify>,
    cancel: CancellationToken,
) {
    let mut config = config_rx.borrow_and_update().clone();
    let mut detector = Detector::new(config.clone());
    let mut tick = ticker(&config);
    let mut udp_last: Option<(u64, u64)> = None;
    let mut failing = false;
    let mut readings: u64 = 0;
    let mut last_read: Option<Instant> = None;
    info!(source = config.source.as_str(), interval = ?config.interval, "reading load signals");
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = config_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                let new = config_rx.borrow_and_update().clone();
                if new.source != config.source {
                    // Another server's counter is not comparable with the old one.
                    clear_rate_series(&metrics, &service, &config.source);
                    detector = Detector::new(new.clone());
                } else {
                    detector.reconfigure(new.clone());
                }
                if new.interval != config.interval {
                    tick = ticker(&new);
                }
                config = new;
                continue;
            }
            _ = tick.tick() => {}
            _ = read_now.notified() => {
                // A burst of timed-out probes asks again and again: one reading per READ_NOW_GAP is enough.
                if last_read.is_some_and(|at: Instant| at.elapsed() < READ_NOW_GAP) {
                    continue;
                }
                debug!("a probe timed out: reading the load signals at once");
            }
        }
        last_read = Some(Instant::now());
        let (server, kernel) = tokio::join!(read_server(&config), async {
            if config.kernel {
                Some(read::read_kernel(config.timeout).await)
            } else {
                None
            }
        });
        let now = Instant::now();
        readings += 1;
        let source = config.source.as_str();
        let mut errors = Vec::new();
        let queries = match server {
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                metrics
                    .load_read_errors_total
                    .with_label_values(&[&service, source])
                    .inc();
                errors.push(e.to_string());
                None
            }
            None => None,
        };
        let udp = match kernel {
            Some(Ok(c)) => Some((c.in_errors, c.rcvbuf_errors)),
            Some(Err(e)) => {
                metrics
                    .load_read_errors_total
                    .with_label_values(&[&service, "kernel"])
                    .inc();
                errors.push(e.to_string());
                None
            }
            None => None,
        };
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        match (&error, failing) {
            (Some(e), false) => {
                warn!(error = %e, "cannot read the load signals; no load signal until they read again (a flood would withdraw)");
                failing = true;
            }
            (Some(e), true) => debug!(error = %e, "load signals still unreadable"),
            (None, true) => {
                info!("load signals read again");
                failing = false;
            }
            (None, false) => {}
        }
        if let Some(counters) = udp {
            export_udp(&metrics, &service, udp_last, counters);
            udp_last = Some(counters);
        }
        let before = out.borrow().assessment.overloaded;
        let assessment = detector.observe(
            Reading {
                queries,
                udp_errors: udp,
            },
            now,
        );
        if assessment.overloaded != before {
            if assessment.overloaded {
                warn!(detail = %assessment.detail, "the DNS server is overloaded");
            } else {
                info!(detail = %assessment.detail, "the overload is over");
            }
        }
        export_assessment(&metrics, &service, &config.source, &assessment);
        out.send_replace(LoadView {
            source,
            queries_total: queries,
            udp_in_errors_total: udp.map(|u| u.0),
            udp_rcvbuf_errors_total: udp.map(|u| u.1),
            assessment,
            error,
            readings,
        });
    }
    // No task, no signal: health must not keep absorbing on a stale verdict.
    clear_rate_series(&metrics, &service, &config.source);
    metrics
        .load_overloaded
        .with_label_values(&[&service])
        .set(0);
    out.send_replace(LoadView::default());
}

fn ticker(config: &LoadConfig) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// The server's request counter, or `None` for `source = "none"`.
async fn read_server(config: &LoadConfig) -> Option<Result<u64, read::ReadError>> {
    Some(match &config.source {
        LoadSource::None => return None,
        LoadSource::Knot { socket } => read::read_knot(socket, config.timeout).await,
        LoadSource::Nsd { socket } => read::read_nsd(socket, config.timeout).await,
        LoadSource::Bind { addr, path } => read::read_bind(*addr, path, config.timeout).await,
    })
}

/// Adds the kernel counters' growth since the last read (the first read only creates the series).
fn export_udp(metrics: &Metrics, service: &str, last: Option<(u64, u64)>, now: (u64, u64)) {
    let in_errors = metrics
        .udp_receive_errors_total
        .with_label_values(&[service, "InErrors"]);
    let rcvbuf = metrics
        .udp_receive_errors_total
        .with_label_values(&[service, "RcvbufErrors"]);
    if let Some((last_in, last_rcvbuf)) = last {
        in_errors.inc_by(now.0.saturating_sub(last_in));
        rcvbuf.inc_by(now.1.saturating_sub(last_rcvbuf));
    }
}

fn export_assessment(metrics: &Metrics, service: &str, source: &LoadSource, a: &Assessment) {
    let labels = [service, source.as_str()];
    match a.qps {
        Some(qps) => metrics
            .dns_queries_per_second
            .with_label_values(&labels)
            .set(qps),
        None => {
            let _ = metrics.dns_queries_per_second.remove_label_values(&labels);
        }
    }
    if let Some(baseline) = a.baseline_qps {
        metrics
            .dns_queries_baseline_per_second
            .with_label_values(&labels)
            .set(baseline);
    }
    metrics
        .load_overloaded
        .with_label_values(&[service])
        .set(i64::from(a.overloaded));
}

fn clear_rate_series(metrics: &Metrics, service: &str, source: &LoadSource) {
    let labels = [service, source.as_str()];
    let _ = metrics.dns_queries_per_second.remove_label_values(&labels);
    let _ = metrics
        .dns_queries_baseline_per_second
        .remove_label_values(&labels);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::OverloadPolicy;

    fn kernel_only(interval_ms: u64) -> LoadConfig {
        LoadConfig {
            source: LoadSource::None,
            kernel: true,
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(50),
            overload_factor: 10.0,
            min_qps: 100.0,
            max_qps: None,
            max_udp_errors: None,
            baseline_window: Duration::from_secs(60),
            overload: OverloadPolicy::Withdraw,
        }
    }

    /// A timed-out probe must not wait for the next tick: the reading it asks for comes at once, and a
    /// burst of such requests within READ_NOW_GAP costs one reading.
    #[tokio::test]
    async fn a_read_now_request_reads_at_once_and_bursts_are_folded() {
        let metrics = Metrics::new().expect("metrics");
        let out = Arc::new(watch::channel(LoadView::default()).0);
        let mut rx = out.subscribe();
        let read_now = Arc::new(Notify::new());
        let task = LoadTask::spawn(
            "dns",
            kernel_only(60_000),
            &metrics,
            &out,
            read_now.clone(),
            CancellationToken::new(),
            &tracing::Span::none(),
        );
        let readings = |rx: &mut watch::Receiver<LoadView>, n: u64| {
            let mut rx = rx.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        if rx.borrow_and_update().readings >= n {
                            return;
                        }
                        rx.changed().await.expect("sender alive");
                    }
                })
                .await
                .expect("reading within 5 s, not at the 60 s tick")
            }
        };
        // The interval's first tick reads at once.
        readings(&mut rx, 1).await;
        tokio::time::sleep(READ_NOW_GAP * 2).await;
        read_now.notify_one();
        readings(&mut rx, 2).await;
        // Asked again right away (within the gap): folded, no third reading.
        read_now.notify_one();
        tokio::time::sleep(READ_NOW_GAP / 2).await;
        assert_eq!(out.borrow().readings, 2);
        task.stop().await;
    }

    #[tokio::test]
    async fn the_task_reads_keeps_going_across_a_reconfigure_and_clears_its_signal_when_stopped() {
        let metrics = Metrics::new().expect("metrics");
        let out = Arc::new(watch::channel(LoadView::default()).0);
        let mut rx = out.subscribe();
        let task = LoadTask::spawn(
            "dns",
            kernel_only(100),
            &metrics,
            &out,
            Arc::new(Notify::new()),
            CancellationToken::new(),
            &tracing::Span::none(),
        );
        let wait_readings = |rx: &mut watch::Receiver<LoadView>, n: u64| {
            let mut rx = rx.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        if rx.borrow_and_update().readings >= n {
                            return rx.borrow().clone();
                        }
                        rx.changed().await.expect("sender alive");
                    }
                })
                .await
                .expect("readings within 5 s")
            }
        };
        let view = wait_readings(&mut rx, 2).await;
        assert_eq!(view.source, "none");
        assert!(view.udp_in_errors_total.is_some(), "{view:?}");
        assert_eq!(view.queries_total, None);
        assert!(view.error.is_none(), "{view:?}");
        assert!(view.assessment.udp_errors_per_second.is_some(), "{view:?}");
        // A new interval: the task goes on counting (nothing restarts).
        task.reconfigure(kernel_only(150));
        let later = wait_readings(&mut rx, view.readings + 2).await;
        assert!(later.readings > view.readings);
        task.stop().await;
        assert_eq!(*out.borrow(), LoadView::default(), "no task, no signal");
        assert_eq!(metrics.load_overloaded.with_label_values(&["dns"]).get(), 0);
    }
}
