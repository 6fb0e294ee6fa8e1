//! One DNS exchange over UDP or TCP on plain tokio sockets, every step under one deadline.
//!
//! Why not hickory-net's client streams: they silently drop replies with a wrong ID, a wrong question or
//! from another source and keep waiting, so every such case surfaces as a bare timeout (after hidden
//! retries), and a TCP stream that stalls after its length prefix is indistinguishable from silence. A
//! health probe must say *which* of these happened, so the message is built and parsed with hickory-proto
//! and the socket work is done here.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use crate::outcome::FailReason;
use crate::spec::{QuerySpec, Transport};

/// A query ready to send, with what is needed to recognise its reply.
pub(crate) struct PreparedQuery {
    bytes: Vec<u8>,
    id: u16,
    question: Query,
    payload: u16,
}

impl PreparedQuery {
    /// Encodes `query` with a random ID, RD=0 (authoritative servers need no recursion), EDNS with
    /// `payload`, and an empty NSID option when `nsid` is set.
    pub(crate) fn new(query: &QuerySpec, payload: u16, nsid: bool) -> Result<Self, FailReason> {
        Self::build(query, payload, nsid, false)
    }

    /// Like [`PreparedQuery::new`] without NSID, with the EDNS DO bit set, so a signed zone's answer
    /// carries its RRSIGs (RFC 3225).
    pub(crate) fn dnssec(query: &QuerySpec, payload: u16) -> Result<Self, FailReason> {
        Self::build(query, payload, false, true)
    }

    fn build(
        query: &QuerySpec,
        payload: u16,
        nsid: bool,
        dnssec_ok: bool,
    ) -> Result<Self, FailReason> {
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        let mut question = Query::query(query.name.clone(), query.record_type);
        question.set_query_class(query.class);
        message.add_query(question.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        edns.set_dnssec_ok(dnssec_ok);
        if nsid {
            let empty = NSIDPayload::new(Vec::new())
                .map_err(|e| FailReason::Io(format!("cannot build the NSID option: {e}")))?;
            edns.options_mut().insert(EdnsOption::NSID(empty));
        }
        message.set_edns(edns);
        let bytes = message.to_vec().map_err(|e| {
            FailReason::Io(format!("cannot encode the query for {}: {e}", query.name))
        })?;
        Ok(Self {
            bytes,
            id: message.metadata.id,
            question,
            payload,
        })
    }
}

/// A reply that is a reply to our query, and how long it took.
pub(crate) struct Reply {
    pub(crate) message: Message,
    pub(crate) latency: Duration,
}

/// A failed exchange, and how long it took to fail.
pub(crate) struct Failure {
    pub(crate) reason: FailReason,
    pub(crate) latency: Duration,
}

/// Sends `query` to `target` over `transport` (`Udp` or `Tcp`) and waits at most `timeout` in total.
pub(crate) async fn exchange(
    target: SocketAddr,
    transport: Transport,
    query: &PreparedQuery,
    timeout: Duration,
) -> Result<Reply, Failure> {
    let start = Instant::now();
    let deadline = start + timeout;
    let result = match transport {
        Transport::Tcp => tcp_exchange(target, query, deadline).await,
        Transport::Udp | Transport::Both => udp_exchange(target, query, deadline).await,
    };
    let latency = start.elapsed();
    match result {
        Ok(message) => Ok(Reply { message, latency }),
        Err(reason) => Err(Failure { reason, latency }),
    }
}

fn io_reason(e: &io::Error) -> FailReason {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => FailReason::ConnectionRefused,
        _ => FailReason::Io(e.to_string()),
    }
}

/// What a received message means for the exchange.
enum Verdict {
    /// Our reply.
    Ours(Message),
    /// Not attributable to our query (e.g. a stale reply with another ID): keep waiting on UDP.
    Stray(FailReason),
    /// A reply from the target that is broken: fail now.
    Broken(FailReason),
}

fn describe(q: &Query) -> String {
    format!("{} {} {}", q.name(), q.query_class(), q.query_type())
}

