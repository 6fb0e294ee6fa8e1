//! The crate's errors. Every message names what failed, where (the etcd endpoints, the key, the setting) and
//! what an operator can do about it, because these end up in nsbeacon's log and `check-config` output.

use std::time::Duration;

/// Settings that cannot work, found before anything talks to etcd.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SettingsError {
    /// No etcd endpoint at all.
    #[error(
        "no etcd endpoints: list at least one client URL, e.g. endpoints = [\"http://127.0.0.1:2379\"]"
    )]
    NoEndpoints,
    /// An endpoint that is not an `http://` or `https://` URL.
    #[error(
        "etcd endpoint {0:?} is not an http:// or https:// URL: write it as etcd's client URL, e.g. \"https://10.0.0.1:2379\""
    )]
    BadEndpoint(String),
    /// Both `http://` and `https://` endpoints: one connection cannot be both.
    #[error(
        "the etcd endpoints mix http:// and https://: use https:// everywhere (with TLS settings) or http:// everywhere"
    )]
    MixedSchemes,
    /// `https://` endpoints without a CA to check the server against.
    #[error(
        "https:// etcd endpoints need TLS settings with the CA that signed etcd's certificate (tls.ca_file)"
    )]
    HttpsWithoutCa,
    /// TLS settings with `http://` endpoints, which would silently not use them.
    #[error(
        "TLS settings are given but the etcd endpoints are http://: write them as https:// URLs, or drop the TLS settings"
    )]
    TlsWithHttp,
    /// A client certificate without its key, or a key without its certificate.
    #[error(
        "a TLS client certificate needs its private key and the key needs its certificate: give both or neither"
    )]
    HalfIdentity,
    /// A name used as a path segment of an etcd key that would make the key layout ambiguous.
    #[error(
        "{what} {value:?} cannot be part of an etcd key: use 1 to 128 characters without '/', whitespace or control characters"
    )]
    BadName {
        /// Which name: "fleet name", "node name", "service name", "key prefix".
        what: &'static str,
        /// The name as given.
        value: String,
    },
    /// A duration that must not be zero (or below etcd's one-second lease granularity).
    #[error("{what} is {value:?}: {hint}")]
    BadDuration {
        /// Which setting.
        what: &'static str,
        /// The value as given.
        value: Duration,
        /// The allowed range.
        hint: &'static str,
    },
    /// A `min_announcing` fraction outside 0..=1.
    #[error("min_announcing fraction {0} is outside 0..=1: write e.g. 0.5 or \"50%\"")]
    BadFraction(String),
}

/// What went wrong talking to etcd, or why the member cannot act yet.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The settings cannot work (see [`SettingsError`]).
    #[error("fleet settings: {0}")]
    Settings(#[from] SettingsError),
    /// One etcd call did not finish within the per-call timeout.
    #[error(
        "etcd ({endpoints}) did not answer {operation} within {timeout:?}: check that etcd runs, has quorum and is \
         reachable from this node, or raise the fleet timeout"
    )]
    Timeout {
        /// The call, e.g. "lease grant".
        operation: &'static str,
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// The bound that ran out.
        timeout: Duration,
    },
    /// etcd (or the connection to it) answered with an error.
    #[error("etcd ({endpoints}) failed {operation}: {source}")]
    Etcd {
        /// The call, e.g. "txn".
        operation: &'static str,
        /// The configured endpoints, comma-separated.
        endpoints: String,
        /// The client's error (gRPC status, transport error, ...).
        #[source]
        source: etcd_client::Error,
    },
    /// The member holds no lease right now (etcd unreachable since start, or the lease expired and is being
    /// granted again), so it cannot write a lease-bound record. The record is kept and written once it has one.
    #[error(
        "this node has no etcd lease yet (etcd unreachable, or the lease expired and is being granted again): \
         the record is kept and written once the lease is back"
    )]
    NotRegistered,
    /// The guard did not decide within its bound.
    #[error(
        "the fleet guard for service {service:?} did not decide within {bound:?}: etcd is slow or unreachable \
         (the node follows on_unavailable); check etcd's latency, or raise guard_timeout"
    )]
    GuardTimeout {
        /// The service whose withdrawal was asked for.
        service: String,
        /// The configured bound.
        bound: Duration,
    },
    /// Other nodes' updates won every attempt of the guard's transaction.
    #[error(
        "the fleet guard for service {service:?} lost {attempts} transactions in a row to other nodes' updates: \
         the fleet's records change faster than one node can decide; this is transient"
    )]
    Contention {
        /// The service whose withdrawal was asked for.
        service: String,
        /// How many transactions were tried.
        attempts: u32,
    },
    /// `min_announcing` asks for more nodes than one etcd transaction can compare.
    #[error(
        "min_announcing for service {service:?} asks for {needed} other nodes, more than one etcd transaction can \
         check ({max}, etcd's --max-txn-ops is 128 by default): lower min_announcing"
    )]
    TooManyCompares {
        /// The service.
        service: String,
        /// The number of announcing nodes the guard would have to compare.
        needed: usize,
        /// The crate's limit.
        max: usize,
    },
    /// A record could not be encoded (does not happen with the crate's own types; kept typed, not unwrapped).
    #[error("encode the fleet record for service {service:?}: {source}")]
    Encode {
        /// The service.
        service: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The member was stopped.
    #[error("the fleet member was stopped")]
    Stopped,
}
