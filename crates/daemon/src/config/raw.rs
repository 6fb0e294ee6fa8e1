//! Stage 1: the TOML file as written. Only structure is checked here (unknown keys, wrong value types);
//! everything needing interpretation stays a string or a raw value for the validation pass.

use serde::Deserialize;

/// The top level of the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub backend: Option<RawBackend>,
    #[serde(default, rename = "service")]
    pub services: Vec<RawService>,
    pub http: Option<RawHttp>,
    pub log: Option<RawLog>,
    pub state_dir: Option<String>,
    pub drain_file: Option<String>,
    pub on_shutdown: Option<String>,
    pub reconcile_interval: Option<String>,
    pub fleet: Option<RawFleet>,
}

/// `[fleet]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleet {
    pub endpoints: Option<Vec<String>>,
    pub name: Option<String>,
    pub node: Option<String>,
    pub prefix: Option<String>,
    pub lease_ttl: Option<String>,
    pub timeout: Option<String>,
    pub guard_timeout: Option<String>,
    pub on_unavailable: Option<String>,
    pub guard_all_failures: Option<bool>,
    pub tls: Option<RawFleetTls>,
    pub user: Option<String>,
    pub password_file: Option<String>,
    /// Accepted only to refuse it with a pointer to `password_file`: a secret does not belong in the TOML.
    pub password: Option<toml::Value>,
}

/// `[fleet.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleetTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
}

/// `[backend]`: one flat table; which keys are allowed depends on `kind`, checked in validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackend {
    pub kind: Option<String>,
    pub socket: Option<String>,
    pub via: Option<String>,
    pub vtysh: Option<String>,
    pub args: Option<Vec<String>>,
    pub asn: Option<i64>,
    pub vrf: Option<String>,
    pub timeout: Option<String>,
    pub min_prefix_length_v4: Option<i64>,
    pub min_prefix_length_v6: Option<i64>,
    pub allow_default_route: Option<bool>,
    pub announce_via: Option<String>,
    pub kernel_protocol: Option<i64>,
    pub decision_dir: Option<String>,
}

/// `[http]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    pub listen: Option<String>,
}

/// `[log]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// `[[service]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub name: Option<String>,
    #[serde(default, rename = "check")]
    pub checks: Vec<RawCheck>,
    pub combine: Option<toml::Value>,
    pub announce: Option<Vec<String>>,
    pub degrade: Option<Vec<String>>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub jitter: Option<String>,
    pub damping: Option<RawDamping>,
    pub graceful_drain: Option<String>,
    pub min_announcing: Option<toml::Value>,
    pub confirm_interval: Option<String>,
    pub confirm_timeout: Option<String>,
    pub watch: Option<RawWatch>,
    pub load: Option<RawLoad>,
}

/// `[service.load]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoad {
    pub source: Option<String>,
    pub socket: Option<String>,
    pub url: Option<String>,
    pub kernel: Option<bool>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub overload_factor: Option<toml::Value>,
    pub min_qps: Option<toml::Value>,
    pub max_qps: Option<toml::Value>,
    pub max_udp_errors: Option<toml::Value>,
    pub baseline_window: Option<String>,
    pub overload: Option<String>,
    pub absorb_for: Option<String>,
}

/// `[service.watch]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWatch {
    pub pid_file: Option<String>,
}

/// `[service.damping]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDamping {
    pub enabled: Option<bool>,
    pub penalty: Option<toml::Value>,
    pub suppress_threshold: Option<toml::Value>,
    pub reuse_threshold: Option<toml::Value>,
    pub half_life: Option<String>,
    pub max_hold_down: Option<String>,
}

/// `[[service.check]]`: one flat table for both check types; keys of the other type are rejected in
/// validation with a message naming the type.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub check_type: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub transport: Option<String>,
    // query checks
    pub confirm_timeout: Option<String>,
    pub target: Option<String>,
    pub qname: Option<String>,
    pub qtype: Option<String>,
    pub qclass: Option<String>,
    pub edns_payload: Option<i64>,
    pub rcodes: Option<Vec<String>>,
    pub authoritative: Option<bool>,
    pub min_answers: Option<i64>,
    pub answer_exact: Option<String>,
    pub answer_contains: Option<String>,
    pub slow_after: Option<String>,
    pub identity: Option<String>,
    pub identity_expected: Option<String>,
    // serial checks
    pub local: Option<String>,
    pub reference: Option<String>,
    pub zones: Option<Vec<String>>,
    pub zones_file: Option<String>,
    pub max_lag: Option<i64>,
    pub max_behind_zones: Option<i64>,
    pub concurrency: Option<i64>,
    // dnssec checks (also local, zones, zones_file, concurrency)
    pub types: Option<Vec<String>>,
    pub warn_before: Option<String>,
    pub fail_before: Option<String>,
    pub clock_skew: Option<String>,
}

impl RawCheck {
    /// Keys set that only query checks accept.
    pub fn query_only_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let set: [(&'static str, bool); 13] = [
            ("target", self.target.is_some()),
            ("qname", self.qname.is_some()),
            ("qtype", self.qtype.is_some()),
            ("qclass", self.qclass.is_some()),
            ("edns_payload", self.edns_payload.is_some()),
            ("rcodes", self.rcodes.is_some()),
            ("authoritative", self.authoritative.is_some()),
            ("min_answers", self.min_answers.is_some()),
            ("answer_exact", self.answer_exact.is_some()),
            ("answer_contains", self.answer_contains.is_some()),
            ("slow_after", self.slow_after.is_some()),
            ("confirm_timeout", self.confirm_timeout.is_some()),
            (
                "identity",
                self.identity.is_some() || self.identity_expected.is_some(),
            ),
        ];
        for (key, present) in set {
            if present {
                keys.push(key);
            }
        }
        keys
    }

    /// Keys set that serial and DNSSEC checks accept (a zone sweep's keys), and query checks do not.
    pub fn sweep_keys(&self) -> Vec<&'static str> {
        present([
            ("local", self.local.is_some()),
            ("zones", self.zones.is_some()),
            ("zones_file", self.zones_file.is_some()),
            ("concurrency", self.concurrency.is_some()),
        ])
    }

    /// Keys set that only serial checks accept.
    pub fn serial_only_keys(&self) -> Vec<&'static str> {
        present([
            ("reference", self.reference.is_some()),
            ("max_lag", self.max_lag.is_some()),
            ("max_behind_zones", self.max_behind_zones.is_some()),
        ])
    }

    /// Keys set that only DNSSEC checks accept.
    pub fn dnssec_only_keys(&self) -> Vec<&'static str> {
        present([
            ("types", self.types.is_some()),
            ("warn_before", self.warn_before.is_some()),
            ("fail_before", self.fail_before.is_some()),
            ("clock_skew", self.clock_skew.is_some()),
        ])
    }
}

/// The keys whose flag is set.
fn present<const N: usize>(set: [(&'static str, bool); N]) -> Vec<&'static str> {
    set.into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
}