fn judge(buf: &[u8], query: &PreparedQuery) -> Verdict {
    if buf.len() < 12 {
        return Verdict::Broken(FailReason::Malformed(format!(
            "{} byte(s), shorter than the 12-byte DNS header",
            buf.len()
        )));
    }
    let message = match Message::from_vec(buf) {
        Ok(m) => m,
        Err(e) => {
            return Verdict::Broken(FailReason::Malformed(format!(
                "cannot parse {} bytes as a DNS message: {e}",
                buf.len()
            )));
        }
    };
    if message.metadata.id != query.id {
        return Verdict::Stray(FailReason::IdMismatch {
            expected: query.id,
            found: message.metadata.id,
        });
    }
    if message.metadata.message_type != MessageType::Response {
        return Verdict::Broken(FailReason::Malformed(
            "QR=0: the target sent a query, not a response".to_owned(),
        ));
    }
    let rcode_error = message.metadata.response_code != ResponseCode::NoError;
    let question_ok = match message.queries.as_slice() {
        [q] => {
            q.name() == query.question.name()
                && q.query_type() == query.question.query_type()
                && q.query_class() == query.question.query_class()
        }
        // Error replies (FORMERR, NOTIMP, ...) may legitimately omit the question.
        [] => rcode_error,
        _ => false,
    };
    if !question_ok {
        let found = match message.queries.as_slice() {
            [] => "(none)".to_owned(),
            qs => qs.iter().map(describe).collect::<Vec<_>>().join(", "),
        };
        return Verdict::Broken(FailReason::QuestionMismatch {
            expected: describe(&query.question),
            found,
        });
    }
    Verdict::Ours(message)
}

fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.ip().to_canonical() == b.ip().to_canonical() && a.port() == b.port()
}

/// Ask the kernel to report ICMP errors (port unreachable) on this unconnected socket, so a stopped
/// server is `ConnectionRefused` at once instead of a timeout. Best effort: without it we still time out.
fn enable_icmp_errors(socket: &UdpSocket, ipv4: bool) {
    use nix::sys::socket::{setsockopt, sockopt};
    let result = if ipv4 {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "IP_RECVERR not available; a stopped server will look like a timeout");
    }
}

fn unspecified_bind(target: SocketAddr) -> SocketAddr {
    if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    }
}

/// A fresh unconnected UDP socket for `target`'s address family, with ICMP errors enabled.
async fn fresh_udp_socket(target: SocketAddr) -> Result<UdpSocket, FailReason> {
    let socket = UdpSocket::bind(unspecified_bind(target))
        .await
        .map_err(|e| io_reason(&e))?;
    enable_icmp_errors(&socket, target.is_ipv4());
    Ok(socket)
}

/// One past the largest reply accepted for `query`, to notice a server that ignores our EDNS payload size.
fn reply_buffer_len(query: &PreparedQuery) -> usize {
    usize::from(query.payload.max(512)) + 1
}

/// UDP: an unconnected socket (so replies from other sources are seen and reported rather than dropped by
/// the kernel), IP_RECVERR for port-unreachable, and a receive loop that skips stray datagrams until the
/// deadline. If only stray datagrams arrived, the first one's reason is reported instead of `Timeout`.
async fn udp_exchange(
    target: SocketAddr,
    query: &PreparedQuery,
    deadline: Instant,
) -> Result<Message, FailReason> {
    let socket = fresh_udp_socket(target).await?;
    let mut buf = vec![0u8; reply_buffer_len(query)];
    udp_exchange_on(&socket, &mut buf, target, query, deadline)
        .await
        .result
}

/// The result of one UDP exchange on a given socket, and whether that socket may serve another query.
struct UdpOutcome {
    result: Result<Message, FailReason>,
    /// True only when our reply came back and nothing else arrived: any other ending (timeout, stray or
    /// broken datagram, socket error) may leave a late datagram queued that belongs to this exchange.
    reusable: bool,
}

/// How many times a UDP query is sent within its timeout: again after a third and after two thirds of it
/// when no reply came, the way resolvers retransmit. One lost datagram (query or reply) then costs latency
/// (which `slow_after` may see as a soft signal), not a failed probe: a server dropping 30 % of its queries
/// fails a probe about 3 % of the time instead of 30 %, so it degrades rather than flaps. A hung server
/// still fails at the same deadline.
pub(crate) const UDP_SENDS: u32 = 3;

