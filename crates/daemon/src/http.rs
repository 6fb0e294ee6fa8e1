//! The HTTP endpoint: `/metrics` (Prometheus text), `/status` (JSON), `/healthz`.
//!
//! Read-only by design: nothing reachable over HTTP changes routing. Drains go through the drain store
//! on disk (see [`crate::drainwatch`]), which needs the local file permissions an operator already has.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use nsbeacon_routing::RouteState;

use crate::metrics::Metrics;
use crate::routes::TargetId;
use crate::service::{CheckReport, ServiceReport};
use crate::status::{BackendReport, RoutingReport, TargetReport};

/// Facts about the process, for `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DaemonInfo {
    /// nsbeacon version.
    pub version: &'static str,
    /// Process id (for `kill -HUP`).
    pub pid: u32,
    /// The config file in use.
    pub config_path: String,
    /// When the daemon started (seconds since the Unix epoch).
    pub started_unix: f64,
    /// When the config in force was loaded.
    pub config_loaded_unix: f64,
    /// Successful reloads.
    pub reloads_ok: u64,
    /// Rejected reloads (the old config stays in force).
    pub reloads_failed: u64,
    /// The last reload error, if the last reload failed.
    pub last_reload_error: Option<String>,
    /// `withdraw` or `keep`.
    pub on_shutdown: &'static str,
    /// Drains in force: service (or `*` for all) -> reason.
    pub drains: BTreeMap<String, String>,
}

/// What the HTTP handlers read.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// Metrics to render.
    pub metrics: Metrics,
    /// Service reports.
    pub services: Arc<RwLock<BTreeMap<String, ServiceReport>>>,
    /// Routing report.
    pub routing: watch::Receiver<RoutingReport>,
    /// Process facts.
    pub info: Arc<RwLock<DaemonInfo>>,
}

/// A target of a service joined with what the daemon really does.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceTargetStatus {
    /// Kind and name.
    #[serde(flatten)]
    pub id: TargetId,
    /// `announce` or `degrade`.
    pub role: &'static str,
    /// What this service wants.
    pub desired: RouteState,
    /// What the reconciler wants after merging services (withdrawn wins).
    pub reconciled: Option<RouteState>,
    /// What the BGP daemon reported at the last read-back.
    pub actual: Option<RouteState>,
    /// The BGP daemon's words.
    pub detail: String,
    /// Last backend error for the target.
    pub last_error: Option<String>,
}

/// One service in `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// State.
    pub state: &'static str,
    /// Why.
    pub reason: String,
    /// Since when (seconds since the Unix epoch).
    pub since_unix: f64,
    /// Drained by an operator.
    pub drained: bool,
    /// Flap damping.
    pub damping: DampingStatus,
    /// State changes since start.
    pub transitions: u64,
    /// Checks.
    pub checks: Vec<CheckReport>,
    /// Targets, desired vs actual.
    pub targets: Vec<ServiceTargetStatus>,
}

/// Damping of one service.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DampingStatus {
    /// Current penalty.
    pub penalty: f64,
    /// Whether the service is held withdrawn.
    pub suppressed: bool,
}

/// The `/status` document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusDocument {
    /// Process facts.
    pub daemon: DaemonInfo,
    /// Whether the first reconcile pass has run.
    pub ready: bool,
    /// Routing backend health.
    pub backend: BackendReport,
    /// Every service.
    pub services: Vec<ServiceStatus>,
    /// Every target the reconciler manages.
    pub targets: Vec<TargetReport>,
    /// When the reconciler last finished a pass.
    pub last_reconcile_unix: Option<f64>,
}

