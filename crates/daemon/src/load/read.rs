//! The statistics readers: one bounded exchange each, and a parser per reply that turns anything
//! unexpected into a [`ReadError`] (never a panic, never a made-up number).
//!
//! - Knot: its control protocol over the control socket, spoken directly (what `knotc stats
//!   mod-stats.request-protocol` sends); a process per second would cost more CPU than everything else
//!   nsbeacon does. Needs `mod-stats` as a global module.
//! - NSD: `NSDCT1 stats_noreset` over a unix `control-interface:` socket (what `nsd-control
//!   stats_noreset` sends; a unix control socket uses no TLS), `num.queries=`.
//! - BIND: `GET /json/v1/server` from the statistics channel, the sum of `opcodes`.
//! - The kernel: `/proc/net/snmp`, the `Udp:` rows.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Largest reply read from Knot or NSD (their statistics are a few KiB).
const CONTROL_REPLY_LIMIT: usize = 1024 * 1024;
/// Largest reply read from BIND's statistics channel (`/json/v1/server` is a few KiB; zone statistics
/// make it larger).
const HTTP_REPLY_LIMIT: usize = 8 * 1024 * 1024;
/// Largest `/proc/net/snmp` accepted (it is about 1.5 KiB).
const SNMP_LIMIT: usize = 64 * 1024;

/// Why a read gave no load signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Connecting, writing or reading failed.
    #[error("{what}: {error}")]
    Io {
        /// Which exchange.
        what: String,
        /// The error.
        error: String,
    },
    /// The exchange did not finish within the timeout.
    #[error("{what}: no complete reply within {timeout:?}")]
    Timeout {
        /// Which exchange.
        what: String,
        /// The bound.
        timeout: Duration,
    },
    /// The reply was not what the server sends.
    #[error("{what}: {problem}")]
    Garbage {
        /// Which exchange.
        what: String,
        /// What was wrong with it.
        problem: String,
    },
    /// The server answered with an error of its own.
    #[error("{what}: the server answered {message:?}")]
    Refused {
        /// Which exchange.
        what: String,
        /// Its message.
        message: String,
    },
}

fn garbage(what: &str, problem: impl Into<String>) -> ReadError {
    ReadError::Garbage {
        what: what.to_owned(),
        problem: problem.into(),
    }
}

fn io(what: &str, error: std::io::Error) -> ReadError {
    ReadError::Io {
        what: what.to_owned(),
        error: error.to_string(),
    }
}

/// Runs `exchange` within `timeout`.
async fn bounded<T>(
    what: &str,
    timeout: Duration,
    exchange: impl std::future::Future<Output = Result<T, ReadError>>,
) -> Result<T, ReadError> {
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(ReadError::Timeout {
                what: what.to_owned(),
                timeout,
            })
        })
}

/// Reads until EOF or `limit` bytes (more is an error).
async fn read_to_end_limited<R: AsyncReadExt + Unpin>(
    what: &str,
    reader: &mut R,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut chunk).await.map_err(|e| io(what, e))?;
        if n == 0 {
            return Ok(reply);
        }
        if reply.len() + n > limit {
            return Err(garbage(what, format!("reply longer than {limit} bytes")));
        }
        reply.extend_from_slice(&chunk[..n]);
    }
}

// ---- Knot ---------------------------------------------------------------------------------------------

/// Knot control unit types.
const KNOT_END: u8 = 0;
const KNOT_DATA: u8 = 1;
const KNOT_EXTRA: u8 = 2;
const KNOT_BLOCK: u8 = 3;
/// Item codes are 16 + the item's index: command 0, error 2, section 3, item 4, id 5, data 10.
const KNOT_ITEM_BASE: u8 = 16;
const KNOT_IDX_CMD: u8 = 0;
const KNOT_IDX_ERROR: u8 = 2;
const KNOT_IDX_SECTION: u8 = 3;
const KNOT_IDX_ITEM: u8 = 4;
const KNOT_IDX_ID: u8 = 5;
const KNOT_IDX_DATA: u8 = 10;
/// Item codes Knot 3.x defines (16 + 0..=11 and later additions); anything above is not an item.
const KNOT_ITEM_MAX: u8 = KNOT_ITEM_BASE + 31;