/// The UDP exchange itself on `socket`, with `buf` at least [`reply_buffer_len`] bytes.
async fn udp_exchange_on(
    socket: &UdpSocket,
    buf: &mut [u8],
    target: SocketAddr,
    query: &PreparedQuery,
    deadline: Instant,
) -> UdpOutcome {
    let failed = |reason| UdpOutcome {
        result: Err(reason),
        reusable: false,
    };
    let start = Instant::now();
    let step = deadline.saturating_duration_since(start) / UDP_SENDS;
    let mut sends: u32 = 0;
    let mut next_send = start;
    let limit = reply_buffer_len(query) - 1;
    let buf = &mut buf[..=limit];
    let mut first_stray: Option<FailReason> = None;
    loop {
        if sends < UDP_SENDS && Instant::now() >= next_send {
            match timeout_at(deadline, socket.send_to(&query.bytes, target)).await {
                Err(_) => return failed(first_stray.unwrap_or(FailReason::Timeout)),
                Ok(Err(e)) => return failed(io_reason(&e)),
                Ok(Ok(_)) => {}
            }
            sends += 1;
            next_send = start + step * sends;
        }
        let wait_until = if sends < UDP_SENDS {
            next_send.min(deadline)
        } else {
            deadline
        };
        let received = match timeout_at(wait_until, socket.recv_from(buf)).await {
            Err(_) if wait_until < deadline => continue,
            Err(_) => return failed(first_stray.unwrap_or(FailReason::Timeout)),
            Ok(r) => r,
        };
        let (len, from) = match received {
            Ok(r) => r,
            Err(e) => return failed(io_reason(&e)),
        };
        if !same_endpoint(from, target) {
            first_stray.get_or_insert(FailReason::UnexpectedSource {
                expected: target,
                from,
            });
            continue;
        }
        if len > limit {
            return failed(FailReason::Malformed(format!(
                "UDP reply larger than the advertised EDNS payload of {limit} bytes"
            )));
        }
        match judge(&buf[..len], query) {
            Verdict::Ours(message) if message.metadata.truncation => {
                return failed(FailReason::Truncated);
            }
            Verdict::Ours(message) => {
                return UdpOutcome {
                    result: Ok(message),
                    // A resent query may still draw a late reply: such a socket is not reused.
                    reusable: first_stray.is_none() && sends == 1,
                };
            }
            Verdict::Broken(reason) => return failed(reason),
            Verdict::Stray(reason) => {
                first_stray.get_or_insert(reason);
            }
        }
    }
}

/// Most idle sockets a [`UdpPool`] keeps, whatever the sweep's concurrency. A pool should keep as many as
/// it has queries in flight, or every query above the idle count opens and closes a fresh socket: with 32,
/// half of a DNSSEC sweep's queries did (128 in flight), which cost it a fifth of its speed (BENCHMARKS.md,
/// part 7). 256 covers the default concurrencies with room; more in flight still works, with fresh sockets.
const MAX_IDLE_POOLED_SOCKETS: usize = 256;

/// An idle socket and its receive buffer.
struct PooledSocket {
    socket: UdpSocket,
    buf: Vec<u8>,
}

/// Reused UDP sockets for the many queries of a sweep to one server.
///
/// Why: a fresh socket per query costs about nine system calls (socket, setsockopt, bind, ..., close), most
/// of a sweep's CPU. A socket serves one exchange at a time (checked out, used, returned), with the same
/// ID, question, source and deadline checks as a fresh one, and is returned only when the exchange ended
/// cleanly with our reply and nothing else; any other socket is closed, so a late reply to a timed-out
/// query can never be read by the next query. Any datagram already queued on a returned socket is
/// discarded before the next query is sent. Checking out never waits: when no idle socket is left a fresh
/// one is opened, so the number of open sockets is bounded by the queries in flight plus the idle limit.
pub(crate) struct UdpPool {
    target: SocketAddr,
    idle: std::sync::Mutex<Vec<PooledSocket>>,
    max_idle: usize,
}

impl UdpPool {
    /// A pool for queries to `target` with up to `concurrency` queries in flight, keeping at most
    /// `min(concurrency, MAX_IDLE_POOLED_SOCKETS)` idle sockets.
    pub(crate) fn new(target: SocketAddr, concurrency: usize) -> Self {
        Self {
            target,
            idle: std::sync::Mutex::new(Vec::new()),
            max_idle: concurrency.clamp(1, MAX_IDLE_POOLED_SOCKETS),
        }
    }

