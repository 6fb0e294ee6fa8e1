//! `[service.load]`: the load signals (which server's statistics, the kernel counters, how often) and the
//! overload policy (thresholds, `absorb` or `withdraw`, `absorb_for`).

use std::net::SocketAddr;
use std::time::Duration;

use super::Validator;
use super::raw::RawLoad;
use crate::config::{
    DEFAULT_ABSORB_FOR, DEFAULT_BASELINE_WINDOW, DEFAULT_LOAD_INTERVAL, DEFAULT_LOAD_TIMEOUT_CAP,
    DEFAULT_MIN_QPS, DEFAULT_OVERLOAD_FACTOR, LoadConfig, LoadSource, OverloadPolicy,
};

/// Shortest `[service.load] interval`: each read costs a connection to the server.
const MIN_LOAD_INTERVAL: Duration = Duration::from_millis(100);
/// Longest `[service.load] interval`: an overload must be noticed while it lasts.
const MAX_LOAD_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest read timeout.
const MIN_LOAD_TIMEOUT: Duration = Duration::from_millis(10);
/// `absorb_for` bounds: at least a second, at most a day (a node broken for longer must withdraw).
const MIN_ABSORB_FOR: Duration = Duration::from_secs(1);
const MAX_ABSORB_FOR: Duration = Duration::from_secs(24 * 3600);
/// `baseline_window` bounds.
const MIN_BASELINE_WINDOW: Duration = Duration::from_secs(1);
const MAX_BASELINE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