/// The request: a data unit with the `stats` command, section `mod-stats`, item `request-protocol`,
/// then the end of the block.
fn knot_request() -> Vec<u8> {
    let mut out = vec![KNOT_DATA];
    for (idx, value) in [
        (KNOT_IDX_CMD, "stats"),
        (KNOT_IDX_SECTION, "mod-stats"),
        (KNOT_IDX_ITEM, "request-protocol"),
    ] {
        out.push(KNOT_ITEM_BASE + idx);
        // The values are constants far shorter than u16::MAX.
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.push(KNOT_BLOCK);
    out
}

/// One parsed Knot data unit: its items by index.
#[derive(Debug, Default)]
struct KnotUnit {
    items: Vec<(u8, String)>,
}

impl KnotUnit {
    fn get(&self, idx: u8) -> Option<&str> {
        self.items
            .iter()
            .find(|(i, _)| *i == idx)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a reply up to the end of its block. `Ok(None)`: incomplete, read more.
fn parse_knot_units(buf: &[u8]) -> Result<Option<Vec<KnotUnit>>, String> {
    let mut units = Vec::new();
    let mut pos = 0;
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        pos += 1;
        match kind {
            KNOT_BLOCK | KNOT_END => return Ok(Some(units)),
            KNOT_DATA | KNOT_EXTRA => {
                let mut unit = KnotUnit::default();
                loop {
                    let Some(&code) = buf.get(pos) else {
                        return Ok(None);
                    };
                    if code < KNOT_ITEM_BASE {
                        break;
                    }
                    if code > KNOT_ITEM_MAX {
                        return Err(format!(
                            "byte {code:#04x} at offset {pos} is no unit or item code"
                        ));
                    }
                    let Some(len) = buf.get(pos + 1..pos + 3) else {
                        return Ok(None);
                    };
                    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                    let Some(value) = buf.get(pos + 3..pos + 3 + len) else {
                        return Ok(None);
                    };
                    let value = std::str::from_utf8(value)
                        .map_err(|_| format!("item at offset {pos} is not UTF-8"))?;
                    unit.items.push((code - KNOT_ITEM_BASE, value.to_owned()));
                    pos += 3 + len;
                }
                if kind == KNOT_DATA {
                    units.push(unit);
                }
            }
            other => {
                return Err(format!(
                    "byte {other:#04x} at offset {} is no unit type",
                    pos - 1
                ));
            }
        }
    }
}

/// The requests Knot counted (`mod-stats.request-protocol`, summed over protocols) from a parsed reply.
fn knot_requests(units: &[KnotUnit]) -> Result<u64, ReadError> {
    const WHAT: &str = "knot stats";
    if let Some(error) = units.iter().find_map(|u| u.get(KNOT_IDX_ERROR)) {
        return Err(ReadError::Refused {
            what: WHAT.to_owned(),
            message: format!(
                "{error} (is mod-stats loaded as a global module? template: global-module: mod-stats)"
            ),
        });
    }
    let mut total: u64 = 0;
    let mut rows = 0;
    for unit in units {
        if unit.get(KNOT_IDX_SECTION) != Some("mod-stats")
            || unit.get(KNOT_IDX_ITEM) != Some("request-protocol")
        {
            continue;
        }
        let data = unit.get(KNOT_IDX_DATA).unwrap_or("");
        let value: u64 = data.trim().parse().map_err(|_| {
            garbage(
                WHAT,
                format!(
                    "request-protocol[{}] = {data:?} is not a counter",
                    unit.get(KNOT_IDX_ID).unwrap_or("?")
                ),
            )
        })?;
        total = total.saturating_add(value);
        rows += 1;
    }
    if rows == 0 && units.is_empty() {
        // Knot leaves zero counters out: a server that has not answered anything yet.
        return Ok(0);
    }
    if rows == 0 {
        return Err(garbage(
            WHAT,
            "no mod-stats.request-protocol counters in the reply (load mod-stats as a global module)",
        ));
    }
    Ok(total)
}

/// The requests Knot has counted, over its control socket.
pub async fn read_knot(socket: &Path, timeout: Duration) -> Result<u64, ReadError> {
    const WHAT: &str = "knot stats";
    bounded(WHAT, timeout, async {
        let mut stream = UnixStream::connect(socket).await.map_err(|e| {
            io(
                WHAT,
                std::io::Error::new(e.kind(), format!("connect {}: {e}", socket.display())),
            )
        })?;
        stream
            .write_all(&knot_request())
            .await
            .map_err(|e| io(WHAT, e))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8 * 1024];
        let units = loop {
            let n = stream.read(&mut chunk).await.map_err(|e| io(WHAT, e))?;
            if n == 0 {
                return Err(garbage(WHAT, "the server closed the connection mid-reply"));
            }
            if buf.len() + n > CONTROL_REPLY_LIMIT {
                return Err(garbage(
                    WHAT,
                    format!("reply longer than {CONTROL_REPLY_LIMIT} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            match parse_knot_units(&buf) {
                Ok(Some(units)) => break units,
                Ok(None) => {}
                Err(problem) => return Err(garbage(WHAT, problem)),
            }
        };
        // Tell Knot the session is over, as knotc does; it closes either way.
        let _ = stream.write_all(&[KNOT_END]).await;
        knot_requests(&units)
    })
    .await
}

// ---- NSD ----------------------------------------------------------------------------------------------

/// `num.queries` from an NSD `stats_noreset` reply.
pub fn parse_nsd_stats(reply: &str) -> Result<u64, ReadError> {
    const WHAT: &str = "nsd stats_noreset";
    let first = reply.lines().next().unwrap_or("");
    if first.starts_with("error") {
        return Err(ReadError::Refused {
            what: WHAT.to_owned(),
            message: first.to_owned(),
        });
    }
    for line in reply.lines() {
        if let Some(value) = line.strip_prefix("num.queries=") {
            return value
                .trim()
                .parse()
                .map_err(|_| garbage(WHAT, format!("num.queries={value:?} is not a counter")));
        }
    }
    Err(garbage(
        WHAT,
        format!(
            "no num.queries line in the reply (first line {:?})",
            first.chars().take(80).collect::<String>()
        ),
    ))
}

/// The queries NSD has counted, over its unix control socket.
pub async fn read_nsd(socket: &Path, timeout: Duration) -> Result<u64, ReadError> {
    const WHAT: &str = "nsd stats_noreset";
    bounded(WHAT, timeout, async {
        let mut stream = UnixStream::connect(socket).await.map_err(|e| {
            io(
                WHAT,
                std::io::Error::new(e.kind(), format!("connect {}: {e}", socket.display())),
            )
        })?;
        stream
            .write_all(b"NSDCT1 stats_noreset\n")
            .await
            .map_err(|e| io(WHAT, e))?;
        let reply = read_to_end_limited(WHAT, &mut stream, CONTROL_REPLY_LIMIT).await?;
        let text = std::str::from_utf8(&reply).map_err(|_| garbage(WHAT, "reply is not UTF-8"))?;
        parse_nsd_stats(text)
    })
    .await
}

// ---- BIND ---------------------------------------------------------------------------------------------

/// The requests BIND counted (the sum of `opcodes`) from a statistics-channel HTTP reply.
pub fn parse_bind_reply(reply: &[u8]) -> Result<u64, ReadError> {
    const WHAT: &str = "bind statistics channel";
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| garbage(WHAT, "no end of the HTTP headers in the reply"))?;
    let head = std::str::from_utf8(&reply[..split])
        .map_err(|_| garbage(WHAT, "HTTP headers are not UTF-8"))?;
    let body = &reply[split + 4..];
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(garbage(
            WHAT,
            format!("{status_line:?} is not an HTTP status line"),
        ));
    }
    if code != "200" {
        return Err(ReadError::Refused {
            what: WHAT.to_owned(),
            message: status_line.to_owned(),
        });
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        return Err(garbage(
            WHAT,
            "chunked replies are not read (BIND sends Content-Length)",
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        garbage(
            WHAT,
            format!("the body is not JSON ({e}); is the URL /json/v1/server?"),
        )
    })?;
    let opcodes = doc
        .get("opcodes")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| {
            garbage(
                WHAT,
                "no \"opcodes\" object in the JSON (use /json/v1/server)",
            )
        })?;
    let mut total: u64 = 0;
    for (name, value) in opcodes {
        let n = value
            .as_u64()
            .ok_or_else(|| garbage(WHAT, format!("opcodes.{name} = {value} is not a counter")))?;
        total = total.saturating_add(n);
    }
    Ok(total)
}

/// The requests BIND has counted, from its statistics channel at `addr`/`path`.
pub async fn read_bind(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u64, ReadError> {
    const WHAT: &str = "bind statistics channel";
    bounded(WHAT, timeout, async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| {
            io(
                WHAT,
                std::io::Error::new(e.kind(), format!("connect {addr}: {e}")),
            )
        })?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| io(WHAT, e))?;
        let reply = read_to_end_limited(WHAT, &mut stream, HTTP_REPLY_LIMIT).await?;
        parse_bind_reply(&reply)
    })
    .await
}

