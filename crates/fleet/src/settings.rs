//! Typed settings of one fleet member, checked before anything talks to etcd.
//!
//! The daemon maps its own `[fleet]` config section onto these; this crate reads no files itself, so the
//! daemon's bounded file reads stay the only way a config-named file is read (TLS material and passwords
//! arrive here as their contents).

use std::fmt;
use std::time::Duration;

use etcd_client::ConnectOptions;

use crate::error::SettingsError;
use crate::keys::check_name;

/// The default key prefix: every fleet lives under `/nsbeacon/<fleet>/`.
pub const DEFAULT_PREFIX: &str = "/nsbeacon";
/// The default lease TTL: a node that dies leaves the fleet view after 10 s.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);
/// The default bound on one etcd call (outside the guard, which has its own, shorter bound).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default bound on a whole guard decision: a withdrawal waits at most this long for etcd.
pub const DEFAULT_GUARD_TIMEOUT: Duration = Duration::from_millis(200);
/// How often HTTP/2 pings check an idle connection. etcd refuses pings more often than every 5 s
/// (`--grpc-keepalive-min-time`) with a GOAWAY, so stay above that.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(6);

/// Everything a [`Member`](crate::Member) or [`FleetClient`](crate::FleetClient) needs.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// etcd client URLs (`http://` or `https://`, all the same scheme). The client balances over them.
    pub endpoints: Vec<String>,
    /// The key prefix all fleets share (default `/nsbeacon`), so one etcd can hold other data too.
    pub prefix: String,
    /// The fleet's name: nodes with the same name count each other. One key path segment.
    pub fleet: String,
    /// This node's name in the fleet (the daemon defaults it to the host name). One key path segment.
    pub node: String,
    /// The lease TTL, whole seconds (etcd's granularity): how long a dead node's records outlive it.
    pub lease_ttl: Duration,
    /// The bound on each etcd call (connect, grant, keep-alive, put, read).
    pub timeout: Duration,
    /// The bound on a whole [`Member::try_withdraw`](crate::Member::try_withdraw), retries included.
    pub guard_timeout: Duration,
    /// TLS to etcd, for `https://` endpoints.
    pub tls: Option<TlsSettings>,
    /// etcd user and password (etcd's own authentication), if etcd has auth enabled.
    pub auth: Option<Credentials>,
    /// The version written into every record (the daemon passes nsbeacon's; it defaults to this crate's).
    pub version: String,
}

impl FleetSettings {
    /// Settings with every default: prefix `/nsbeacon`, lease TTL 10 s, call timeout 1 s, guard bound 200 ms,
    /// no TLS, no auth.
    pub fn new(endpoints: Vec<String>, fleet: &str, node: &str) -> FleetSettings {
        FleetSettings {
            endpoints,
            prefix: DEFAULT_PREFIX.to_owned(),
            fleet: fleet.to_owned(),
            node: node.to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
            timeout: DEFAULT_TIMEOUT,
            guard_timeout: DEFAULT_GUARD_TIMEOUT,
            tls: None,
            auth: None,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// Checks everything that can be checked without etcd. The daemon's config validation reports the same
    /// problems with line numbers first; this is the crate's own guarantee.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.endpoints.is_empty() {
            return Err(SettingsError::NoEndpoints);
        }
        let mut https = 0;
        for endpoint in &self.endpoints {
            let rest = if let Some(rest) = endpoint.strip_prefix("https://") {
                https += 1;
                rest
            } else if let Some(rest) = endpoint.strip_prefix("http://") {
                rest
            } else {
                return Err(SettingsError::BadEndpoint(endpoint.clone()));
            };
            if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
                return Err(SettingsError::BadEndpoint(endpoint.clone()));
            }
        }
        if https != 0 && https != self.endpoints.len() {
            return Err(SettingsError::MixedSchemes);
        }
        match (&self.tls, https != 0) {
            (Some(_), false) => return Err(SettingsError::TlsWithHttp),
            (None, true) => return Err(SettingsError::HttpsWithoutCa),
            (Some(tls), true) => {
                if tls.ca_pem.is_none() {
                    return Err(SettingsError::HttpsWithoutCa);
                }
                if tls.cert_pem.is_some() != tls.key_pem.is_some() {
                    return Err(SettingsError::HalfIdentity);
                }
            }
            (None, false) => {}
        }
        let prefix = self.prefix.trim_end_matches('/');
        if !prefix.starts_with('/')
            || prefix.contains("//")
            || prefix.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(SettingsError::BadName {
                what: "key prefix",
                value: self.prefix.clone(),
            });
        }
        check_name("fleet name", &self.fleet)?;
        check_name("node name", &self.node)?;
        if self.lease_ttl < Duration::from_secs(1) || self.lease_ttl.subsec_nanos() != 0 {
            return Err(SettingsError::BadDuration {
                what: "lease_ttl",
                value: self.lease_ttl,
                hint: "etcd leases count whole seconds: use 1s or more, in whole seconds",
            });
        }
        for (what, value) in [
            ("timeout", self.timeout),
            ("guard_timeout", self.guard_timeout),
        ] {
            if value.is_zero() {
                return Err(SettingsError::BadDuration {
                    what,
                    value,
                    hint: "a zero bound fails every call: use e.g. 200ms",
                });
            }
        }
        Ok(())
    }

    /// The endpoints as one string for error messages.
    pub(crate) fn endpoints_text(&self) -> String {
        self.endpoints.join(",")
    }

    /// The lease TTL in etcd's unit (whole seconds, at least 1).
    pub(crate) fn lease_ttl_secs(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_secs())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    /// The etcd client's options: per-request and connect timeouts, HTTP/2 keep-alive (so a dead peer is
    /// noticed even without a call), a leader required (a member without quorum fails the call at once
    /// instead of holding it), TLS and auth.
    pub(crate) fn connect_options(&self) -> ConnectOptions {
        let mut options = ConnectOptions::new()
            .with_timeout(self.timeout)
            .with_connect_timeout(self.timeout)
            .with_keep_alive(HTTP2_PING_INTERVAL, self.timeout)
            .with_require_leader(true);
        if let Some(tls) = &self.tls {
            let mut config = etcd_client::TlsOptions::new();
            if let Some(ca) = &tls.ca_pem {
                config = config.ca_certificate(etcd_client::Certificate::from_pem(ca));
            }
            if let (Some(cert), Some(key)) = (&tls.cert_pem, &tls.key_pem) {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            options = options.with_tls(config);
        }
        if let Some(auth) = &self.auth {
            options = options
                .with_user(auth.user.clone(), auth.password.clone())
                .with_auto_token_refresh(true);
        }
        options
    }
}

