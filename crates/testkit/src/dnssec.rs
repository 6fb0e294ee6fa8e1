//! Pre-signed zones for the DNSSEC expiry tests: a [`Zone`] signed with `dnssec-keygen` and
//! `dnssec-signzone` (bind9-utils) with a validity that ends a given number of seconds from now.
//!
//! The result is an ordinary [`Zone`] whose extra records are the DNSKEY, NSEC and RRSIG lines of the
//! signed file (absolute names), so Knot, NSD and BIND serve it through their usual zone-file paths
//! without any signing policy of their own.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::knot::Zone;
use crate::process::require_binary;

/// Signs `zone` with a fresh ECDSA P-256 key, inception 60 s ago and expiration `valid_for` from now,
/// working in `dir` (keys and files are written there). Panics with the tools' output on failure.
pub fn sign_zone(zone: &Zone, valid_for: Duration, dir: &Path) -> Zone {
    let keygen = require_binary("dnssec-keygen");
    let signzone = require_binary("dnssec-signzone");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let unsigned = dir.join("unsigned.zone");
    let signed = dir.join("signed.zone");
    std::fs::write(&unsigned, zone.render())
        .unwrap_or_else(|e| panic!("write {}: {e}", unsigned.display()));
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("run {what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new(keygen)
            .args(["-q", "-a", "ECDSAP256SHA256", "-n", "ZONE", "-K"])
            .arg(dir)
            .arg(&zone.name),
        "dnssec-keygen",
    );
    run(
        Command::new(signzone)
            .args(["-q", "-z", "-S", "-O", "full", "-s", "now-60", "-d"])
            .arg(dir)
            .arg("-e")
            .arg(format!("now+{}", valid_for.as_secs()))
            .arg("-K")
            .arg(dir)
            .arg("-o")
            .arg(&zone.name)
            .arg("-f")
            .arg(&signed)
            .arg(&unsigned),
        "dnssec-signzone",
    );
    let text = std::fs::read_to_string(&signed)
        .unwrap_or_else(|e| panic!("read {}: {e}", signed.display()));
    with_signed_records(zone, &text)
}

/// `zone` plus the records `dnssec-signzone -O full` added to it (DNSKEY, NSEC, RRSIG), read from the
/// signed file's `text`: a [`Zone`] that any server loads from an ordinary zone file. Shared by
/// [`sign_zone`] and the DNSSEC benchmark, which signs its 10,000 zones once and keeps the signed files.
pub fn with_signed_records(zone: &Zone, text: &str) -> Zone {
    let mut out = zone.clone();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `-O full`: owner TTL class type rdata...; the unsigned records are in `zone` already.
        match fields.get(3) {
            Some(&"SOA") | Some(&"NS") | Some(&"A") | None => {}
            Some(_) if line.starts_with(';') => {}
            Some(_) if zone.records.iter().any(|r| r == line) => {}
            Some(_) => out.records.push(fields.join(" ")),
        }
    }
    out
}

/// `zone` without the RRSIGs covering `covered` (e.g. `"SOA"`): a signed zone with an unsigned RRset.
pub fn strip_rrsig(mut zone: Zone, covered: &str) -> Zone {
    zone.records.retain(|r| {
        let fields: Vec<&str> = r.split_whitespace().collect();
        !(fields.get(3) == Some(&"RRSIG") && fields.get(4) == Some(&covered))
    });
    zone
}
