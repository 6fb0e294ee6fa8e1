//! The HTTP endpoint: `/metrics` (Prometheus text), `/status` (JSON), `/healthz`.
//!
//! Read-only by design: nothing reachable over HTTP changes routing. Drains go through the drain store
//! on disk (see [`crate::drainwatch`]), which needs the local file permissions an operator already has.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::fleet::FleetReport;
use crate::metrics::Metrics;
use crate::status::{DaemonInfo, RoutingReport, ServiceReport, StatusDocument};

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
    /// The fleet view (`/fleet`), with `[fleet]`.
    pub fleet: Option<Arc<RwLock<FleetReport>>>,
}

/// Builds the `/status` document from what the stages last published (see
/// [`StatusDocument::assemble`] for the join). Each lock is held only to copy out of it, and a poisoned
/// lock still serves its last data: a panicked writer must not take `/status` down with it.
pub fn status_document(state: &HttpState) -> StatusDocument {
    let routing = state.routing.borrow().clone();
    let daemon = state
        .info
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let services: Vec<ServiceReport> = state
        .services
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    StatusDocument::assemble(daemon, services, routing)
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

/// `/fleet`: every node's record as this node last read etcd; 404 without `[fleet]`.
async fn fleet_handler(State(state): State<HttpState>) -> Response {
    match &state.fleet {
        Some(report) => {
            let report = report
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            axum::Json(report).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            "the fleet guard is off: this node's config has no [fleet] section\n",
        )
            .into_response(),
    }
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
        .route("/fleet", get(fleet_handler))
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

/// Most HTTP connections held at once. Scrapers and the CLI need a handful; the cap keeps a flood of
/// clients from using up the file descriptors the probes need (a probe that cannot open a socket fails,
/// and failing probes withdraw the route). The systemd unit sets no `LimitNOFILE`, so nsbeacon runs with
/// systemd's default soft limit of 1024 descriptors: 512 leaves the other half to probes and the backend.
/// Once [`HTTP_EVICT_AT`] connections are open, accepting another one first closes the oldest connections
/// that have no request in flight, so idle or slow clients cannot lock out a scrape; only when every
/// connection is busy answering do new clients wait in the kernel's accept backlog.
pub const MAX_HTTP_CONNECTIONS: usize = 512;

/// Open connections from which accepting another one evicts idle ones (see [`MAX_HTTP_CONNECTIONS`]).
pub const HTTP_EVICT_AT: usize = MAX_HTTP_CONNECTIONS - MAX_HTTP_CONNECTIONS / 8;

/// A request's headers must be complete this long after its first byte (for a new connection: after
/// the connection was accepted), or the connection is closed. Real clients send a request of a few
/// hundred bytes at once; a client trickling its headers (slowloris) or connecting and sending nothing
/// holds its connection for at most this long.
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection on which nothing moves for this long is closed (between keep-alive requests, or while a
/// response cannot be written). Long enough for keep-alive scrapes (Prometheus scrapes every 15 s to
/// 1 min).
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A connection younger than this, or one that finished a response this recently, is not evicted: a
/// real client may not have sent its request yet, or may be about to send the next one.
const EVICT_GRACE: Duration = Duration::from_millis(100);

/// Where a connection is in its request cycle, as seen from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, no byte yet: the first request's headers are due [`HTTP_HEADER_TIMEOUT`] after `since`.
    Fresh,
    /// Part of a request's headers arrived: the rest is due [`HTTP_HEADER_TIMEOUT`] after `since`.
    Headers,
    /// A request's headers are complete and no response byte was written yet: being answered.
    InFlight,
    /// A response was written; waiting for the next keep-alive request.
    Idle,
}

/// A connection's phase, shared with the listener so that it can pick idle connections to evict.
#[derive(Debug)]
struct Activity {
    phase: Phase,
    /// When the phase began.
    since: Instant,
}

/// The listener's handle on one open connection.
#[derive(Debug)]
struct Tracked {
    activity: Arc<Mutex<Activity>>,
    evict: CancellationToken,
}

impl Tracked {
    /// When this connection became evictable, or `None` while a request is being answered.
    fn evictable_since(&self) -> Option<Instant> {
        let activity = self
            .activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (activity.phase != Phase::InFlight).then_some(activity.since)
    }
}

/// A TCP listener that holds at most `cap` connections, evicts idle ones once `evict_at` are open, and
/// closes connections whose request headers are late (`header`) or on which nothing moves (`idle`).
struct BoundedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    /// A connection accepted from the kernel that waits for a slot (kept here so that a cancelled
    /// `accept` does not lose it).
    waiting: Option<(TcpStream, SocketAddr)>,
    open: Vec<Tracked>,
    evict_at: usize,
    header: Duration,
    idle: Duration,
}

impl BoundedListener {
    fn new(
        listener: TcpListener,
        cap: usize,
        evict_at: usize,
        header: Duration,
        idle: Duration,
    ) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(cap)),
            waiting: None,
            open: Vec::new(),
            evict_at: evict_at.min(cap),
            header,
            idle,
        }
    }

    /// Forgets closed connections, then, while `evict_at` or more are open, asks the oldest idle ones
    /// (past [`EVICT_GRACE`]) to close. They close when their task next runs, which frees their slots.
    fn evict_idle(&mut self) {
        self.open
            .retain(|t| Arc::strong_count(&t.activity) > 1 && !t.evict.is_cancelled());
        if self.open.len() < self.evict_at {
            return;
        }
        let excess = self.open.len() + 1 - self.evict_at;
        let now = Instant::now();
        let mut candidates: Vec<(Instant, usize)> = self
            .open
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.evictable_since().map(|since| (since, i)))
            .filter(|(since, _)| now.saturating_duration_since(*since) >= EVICT_GRACE)
            .collect();
        candidates.sort_unstable();
        for (_, i) in candidates.into_iter().take(excess) {
            if let Some(t) = self.open.get(i) {
                t.evict.cancel();
            }
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The connection first (kept in `waiting`, so cancelling this future loses nothing), then room:
        // evict idle connections, and while every slot is busy look again every so often (connections
        // become evictable as they age past the grace period or finish their responses). The semaphore
        // is never closed, so the permit is always granted; `None` would only mean "unlimited".
        loop {
            let (stream, addr) = match self.waiting.take() {
                Some(waiting) => waiting,
                None => axum::serve::Listener::accept(&mut self.listener).await,
            };
            self.waiting = Some((stream, addr));
            self.evict_idle();
            tokio::select! {
                slot = self.slots.clone().acquire_owned() => {
                    if let Some((stream, addr)) = self.waiting.take() {
                        return (self.track(stream, slot.ok()), addr);
                    }
                }
                () = tokio::time::sleep(EVICT_GRACE) => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl BoundedListener {
    /// Wraps an accepted stream holding `slot`, and tracks it for eviction.
    fn track(
        &mut self,
        stream: TcpStream,
        slot: Option<OwnedSemaphorePermit>,
    ) -> BoundedConnection {
        let now = Instant::now();
        let activity = Arc::new(Mutex::new(Activity {
            phase: Phase::Fresh,
            since: now,
        }));
        let evict = CancellationToken::new();
        self.open.push(Tracked {
            activity: activity.clone(),
            evict: evict.clone(),
        });
        BoundedConnection {
            stream,
            _slot: slot,
            activity,
            phase: Phase::Fresh,
            terminator: 0,
            header: self.header,
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep_until(now + self.header)),
            evicted: Box::pin(evict.cancelled_owned()),
        }
    }
}

/// An accepted connection holding its slot. Reads fail with `TimedOut` when request headers are late or
/// nothing moved for the idle timeout, and with `ConnectionAborted` when the listener evicts it.
struct BoundedConnection {
    stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
    activity: Arc<Mutex<Activity>>,
    phase: Phase,
    /// How much of the `\r\n\r\n` that ends a request's headers the last bytes read matched.
    terminator: u8,
    header: Duration,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl BoundedConnection {
    /// Moves to `phase`, publishing it to the listener and setting the deadline that goes with it.
    fn enter(&mut self, phase: Phase) {
        let now = Instant::now();
        self.phase = phase;
        let mut activity = self
            .activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        activity.phase = phase;
        activity.since = now;
        let deadline = match phase {
            Phase::Fresh | Phase::Headers => now + self.header,
            Phase::InFlight | Phase::Idle => now + self.idle,
        };
        self.deadline.as_mut().reset(deadline);
    }

    /// Follows the request cycle through bytes read: the first byte of a request starts its header
    /// clock, a blank line ends its headers. (Our endpoints take no request bodies.)
    fn saw_read(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match self.phase {
                Phase::Fresh => {
                    // The header clock of a new connection started when it was accepted.
                    self.phase = Phase::Headers;
                    if let Ok(mut a) = self.activity.lock() {
                        a.phase = Phase::Headers;
                    }
                }
                Phase::Idle => self.enter(Phase::Headers),
                Phase::Headers | Phase::InFlight => {}
            }
            self.terminator = match (self.terminator, b) {
                (0 | 2, b'\r') => self.terminator + 1,
                (1 | 3, b'\n') => self.terminator + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            if self.terminator == 4 {
                self.terminator = 0;
                if self.phase == Phase::Headers {
                    self.enter(Phase::InFlight);
                }
            }
        }
    }

    /// After a finished operation: restarts the idle clock where it applies (not while headers are
    /// due, so a trickle of bytes cannot keep a request open).
    fn progressed(&mut self) {
        if matches!(self.phase, Phase::InFlight | Phase::Idle) {
            let idle = self.idle;
            self.deadline.as_mut().reset(Instant::now() + idle);
        }
    }

    /// For a pending operation: fails it once evicted or past the deadline.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.evicted.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "idle HTTP connection closed to make room for new clients",
            ));
        }
        self.deadline.as_mut().poll(cx).is_ready().then(|| {
            let why = match self.phase {
                Phase::Fresh | Phase::Headers => "HTTP request headers not received in time",
                Phase::InFlight | Phase::Idle => "HTTP connection idle for too long",
            };
            io::Error::new(io::ErrorKind::TimedOut, why)
        })
    }
}