    fn take_idle(&self) -> Option<PooledSocket> {
        // A poisoned lock only means another query panicked while holding it; the list is still valid.
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.pop()
    }

    fn give_back(&self, pooled: PooledSocket) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(pooled);
        }
    }

    /// Sends `query` to the pool's target over UDP on a pooled socket and waits at most `timeout`.
    pub(crate) async fn exchange(
        &self,
        query: &PreparedQuery,
        timeout: Duration,
    ) -> Result<Reply, Failure> {
        let start = Instant::now();
        let deadline = start + timeout;
        let (result, reusable, pooled) = match self.checkout().await {
            Err(reason) => (Err(reason), false, None),
            Ok(mut pooled) => {
                pooled.buf.resize(reply_buffer_len(query), 0);
                let outcome = udp_exchange_on(
                    &pooled.socket,
                    &mut pooled.buf,
                    self.target,
                    query,
                    deadline,
                )
                .await;
                (outcome.result, outcome.reusable, Some(pooled))
            }
        };
        let latency = start.elapsed();
        if let Some(pooled) = pooled.filter(|_| reusable) {
            self.give_back(pooled);
        }
        match result {
            Ok(message) => Ok(Reply { message, latency }),
            Err(reason) => Err(Failure { reason, latency }),
        }
    }

    /// An idle socket with nothing queued on it, or a fresh one.
    async fn checkout(&self) -> Result<PooledSocket, FailReason> {
        while let Some(mut pooled) = self.take_idle() {
            if drain(&mut pooled) {
                return Ok(pooled);
            }
        }
        Ok(PooledSocket {
            socket: fresh_udp_socket(self.target).await?,
            buf: Vec::new(),
        })
    }
}

/// Discards datagrams queued on an idle socket (e.g. a duplicated reply to its last query). The kernel is
/// asked directly (not tokio's cached readiness), so a datagram that arrived after the last exchange is
/// always seen. False when the socket reported an error, so the caller closes it instead.
fn drain(pooled: &mut PooledSocket) -> bool {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let fd = pooled.socket.as_raw_fd();
    loop {
        match recv(fd, &mut pooled.buf, MsgFlags::MSG_DONTWAIT) {
            Ok(_) => {}
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(_) => return false,
        }
    }
}

/// How filling a buffer from a stream ended.
enum Fill {
    Complete,
    Eof(usize),
    TimedOut(usize),
    Failed(io::Error),
}

async fn fill(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> Fill {
    let mut got = 0;
    while got < buf.len() {
        match timeout_at(deadline, stream.read(&mut buf[got..])).await {
            Err(_) => return Fill::TimedOut(got),
            Ok(Ok(0)) => return Fill::Eof(got),
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) => return Fill::Failed(e),
        }
    }
    Fill::Complete
}