/// Builds the `/status` document from the shared state.
pub fn status_document(state: &HttpState) -> StatusDocument {
    let routing = state.routing.borrow().clone();
    let daemon = state
        .info
        .read()
        .map(|i| i.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    let services = state
        .services
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .cloned()
        .collect::<Vec<_>>();
    let services = services
        .into_iter()
        .map(|s| {
            let targets = s
                .targets
                .iter()
                .map(|t| {
                    let known = routing.target(&t.id);
                    ServiceTargetStatus {
                        id: t.id.clone(),
                        role: t.role,
                        desired: t.desired,
                        reconciled: known.map(|r| r.desired),
                        actual: known.and_then(|r| r.actual),
                        detail: known.map(|r| r.detail.clone()).unwrap_or_default(),
                        last_error: known.and_then(|r| r.last_error.clone()),
                    }
                })
                .collect();
            ServiceStatus {
                name: s.name,
                state: s.state,
                reason: s.reason,
                since_unix: s.since_unix,
                drained: s.drained,
                damping: DampingStatus {
                    penalty: s.damping_penalty,
                    suppressed: s.suppressed,
                },
                transitions: s.transitions,
                checks: s.checks,
                targets,
            }
        })
        .collect();
    StatusDocument {
        daemon,
        ready: routing.first_pass_done,
        backend: routing.backend,
        services,
        targets: routing.targets,
        last_reconcile_unix: routing.last_reconcile_unix,
    }
}

async fn metrics_handler(State(state): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn status_handler(State(state): State<HttpState>) -> Response {
    axum::Json(status_document(&state)).into_response()
}

async fn healthz_handler(State(state): State<HttpState>) -> Response {
    if state.routing.borrow().first_pass_done {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: first reconcile pending\n",
        )
            .into_response()
    }
}

/// The router with every endpoint.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/status", get(status_handler))
        .route("/healthz", get(healthz_handler))
        .with_state(state)
}

/// The listen address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} for HTTP (/metrics, /status): {source}; another nsbeacon may be running, or change [http] listen"
)]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Most HTTP connections served at once. Scrapers and the CLI need a handful; the cap keeps a flood of
/// clients from using up the file descriptors the probes need (a probe that cannot open a socket fails,
/// and failing probes withdraw the route). Clients beyond it wait in the kernel's accept backlog.
pub const MAX_HTTP_CONNECTIONS: usize = 64;

/// A connection on which nothing moves for this long is closed. axum sets no timeout of its own, so
/// without this a client that never finishes its request would hold its connection (and slot) forever.
/// Long enough for keep-alive scrapes (Prometheus scrapes every 15 s to 1 min).
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A TCP listener that serves at most `slots` connections at once, each closed after `idle` without
/// progress.
struct BoundedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl BoundedListener {
    fn new(listener: TcpListener, max_connections: usize, idle: Duration) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
            idle,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // A free slot first, then the connection. The semaphore is never closed, so the permit is
        // always granted; `None` would only mean "unlimited".
        let slot = self.slots.clone().acquire_owned().await.ok();
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        let connection = BoundedConnection {
            stream,
            _slot: slot,
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep(self.idle)),
        };
        (connection, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An accepted connection holding its slot; reads and writes fail with `TimedOut` once neither has made
/// progress for the idle timeout.
struct BoundedConnection {
    stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl BoundedConnection {
    /// Passes on a finished operation (and restarts the idle clock), or fails a pending one whose idle
    /// time is up.
    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                let idle = self.idle;
                self.deadline.as_mut().reset(Instant::now() + idle);
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "HTTP connection idle for too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for BoundedConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        this.bounded(cx, poll)
    }
}

impl AsyncWrite for BoundedConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.bounded(cx, poll)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.bounded(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.bounded(cx, poll)
    }
}

/// Binds `addr` now (so a bad address fails start-up) and serves until `shutdown` is cancelled, at most
/// [`MAX_HTTP_CONNECTIONS`] connections at once, each closed after [`HTTP_IDLE_TIMEOUT`] without progress.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let listener = BoundedListener::new(listener, MAX_HTTP_CONNECTIONS, HTTP_IDLE_TIMEOUT);
    let app = router(state);
    Ok(tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener as _;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_and_idle_ones_are_closed() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let mut listener = BoundedListener::new(tcp, 1, Duration::from_millis(300));

        let mut first_client = TcpStream::connect(addr).await.expect("connect");
        let (mut first, _) = listener.accept().await;
        first_client.write_all(b"G").await.expect("write");
        let mut byte = [0u8; 1];
        first.read_exact(&mut byte).await.expect("read");

        // The only slot is taken: a second client is not served.
        let _second_client = TcpStream::connect(addr).await.expect("connect");
        assert!(
            tokio::time::timeout(Duration::from_millis(100), listener.accept())
                .await
                .is_err(),
            "a connection beyond the cap was accepted"
        );

        // The first client sends nothing more: its connection fails as idle instead of waiting forever.
        let err = tokio::time::timeout(Duration::from_secs(10), first.read(&mut byte))
            .await
            .expect("the idle timeout must end the read")
            .expect_err("an idle connection is an error");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        // Dropping it frees the slot for the waiting client.
        drop(first);
        tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the waiting client is served once the slot is free");
    }
}