// ---- the kernel ---------------------------------------------------------------------------------------

/// The kernel's UDP receive error counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpCounters {
    /// `InErrors`: datagrams not delivered for any reason other than a closed port (includes
    /// `RcvbufErrors`).
    pub in_errors: u64,
    /// `RcvbufErrors`: datagrams dropped because a socket's receive buffer was full.
    pub rcvbuf_errors: u64,
}

/// The `Udp:` counters of a `/proc/net/snmp` text.
pub fn parse_snmp(text: &str) -> Result<UdpCounters, ReadError> {
    const WHAT: &str = "/proc/net/snmp";
    let mut rows = text.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (rows.next(), rows.next()) else {
        return Err(garbage(WHAT, "no pair of Udp: lines"));
    };
    let names: Vec<&str> = names.split_whitespace().skip(1).collect();
    let values: Vec<&str> = values.split_whitespace().skip(1).collect();
    if names.len() != values.len() {
        return Err(garbage(
            WHAT,
            format!("{} Udp: names but {} values", names.len(), values.len()),
        ));
    }
    let get = |want: &str| -> Result<u64, ReadError> {
        let i = names
            .iter()
            .position(|n| *n == want)
            .ok_or_else(|| garbage(WHAT, format!("no Udp: {want} counter")))?;
        values[i].parse().map_err(|_| {
            garbage(
                WHAT,
                format!("Udp: {want} = {:?} is not a counter", values[i]),
            )
        })
    };
    Ok(UdpCounters {
        in_errors: get("InErrors")?,
        rcvbuf_errors: get("RcvbufErrors")?,
    })
}