impl fmt::Debug for FleetSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetSettings")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("fleet", &self.fleet)
            .field("node", &self.node)
            .field("lease_ttl", &self.lease_ttl)
            .field("timeout", &self.timeout)
            .field("guard_timeout", &self.guard_timeout)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .field("version", &self.version)
            .finish()
    }
}

/// TLS material as PEM text (the daemon reads the files named in its config).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CA certificate(s) that signed etcd's server certificate.
    pub ca_pem: Option<String>,
    /// This node's client certificate, for etcd's `--client-cert-auth`.
    pub cert_pem: Option<String>,
    /// The client certificate's private key.
    pub key_pem: Option<String>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret: never in a log line.
        f.debug_struct("TlsSettings")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("cert_pem", &self.cert_pem.as_ref().map(|_| "<pem>"))
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// etcd user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The etcd user.
    pub user: String,
    /// Its password (the daemon reads it from `password_file`).
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoints: &[&str]) -> FleetSettings {
        FleetSettings::new(
            endpoints.iter().map(|e| (*e).to_owned()).collect(),
            "prod",
            "ams-1",
        )
    }

    #[test]
    fn defaults_validate_and_bad_settings_are_named() {
        assert_eq!(settings(&["http://127.0.0.1:2379"]).validate(), Ok(()));
        assert_eq!(settings(&[]).validate(), Err(SettingsError::NoEndpoints));
        assert!(matches!(
            settings(&["127.0.0.1:2379"]).validate(),
            Err(SettingsError::BadEndpoint(_))
        ));
        assert_eq!(
            settings(&["http://a:1", "https://b:1"]).validate(),
            Err(SettingsError::MixedSchemes)
        );
        assert_eq!(
            settings(&["https://a:1"]).validate(),
            Err(SettingsError::HttpsWithoutCa)
        );
        let mut tls = settings(&["https://a:1"]);
        tls.tls = Some(TlsSettings {
            ca_pem: Some("ca".into()),
            cert_pem: Some("cert".into()),
            key_pem: None,
        });
        assert_eq!(tls.validate(), Err(SettingsError::HalfIdentity));
        let mut ttl = settings(&["http://a:1"]);
        ttl.lease_ttl = Duration::from_millis(1500);
        assert!(matches!(
            ttl.validate(),
            Err(SettingsError::BadDuration {
                what: "lease_ttl",
                ..
            })
        ));
        let mut node = settings(&["http://a:1"]);
        node.node = "a/b".into();
        assert!(matches!(
            node.validate(),
            Err(SettingsError::BadName {
                what: "node name",
                ..
            })
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut s = settings(&["https://a:1"]);
        s.auth = Some(Credentials {
            user: "nsbeacon".into(),
            password: "hunter2".into(),
        });
        s.tls = Some(TlsSettings {
            ca_pem: Some("CA".into()),
            cert_pem: None,
            key_pem: Some("PRIVATE KEY".into()),
        });
        let text = format!("{s:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("PRIVATE KEY"),
            "{text}"
        );
        assert!(text.contains("nsbeacon"));
    }
}