impl Validator<'_> {
    /// `[service.load]` of the service at `path`; `Some(None)` without the table.
    pub(super) fn load(&mut self, path: &str, raw: Option<&RawLoad>) -> Option<Option<LoadConfig>> {
        let Some(raw) = raw else { return Some(None) };
        let path = format!("{path}.load");
        let source = self.load_source(&path, raw);
        let kernel = raw.kernel.unwrap_or(true);
        if matches!(source, Some(LoadSource::None)) && !kernel {
            self.issue(
                format!("{path}.source"),
                "source = \"none\" with kernel = false reads nothing",
                "name the DNS server (\"knot\", \"nsd\" or \"bind\"), keep kernel = true, or remove \
                 [service.load]",
            );
        }
        let interval = match raw.interval.as_deref() {
            None => Some(DEFAULT_LOAD_INTERVAL),
            Some(s) => self.duration_in(
                &format!("{path}.interval"),
                Some(s),
                MIN_LOAD_INTERVAL,
                MAX_LOAD_INTERVAL,
            ),
        };
        let timeout = match (raw.timeout.as_deref(), interval) {
            (None, interval) => {
                Some(DEFAULT_LOAD_TIMEOUT_CAP.min(interval.unwrap_or(DEFAULT_LOAD_INTERVAL)))
            }
            (Some(s), interval) => {
                let key = format!("{path}.timeout");
                let timeout =
                    self.duration_in(&key, Some(s), MIN_LOAD_TIMEOUT, MAX_LOAD_INTERVAL)?;
                if let Some(interval) = interval
                    && timeout > interval
                {
                    self.issue(
                        key,
                        format!(
                            "timeout {} is longer than the load interval {}",
                            super::fmt_duration(timeout),
                            super::fmt_duration(interval)
                        ),
                        "a read must end before the next one starts: use a timeout no longer than interval",
                    );
                    return None;
                }
                Some(timeout)
            }
        };
        let overload_factor = self.factor(&path, raw);
        let min_qps = self.non_negative(
            &format!("{path}.min_qps"),
            raw.min_qps.as_ref(),
            DEFAULT_MIN_QPS,
        );
        let max_qps = match raw.max_qps.as_ref() {
            None => Some(None),
            Some(v) => self
                .positive_number(&format!("{path}.max_qps"), Some(v), 0.0)
                .map(Some),
        };
        let max_udp_errors = match raw.max_udp_errors.as_ref() {
            None => Some(None),
            Some(v) => {
                let key = format!("{path}.max_udp_errors");
                if !kernel {
                    self.issue(
                        &key,
                        "max_udp_errors needs the kernel counters, but kernel = false",
                        "remove max_udp_errors, or set kernel = true",
                    );
                }
                if matches!(source, Some(LoadSource::None)) {
                    self.issue(
                        &key,
                        "max_udp_errors needs the DNS server's own statistics: receive errors alone \
                         cannot tell an overloaded server from a hung one (both overflow their socket \
                         buffer), so they count only while the server's query counter shows it serving",
                        "set source to \"knot\", \"nsd\" or \"bind\", or remove max_udp_errors",
                    );
                }
                self.positive_number(&key, Some(v), 0.0).map(Some)
            }
        };
        let baseline_window = match raw.baseline_window.as_deref() {
            None => Some(DEFAULT_BASELINE_WINDOW),
            Some(s) => self.duration_in(
                &format!("{path}.baseline_window"),
                Some(s),
                MIN_BASELINE_WINDOW,
                MAX_BASELINE_WINDOW,
            ),
        };
        let overload = self.overload_policy(&path, raw);
        Some(Some(LoadConfig {
            source: source?,
            kernel,
            interval: interval?,
            timeout: timeout?,
            overload_factor: overload_factor?,
            min_qps: min_qps?,
            max_qps: max_qps?,
            max_udp_errors: max_udp_errors?,
            baseline_window: baseline_window?,
            overload: overload?,
        }))
    }

    fn load_source(&mut self, path: &str, raw: &RawLoad) -> Option<LoadSource> {
        let key = format!("{path}.source");
        let Some(source) = raw.source.as_deref() else {
            self.issue(
                key,
                "[service.load] needs source",
                "name the DNS server whose statistics to read: source = \"knot\" (with socket), \"nsd\" \
                 (with socket), \"bind\" (with url), or \"none\" (kernel counters only)",
            );
            return None;
        };
        let socket_key = format!("{path}.socket");
        let url_key = format!("{path}.url");
        match source {
            "knot" | "nsd" => {
                if raw.url.is_some() {
                    self.issue(
                        &url_key,
                        format!("url is for source = \"bind\", not {source:?}"),
                        format!("{source} is read over its control socket: set socket, remove url"),
                    );
                }
                let example = if source == "knot" {
                    "/run/knot/knot.sock"
                } else {
                    "/run/nsd/nsd.ctl"
                };
                let Some(written) = raw.socket.as_deref() else {
                    self.issue(
                        socket_key,
                        format!("source = {source:?} needs socket"),
                        format!("name the server's control socket, e.g. socket = \"{example}\""),
                    );
                    return None;
                };
                let socket = self.absolute_path(&socket_key, Some(written))?;
                Some(if source == "knot" {
                    LoadSource::Knot { socket }
                } else {
                    LoadSource::Nsd { socket }
                })
            }
            "bind" => {
                if raw.socket.is_some() {
                    self.issue(
                        &socket_key,
                        "socket is for source = \"knot\" or \"nsd\", not \"bind\"",
                        "BIND is read over its statistics channel: set url, remove socket",
                    );
                }
                let Some(written) = raw.url.as_deref() else {
                    self.issue(
                        url_key,
                        "source = \"bind\" needs url",
                        "name BIND's statistics channel, e.g. url = \"http://127.0.0.1:8053/json/v1/server\"",
                    );
                    return None;
                };
                match parse_http_url(written) {
                    Some((addr, path)) => Some(LoadSource::Bind { addr, path }),
                    None => {
                        self.issue(
                            url_key,
                            format!("{written:?} is not an http:// URL with an IP address and port"),
                            "write e.g. \"http://127.0.0.1:8053/json/v1/server\" (no host names, no https: \
                             the statistics channel listens on loopback)",
                        );
                        None
                    }
                }
            }
            "none" => {
                for (key, set) in [
                    (socket_key, raw.socket.is_some()),
                    (url_key, raw.url.is_some()),
                ] {
                    if set {
                        self.issue(
                            key,
                            "source = \"none\" reads no server",
                            "remove it, or name the server in source",
                        );
                    }
                }
                Some(LoadSource::None)
            }
            other => {
                self.issue(
                    key,
                    format!("unknown load source {other:?}"),
                    "use \"knot\", \"nsd\", \"bind\" or \"none\"",
                );
                None
            }
        }
    }

    fn factor(&mut self, path: &str, raw: &RawLoad) -> Option<f64> {
        let key = format!("{path}.overload_factor");
        let factor =
            self.positive_number(&key, raw.overload_factor.as_ref(), DEFAULT_OVERLOAD_FACTOR)?;
        if factor <= 1.0 {
            self.issue(
                key,
                format!("{factor} is not above 1"),
                format!(
                    "overloaded means well above the usual rate: use e.g. {DEFAULT_OVERLOAD_FACTOR} (the default)"
                ),
            );
            return None;
        }
        Some(factor)
    }

    fn non_negative(&mut self, path: &str, raw: Option<&toml::Value>, default: f64) -> Option<f64> {
        let value = match raw {
            None => return Some(default),
            Some(toml::Value::Integer(n)) => *n as f64,
            Some(toml::Value::Float(f)) => *f,
            Some(other) => {
                self.issue(
                    path,
                    format!("{other} is not a number"),
                    format!("use a number of queries per second, 0 or more (default {default})"),
                );
                return None;
            }
        };
        if value.is_finite() && value >= 0.0 {
            Some(value)
        } else {
            self.issue(
                path,
                format!("{value} is negative"),
                format!("use a number of queries per second, 0 or more (default {default})"),
            );
            None
        }
    }

    fn overload_policy(&mut self, path: &str, raw: &RawLoad) -> Option<OverloadPolicy> {
        let absorb_for = match raw.absorb_for.as_deref() {
            None => Some(DEFAULT_ABSORB_FOR),
            Some(s) => self.duration_in(
                &format!("{path}.absorb_for"),
                Some(s),
                MIN_ABSORB_FOR,
                MAX_ABSORB_FOR,
            ),
        };
        match raw.overload.as_deref() {
            None | Some("absorb") => Some(OverloadPolicy::Absorb {
                absorb_for: absorb_for?,
            }),
            Some("withdraw") => {
                if raw.absorb_for.is_some() {
                    self.issue(
                        format!("{path}.absorb_for"),
                        "absorb_for has no effect with overload = \"withdraw\"",
                        "remove absorb_for, or set overload = \"absorb\"",
                    );
                    return None;
                }
                Some(OverloadPolicy::Withdraw)
            }
            Some(other) => {
                self.issue(
                    format!("{path}.overload"),
                    format!("unknown overload policy {other:?}"),
                    "use \"absorb\" (keep announcing, degraded, for up to absorb_for while overloaded; the \
                     default) or \"withdraw\" (failing probes withdraw, overload or not)",
                );
                None
            }
        }
    }
}