/// The UDP counters of the network namespace nsbeacon runs in.
///
/// Read in place, not on the blocking pool: `/proc/net/snmp` is generated by the kernel from counters in
/// memory (no disk, no lock held by anything nsbeacon waits for), and handing it to another thread every
/// second cost more than the read itself. A read that took longer than `timeout` anyway is reported as
/// a timeout, so a stalled kernel is visible rather than silently trusted.
pub async fn read_kernel(timeout: Duration) -> Result<UdpCounters, ReadError> {
    const WHAT: &str = "/proc/net/snmp";
    let started = std::time::Instant::now();
    let mut bytes = Vec::new();
    let file = std::fs::File::open("/proc/net/snmp").map_err(|e| io(WHAT, e))?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, SNMP_LIMIT as u64 + 1),
        &mut bytes,
    )
    .map_err(|e| io(WHAT, e))?;
    if started.elapsed() > timeout {
        return Err(ReadError::Timeout {
            what: WHAT.to_owned(),
            timeout,
        });
    }
    if bytes.len() > SNMP_LIMIT {
        return Err(garbage(WHAT, format!("longer than {SNMP_LIMIT} bytes")));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| garbage(WHAT, "not UTF-8"))?;
    parse_snmp(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(idx: u8, value: &str) -> Vec<u8> {
        let mut out = vec![KNOT_ITEM_BASE + idx];
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
        out
    }

    fn stat_unit(id: &str, value: &str) -> Vec<u8> {
        let mut out = vec![KNOT_DATA];
        out.extend(item(KNOT_IDX_SECTION, "mod-stats"));
        out.extend(item(KNOT_IDX_ITEM, "request-protocol"));
        out.extend(item(KNOT_IDX_ID, id));
        out.extend(item(KNOT_IDX_DATA, value));
        out
    }

    #[test]
    fn knot_reply_sums_protocols_and_needs_its_whole_block() {
        let mut reply = stat_unit("udp4", "1200");
        reply.extend(stat_unit("tcp4", "34"));
        reply.push(KNOT_BLOCK);
        for cut in 0..reply.len() {
            assert!(
                matches!(parse_knot_units(&reply[..cut]), Ok(None)),
                "a reply cut at {cut} is incomplete, not an answer"
            );
        }
        let units = parse_knot_units(&reply).expect("parses").expect("complete");
        assert_eq!(knot_requests(&units), Ok(1234));
        // A value byte equal to the block code inside an item does not end the reply early.
        let mut tricky = stat_unit("udp4", "\u{3}");
        tricky.push(KNOT_BLOCK);
        let units = parse_knot_units(&tricky)
            .expect("parses")
            .expect("complete");
        assert!(matches!(
            knot_requests(&units),
            Err(ReadError::Garbage { .. })
        ));
    }

    #[test]
    fn knot_errors_and_garbage_are_errors() {
        let mut error = vec![KNOT_DATA];
        error.extend(item(KNOT_IDX_ERROR, "invalid parameter"));
        error.push(KNOT_BLOCK);
        let units = parse_knot_units(&error).expect("parses").expect("complete");
        let e = knot_requests(&units).expect_err("error");
        assert!(e.to_string().contains("mod-stats"), "{e}");
        assert!(parse_knot_units(&[0x07, 0x01]).is_err());
        assert!(parse_knot_units(&[KNOT_DATA, 0xff]).is_err());
        // Other rows only: mod-stats is not loaded.
        let mut other = vec![KNOT_DATA];
        other.extend(item(KNOT_IDX_SECTION, "server"));
        other.extend(item(KNOT_IDX_ITEM, "zone-count"));
        other.extend(item(KNOT_IDX_DATA, "1"));
        other.push(KNOT_BLOCK);
        let units = parse_knot_units(&other).expect("parses").expect("complete");
        assert!(knot_requests(&units).is_err());
        // Nothing at all: nothing counted yet.
        let units = parse_knot_units(&[KNOT_BLOCK])
            .expect("parses")
            .expect("complete");
        assert_eq!(knot_requests(&units), Ok(0));
    }

    #[test]
    fn nsd_reply_gives_num_queries() {
        let reply = "server0.queries=7\nnum.queries=7\ntime.boot=1.04\n";
        assert_eq!(parse_nsd_stats(reply), Ok(7));
        assert!(matches!(
            parse_nsd_stats("error unknown command 'stats_noreset'\n"),
            Err(ReadError::Refused { .. })
        ));
        assert!(matches!(
            parse_nsd_stats(""),
            Err(ReadError::Garbage { .. })
        ));
        assert!(matches!(
            parse_nsd_stats("num.queries=lots\n"),
            Err(ReadError::Garbage { .. })
        ));
    }

    #[test]
    fn bind_reply_sums_opcodes() {
        let body = r#"{"opcodes":{"QUERY":40,"NOTIFY":2,"UPDATE":0},"nsstats":{"Requestv4":42}}"#;
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(parse_bind_reply(reply.as_bytes()), Ok(42));
        let missing = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(
            parse_bind_reply(missing.as_bytes()),
            Err(ReadError::Refused { .. })
        ));
        for bad in [
            "HTTP/1.1 200 OK\r\n\r\n<statistics/>",
            "HTTP/1.1 200 OK\r\n\r\n{\"opcodes\":{\"QUERY\":-1}}",
            "HTTP/1.1 200 OK\r\n\r\n{}",
            "garbage",
            "SSH-2.0-OpenSSH\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_bind_reply(bad.as_bytes()),
                    Err(ReadError::Garbage { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn snmp_udp_rows() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 565319 33227 12 603171 10 0\n\
                    UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    UdpLite: 0 0 0 0 0 0\n";
        assert_eq!(
            parse_snmp(text),
            Ok(UdpCounters {
                in_errors: 12,
                rcvbuf_errors: 10
            })
        );
        assert!(parse_snmp("Udp: InErrors\n").is_err());
        assert!(parse_snmp("Udp: InErrors RcvbufErrors\nUdp: 1\n").is_err());
        assert!(parse_snmp("Udp: InErrors RcvbufErrors\nUdp: 1 x\n").is_err());
    }
}