/// TCP: a fresh connection, one length-prefixed query, one length-prefixed reply (RFC 1035 §4.2.2).
/// Anything but our reply fails at once: on a private connection there is nothing else to wait for.
async fn tcp_exchange(
    target: SocketAddr,
    query: &PreparedQuery,
    deadline: Instant,
) -> Result<Message, FailReason> {
    let mut stream = match timeout_at(deadline, TcpStream::connect(target)).await {
        Err(_) => return Err(FailReason::Timeout),
        Ok(Err(e)) => return Err(io_reason(&e)),
        Ok(Ok(s)) => s,
    };
    // Small request, one write: do not let Nagle delay it.
    stream.set_nodelay(true).map_err(|e| io_reason(&e))?;
    let len = u16::try_from(query.bytes.len())
        .map_err(|_| FailReason::Io("query longer than 65535 bytes".to_owned()))?;
    let mut framed = Vec::with_capacity(query.bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&query.bytes);
    match timeout_at(deadline, stream.write_all(&framed)).await {
        Err(_) => return Err(FailReason::Timeout),
        Ok(Err(e)) => return Err(io_reason(&e)),
        Ok(Ok(())) => {}
    }
    let mut prefix = [0u8; 2];
    match fill(&mut stream, &mut prefix, deadline).await {
        Fill::Complete => {}
        Fill::TimedOut(0) => return Err(FailReason::Timeout),
        Fill::Eof(0) => {
            return Err(FailReason::Malformed(
                "the target closed the TCP connection without replying".to_owned(),
            ));
        }
        Fill::TimedOut(n) | Fill::Eof(n) => {
            return Err(FailReason::PartialReply {
                announced: None,
                received: n,
            });
        }
        Fill::Failed(e) => return Err(io_reason(&e)),
    }
    let announced = u16::from_be_bytes(prefix);
    if announced == 0 {
        return Err(FailReason::Malformed(
            "TCP length prefix announces an empty message".to_owned(),
        ));
    }
    let mut body = vec![0u8; usize::from(announced)];
    match fill(&mut stream, &mut body, deadline).await {
        Fill::Complete => {}
        Fill::TimedOut(n) | Fill::Eof(n) => {
            return Err(FailReason::PartialReply {
                announced: Some(announced),
                received: n,
            });
        }
        Fill::Failed(e) => return Err(io_reason(&e)),
    }
    match judge(&body, query) {
        Verdict::Ours(message) => Ok(message),
        Verdict::Broken(reason) | Verdict::Stray(reason) => Err(reason),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::rr::{Name, RecordType};

    use super::*;

    fn soa_query(zone: &str) -> PreparedQuery {
        let name = Name::from_str(zone).expect("zone name");
        PreparedQuery::new(&QuerySpec::new(name, RecordType::SOA), 1232, false).expect("query")
    }

    fn idle_count(pool: &UdpPool) -> usize {
        pool.idle.lock().expect("lock").len()
    }

    /// Answers every query twice (a duplicated reply), except queries for `silent.`, which it ignores.
    async fn duplicating_responder() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let Ok(mut message) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                if message.queries[0].name().to_string() == "silent." {
                    continue;
                }
                message.metadata.message_type = MessageType::Response;
                message.metadata.authoritative = true;
                let reply = message.to_vec().expect("encode");
                for _ in 0..2 {
                    let _ = socket.send_to(&reply, from).await;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn pooled_socket_is_reused_after_a_clean_exchange_and_dropped_after_a_timeout() {
        let target = duplicating_responder().await;
        let pool = UdpPool::new(target, 128);
        let timeout = Duration::from_secs(2);

        let first = soa_query("a.test.");
        let reply = pool.exchange(&first, timeout).await.ok().expect("reply");
        assert_eq!(reply.message.metadata.id, first.id);
        assert_eq!(idle_count(&pool), 1, "a clean exchange returns its socket");
        let first_port = pool.idle.lock().expect("lock")[0]
            .socket
            .local_addr()
            .expect("addr");

        // Let the duplicate of the first reply land on the idle socket; the next query must not see it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = soa_query("b.test.");
        let reply = pool.exchange(&second, timeout).await.ok().expect("reply");
        assert_eq!(reply.message.metadata.id, second.id);
        assert_eq!(reply.message.queries[0].name(), second.question.name());
        assert_eq!(
            idle_count(&pool),
            1,
            "the drained socket was clean and returned"
        );
        let second_port = pool.idle.lock().expect("lock")[0]
            .socket
            .local_addr()
            .expect("addr");
        assert_eq!(
            first_port, second_port,
            "the same socket served both queries"
        );

        tokio::time::sleep(Duration::from_millis(100)).await;
        let silent = soa_query("silent.");
        let failure = pool
            .exchange(&silent, Duration::from_millis(200))
            .await
            .err()
            .expect("no reply");
        assert_eq!(failure.reason, FailReason::Timeout);
        assert_eq!(
            idle_count(&pool),
            0,
            "a timed-out socket is closed, not reused"
        );
    }

    #[tokio::test]
    async fn pool_keeps_at_most_its_idle_limit() {
        let target = duplicating_responder().await;
        let pool = UdpPool::new(target, 2);
        let queries: Vec<PreparedQuery> =
            (0..5).map(|i| soa_query(&format!("z{i}.test."))).collect();
        let replies = futures::future::join_all(
            queries
                .iter()
                .map(|q| pool.exchange(q, Duration::from_secs(2))),
        )
        .await;
        assert!(replies.iter().all(Result::is_ok));
        assert_eq!(idle_count(&pool), 2);
    }
}