/// `http://IP:PORT/PATH` (IPv6 in brackets) into the address and the path (default `/json/v1/server`).
pub(crate) fn parse_http_url(url: &str) -> Option<(SocketAddr, String)> {
    let rest = url.trim().strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/json/v1/server"),
    };
    let addr: SocketAddr = authority.parse().ok()?;
    let path_ok = path.len() <= 1024
        && path
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'%');
    path_ok.then(|| (addr, path.to_owned()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{
        ConfigError, ConfigIssue, DEFAULT_ABSORB_FOR, LoadConfig, LoadSource, OverloadPolicy, parse,
    };

    fn config(load: &str) -> String {
        format!(
            r#"
[backend]
kind = "bird"

[[service]]
name = "dns"
announce = ["anycast_dns"]

[[service.check]]
name = "soa"
target = "127.0.0.1:53"
qname = "example.com"

[service.load]
{load}
"#
        )
    }

    fn ok(load: &str) -> LoadConfig {
        let parsed = parse(&config(load), "test.toml").unwrap_or_else(|e| panic!("{e}"));
        parsed.services[0].load.clone().expect("load")
    }

    fn issues(load: &str) -> Vec<ConfigIssue> {
        match parse(&config(load), "test.toml") {
            Err(ConfigError::Invalid(issues)) => issues,
            other => panic!("expected issues, got {other:?}"),
        }
    }

    fn has(issues: &[ConfigIssue], path: &str, needle: &str) {
        assert!(
            issues
                .iter()
                .any(|i| i.path == path && i.message.contains(needle)),
            "no issue at {path} containing {needle:?}: {issues:#?}"
        );
    }

    #[test]
    fn defaults_and_each_source() {
        let knot = ok(r#"source = "knot"
socket = "/run/knot/knot.sock""#);
        assert_eq!(
            knot.source,
            LoadSource::Knot {
                socket: "/run/knot/knot.sock".into()
            }
        );
        assert!(knot.kernel);
        assert_eq!(knot.interval, Duration::from_secs(1));
        assert_eq!(knot.timeout, Duration::from_millis(500));
        assert_eq!(knot.overload_factor, 10.0);
        assert_eq!(knot.min_qps, 100.0);
        assert_eq!(knot.max_qps, None);
        assert_eq!(knot.max_udp_errors, None);
        assert_eq!(knot.baseline_window, Duration::from_secs(600));
        assert_eq!(
            knot.overload,
            OverloadPolicy::Absorb {
                absorb_for: DEFAULT_ABSORB_FOR
            }
        );
        let nsd = ok(r#"source = "nsd"
socket = "/run/nsd/nsd.ctl"
interval = "200ms"
overload = "withdraw""#);
        assert_eq!(
            nsd.timeout,
            Duration::from_millis(200),
            "capped by the interval"
        );
        assert_eq!(nsd.overload, OverloadPolicy::Withdraw);
        let bind = ok(r#"source = "bind"
url = "http://127.0.0.1:8053/json/v1/server"
max_qps = 50000
max_udp_errors = 100.5
overload_factor = 20
min_qps = 0
absorb_for = "30m"
baseline_window = "1h""#);
        assert_eq!(
            bind.source,
            LoadSource::Bind {
                addr: "127.0.0.1:8053".parse().expect("addr"),
                path: "/json/v1/server".to_owned()
            }
        );
        assert_eq!(bind.max_qps, Some(50000.0));
        assert_eq!(bind.max_udp_errors, Some(100.5));
        assert_eq!(bind.min_qps, 0.0);
        assert_eq!(
            bind.overload,
            OverloadPolicy::Absorb {
                absorb_for: Duration::from_secs(1800)
            }
        );
        let ipv6 = ok(r#"source = "bind"
url = "http://[::1]:8053""#);
        assert!(
            matches!(ipv6.source, LoadSource::Bind { ref path, .. } if path == "/json/v1/server")
        );
        let kernel = ok(r#"source = "none""#);
        assert_eq!(kernel.source, LoadSource::None);
    }

    #[test]
    fn every_mistake_is_named_with_its_key() {
        has(&issues(""), "service[0].load.source", "needs source");
        has(
            &issues(r#"source = "unbound""#),
            "service[0].load.source",
            "unknown load source",
        );
        has(
            &issues(r#"source = "knot""#),
            "service[0].load.socket",
            "needs socket",
        );
        has(
            &issues(
                r#"source = "nsd"
socket = "nsd.ctl""#,
            ),
            "service[0].load.socket",
            "absolute",
        );
        has(
            &issues(r#"source = "bind""#),
            "service[0].load.url",
            "needs url",
        );
        for url in [
            "https://127.0.0.1:8053/",
            "http://localhost:8053/",
            "http://127.0.0.1/",
        ] {
            has(
                &issues(&format!("source = \"bind\"\nurl = \"{url}\"")),
                "service[0].load.url",
                "not an http:// URL",
            );
        }
        has(
            &issues(
                r#"source = "bind"
url = "http://127.0.0.1:8053/"
socket = "/run/x""#,
            ),
            "service[0].load.socket",
            "not \"bind\"",
        );
        has(
            &issues(
                r#"source = "none"
kernel = false"#,
            ),
            "service[0].load.source",
            "reads nothing",
        );
        let many = issues(
            r#"source = "none"
interval = "10ms"
overload_factor = 1
min_qps = -1
max_qps = "lots"
overload = "ignore"
baseline_window = "0s""#,
        );
        has(&many, "service[0].load.interval", "out of range");
        has(&many, "service[0].load.overload_factor", "not above 1");
        has(&many, "service[0].load.min_qps", "negative");
        has(&many, "service[0].load.max_qps", "not a number");
        has(&many, "service[0].load.overload", "unknown overload policy");
        has(&many, "service[0].load.baseline_window", "out of range");
        has(
            &issues(
                r#"source = "none"
interval = "1s"
timeout = "2s""#,
            ),
            "service[0].load.timeout",
            "longer than the load interval",
        );
        has(
            &issues(
                r#"source = "none"
max_udp_errors = 10"#,
            ),
            "service[0].load.max_udp_errors",
            "cannot tell an overloaded server from a hung one",
        );
        has(
            &issues(
                r#"source = "none"
overload = "withdraw"
absorb_for = "1m""#,
            ),
            "service[0].load.absorb_for",
            "no effect",
        );
        has(
            &issues(
                r#"source = "knot"
socket = "/run/knot/knot.sock"
kernel = false
max_udp_errors = 10"#,
            ),
            "service[0].load.max_udp_errors",
            "kernel = false",
        );
        // Unknown keys stop at the syntax stage, with the key named.
        match parse(&config("source = \"knot\"\nsockt = \"/x\""), "test.toml") {
            Err(e) => assert!(e.to_string().contains("sockt"), "{e}"),
            Ok(_) => panic!("a misspelled key was accepted"),
        }
    }
}