impl AsyncRead for BoundedConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().get(before..).unwrap_or_default().to_vec();
                this.saw_read(&read);
                this.progressed();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for BoundedConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if this.phase == Phase::InFlight && result.as_ref().is_ok_and(|n| *n > 0) {
                    this.enter(Phase::Idle);
                }
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Ready(result) => {
                this.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// Binds `addr` now (so a bad address fails start-up) and serves until `shutdown` is cancelled, at most
/// [`MAX_HTTP_CONNECTIONS`] connections at once (evicting idle ones from [`HTTP_EVICT_AT`] on), each closed
/// when its request headers take longer than [`HTTP_HEADER_TIMEOUT`] or after [`HTTP_IDLE_TIMEOUT`] without
/// progress.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, BindError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })?;
    let listener = BoundedListener::new(
        listener,
        MAX_HTTP_CONNECTIONS,
        HTTP_EVICT_AT,
        HTTP_HEADER_TIMEOUT,
        HTTP_IDLE_TIMEOUT,
    );
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
        // Eviction off (evict_at = cap + 1 is clamped to the cap, so use a cap of 1 and a request in
        // flight, which is never evicted).
        let mut listener = BoundedListener::new(
            tcp,
            1,
            1,
            Duration::from_secs(10),
            Duration::from_millis(300),
        );

        let mut first_client = TcpStream::connect(addr).await.expect("connect");
        let (mut first, _) = listener.accept().await;
        first_client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut request = [0u8; 18];
        first.read_exact(&mut request).await.expect("read");

        // The only slot holds a request in flight: a second client is not served.
        let _second_client = TcpStream::connect(addr).await.expect("connect");
        assert!(
            tokio::time::timeout(Duration::from_millis(400), listener.accept())
                .await
                .is_err(),
            "a connection beyond the cap was accepted"
        );

        // Nothing moves on the first connection: it fails as idle instead of waiting forever.
        let mut byte = [0u8; 1];
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

    #[tokio::test]
    async fn trickled_or_missing_headers_time_out_even_while_bytes_arrive() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let mut listener = BoundedListener::new(
            tcp,
            8,
            8,
            Duration::from_millis(500),
            Duration::from_secs(60),
        );

        // Sends nothing at all.
        let _silent_client = TcpStream::connect(addr).await.expect("connect");
        let (mut silent, _) = listener.accept().await;
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let err = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
            .await
            .expect("the header timeout must end the read")
            .expect_err("missing headers are an error");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        // Slowloris: a byte every 100 ms never completes the headers, and does not reset the clock.
        let mut slow_client = TcpStream::connect(addr).await.expect("connect");
        let (mut slow, _) = listener.accept().await;
        let trickle = tokio::spawn(async move {
            for _ in 0..50 {
                if slow_client.write_all(b"X").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = Instant::now();
        let err = loop {
            match tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
                .await
                .expect("the header timeout must end the trickle")
            {
                Ok(n) => assert!(n > 0, "the client did not close"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        trickle.abort();

        // Complete headers stop the header clock: the connection lives on past it.
        let mut good_client = TcpStream::connect(addr).await.expect("connect");
        let (mut good, _) = listener.accept().await;
        good_client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut request = [0u8; 34];
        good.read_exact(&mut request).await.expect("read");
        assert!(
            tokio::time::timeout(Duration::from_secs(1), good.read(&mut buf))
                .await
                .is_err(),
            "a request in flight was cut off by the header timeout"
        );
    }

    #[tokio::test]
    async fn idle_connections_are_evicted_to_make_room_but_busy_ones_are_not() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let mut listener =
            BoundedListener::new(tcp, 3, 2, Duration::from_secs(30), Duration::from_secs(60));
        // One busy connection (request in flight) and one that sent nothing.
        let mut busy_client = TcpStream::connect(addr).await.expect("connect");
        let (mut busy, _) = listener.accept().await;
        busy_client
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut request = [0u8; 18];
        busy.read_exact(&mut request).await.expect("read");
        let _idle_client = TcpStream::connect(addr).await.expect("connect");
        let (mut idle, _) = listener.accept().await;
        tokio::time::sleep(EVICT_GRACE * 2).await;

        // A third client: the idle connection is evicted, the busy one is not.
        let _third_client = TcpStream::connect(addr).await.expect("connect");
        let (_third, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the third client is accepted");
        let mut buf = [0u8; 1];
        let err = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
            .await
            .expect("the evicted connection's read ends")
            .expect_err("eviction is an error");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), busy.read(&mut buf))
                .await
                .is_err(),
            "a connection with a request in flight was evicted"
        );
    }
}
