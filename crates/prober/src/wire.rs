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
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        let mut question = Query::query(query.name.clone(), query.record_type);
        question.set_query_class(query.class);
        message.add_query(question.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
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

/// UDP: an unconnected socket (so replies from other sources are seen and reported rather than dropped by
/// the kernel), IP_RECVERR for port-unreachable, and a receive loop that skips stray datagrams until the
/// deadline. If only stray datagrams arrived, the first one's reason is reported instead of `Timeout`.
async fn udp_exchange(
    target: SocketAddr,
    query: &PreparedQuery,
    deadline: Instant,
) -> Result<Message, FailReason> {
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await.map_err(|e| io_reason(&e))?;
    enable_icmp_errors(&socket, target.is_ipv4());
    match timeout_at(deadline, socket.send_to(&query.bytes, target)).await {
        Err(_) => return Err(FailReason::Timeout),
        Ok(Err(e)) => return Err(io_reason(&e)),
        Ok(Ok(_)) => {}
    }
    // One byte more than advertised, to notice a server that ignores our EDNS payload size.
    let limit = usize::from(query.payload.max(512));
    let mut buf = vec![0u8; limit + 1];
    let mut first_stray: Option<FailReason> = None;
    loop {
        let received = match timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Err(_) => return Err(first_stray.unwrap_or(FailReason::Timeout)),
            Ok(r) => r,
        };
        let (len, from) = received.map_err(|e| io_reason(&e))?;
        if !same_endpoint(from, target) {
            first_stray.get_or_insert(FailReason::UnexpectedSource {
                expected: target,
                from,
            });
            continue;
        }
        if len > limit {
            return Err(FailReason::Malformed(format!(
                "UDP reply larger than the advertised EDNS payload of {limit} bytes"
            )));
        }
        match judge(&buf[..len], query) {
            Verdict::Ours(message) if message.metadata.truncation => {
                return Err(FailReason::Truncated);
            }
            Verdict::Ours(message) => return Ok(message),
            Verdict::Broken(reason) => return Err(reason),
            Verdict::Stray(reason) => {
                first_stray.get_or_insert(reason);
            }
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
