//! Runs the `nsbeacon` binary under test with a generated config, and reads its JSON log back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nsbeacon_testkit::DaemonGuard;

use crate::BenchError;

/// A running nsbeacon (SIGTERM, then SIGKILL, on drop) with its config, state dir and log in a temp dir.
#[derive(Debug)]
pub struct Nsbeacon {
    /// Stopped first on drop.
    pub guard: DaemonGuard,
    dir: tempfile::TempDir,
}

impl Nsbeacon {
    /// Writes `config` (with `@STATE@` replaced by the state dir) and starts `binary -c CONFIG run`.
    /// Fails early, with the log, if `check-config` rejects the config or the process exits at once.
    pub fn start(binary: &Path, config: &str) -> Result<Nsbeacon, BenchError> {
        Nsbeacon::start_with_file(binary, config, "", "")
    }

    /// Like [`Nsbeacon::start`], with one extra file (e.g. a zones file) written next to the config first;
    /// an empty `file_name` writes none.
    pub fn start_with_file(
        binary: &Path,
        config: &str,
        file_name: &str,
        contents: &str,
    ) -> Result<Nsbeacon, BenchError> {
        Nsbeacon::launch(binary, config, file_name, contents, None)
    }

    /// Like [`Nsbeacon::start`], inside network namespace `netns` (`ip netns exec` keeps the PID).
    pub fn start_in_netns(
        binary: &Path,
        config: &str,
        netns: &str,
    ) -> Result<Nsbeacon, BenchError> {
        Nsbeacon::launch(binary, config, "", "", Some(netns))
    }

    fn launch(
        binary: &Path,
        config: &str,
        file_name: &str,
        contents: &str,
        netns: Option<&str>,
    ) -> Result<Nsbeacon, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("nsbeacon-bench-daemon-")
            .tempdir()
            .map_err(|e| BenchError::new(format!("temp dir: {e}")))?;
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state)
            .map_err(|e| BenchError::new(format!("create {}: {e}", state.display())))?;
        if !file_name.is_empty() {
            let extra = dir.path().join(file_name);
            std::fs::write(&extra, contents)
                .map_err(|e| BenchError::new(format!("write {}: {e}", extra.display())))?;
        }
        let text = config.replace("@STATE@", &state.display().to_string());
        let path = dir.path().join("nsbeacon.toml");
        std::fs::write(&path, &text)
            .map_err(|e| BenchError::new(format!("write {}: {e}", path.display())))?;
        let check = Command::new(binary)
            .arg("-c")
            .arg(&path)
            .arg("check-config")
            .output()
            .map_err(|e| BenchError::new(format!("run {} check-config: {e}", binary.display())))?;
        if !check.status.success() {
            return Err(BenchError::new(format!(
                "nsbeacon check-config rejects the benchmark config:\n{}{}\n--- config ---\n{text}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            )));
        }
        let mut cmd = match netns {
            Some(netns) => nsbeacon_testkit::netns::exec_in(netns, binary),
            None => Command::new(binary),
        };
        cmd.arg("-c").arg(&path).arg("run");
        cmd.env_remove("RUST_LOG");
        let log = dir.path().join("nsbeacon.log");
        let mut guard = DaemonGuard::spawn("nsbeacon", cmd, Some(&log));
        std::thread::sleep(Duration::from_millis(200));
        if !guard.is_running() {
            return Err(BenchError::new(format!(
                "nsbeacon exited at start; log:\n{}",
                guard.log()
            )));
        }
        Ok(Nsbeacon { guard, dir })
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("nsbeacon.log")
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        self.guard.is_running()
    }

    /// The log's JSON events so far (lines that do not parse are skipped).
    pub fn events(&self) -> Vec<LogEvent> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter_map(LogEvent::parse)
            .collect()
    }
}

/// `GET path` from nsbeacon's HTTP listener on 127.0.0.1:`port`; the body of a 200 reply.
pub fn http_get(port: u16, path: &str) -> Result<String, BenchError> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .map_err(|e| BenchError::new(format!("connect to nsbeacon's HTTP on port {port}: {e}")))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| BenchError::new(format!("socket: {e}")))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| BenchError::new(format!("send GET {path}: {e}")))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| BenchError::new(format!("read GET {path}: {e}")))?;
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| BenchError::new(format!("GET {path}: no HTTP header end")))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(BenchError::new(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    Ok(body.to_owned())
}

/// One line of nsbeacon's JSON log (`[log] format = "json"`), reduced to what the benchmarks need.
#[derive(Debug, Clone)]
pub struct LogEvent {
    /// The event's wall-clock time.
    pub at: SystemTime,
    /// `message`.
    pub message: String,
    /// Every other top-level string field (`to`, `signal`, `state`, ...).
    pub fields: Vec<(String, String)>,
}

impl LogEvent {
    /// Parses one JSON line; `None` if it is not a JSON object with a `timestamp` and a `message`.
    pub fn parse(line: &str) -> Option<LogEvent> {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let object = value.as_object()?;
        let at = parse_rfc3339(object.get("timestamp")?.as_str()?)?;
        let message = object.get("message")?.as_str()?.to_owned();
        let fields = object
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect();
        Some(LogEvent {
            at,
            message,
            fields,
        })
    }

    /// The value of a string field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `2026-11-23T16:50:01.123456Z` (UTC, as tracing-subscriber writes it; an offset is also accepted).
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let (date, rest) = text.split_once('T')?;
    let mut date_parts = date.split('-');
    let year: i64 = date_parts.next()?.parse().ok()?;
    let month: i64 = date_parts.next()?.parse().ok()?;
    let day: i64 = date_parts.next()?.parse().ok()?;
    let (time, offset_seconds) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0i64)
    } else {
        let split = rest.rfind(['+', '-'])?;
        let (t, off) = rest.split_at(split);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        (
            t,
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
        )
    };
    let mut time_parts = time.split(':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let seconds_text = time_parts.next()?;
    let (whole, fraction) = seconds_text.split_once('.').unwrap_or((seconds_text, "0"));
    let second: i64 = whole.parse().ok()?;
    let digits: String = fraction.chars().take(9).collect();
    let nanos: u32 = format!("{digits:0<9}").parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `b - a` in milliseconds, negative when `b` is earlier.
pub fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_to_unix_time() {
        let t = parse_rfc3339("2026-11-23T16:50:01.123456Z").expect("valid");
        let d = t.duration_since(UNIX_EPOCH).expect("after epoch");
        assert_eq!(d.as_secs(), 1_795_452_601);
        assert_eq!(d.subsec_micros(), 123_456);
        let offset = parse_rfc3339("2026-11-23T17:50:01+01:00").expect("offset");
        assert_eq!(
            offset.duration_since(UNIX_EPOCH).expect("after").as_secs(),
            1_795_452_601
        );
        assert!(parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn log_event_reads_flattened_fields() {
        let e = LogEvent::parse(
            r#"{"timestamp":"2026-11-23T16:50:01.5Z","level":"WARN","message":"service state changed","to":"down"}"#,
        )
        .expect("event");
        assert_eq!(e.message, "service state changed");
        assert_eq!(e.field("to"), Some("down"));
        assert!(LogEvent::parse("not json").is_none());
    }
}
