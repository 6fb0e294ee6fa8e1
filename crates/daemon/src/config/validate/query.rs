//! Query checks: one DNS query (name, type, class, transport, EDNS size) and the expectations on its
//! answer (rcodes, AA bit, answer count and content, latency, server identity).

use std::str::FromStr;
use std::time::Duration;

use nsbeacon_prober::proto::op::ResponseCode;
use nsbeacon_prober::proto::rr::{DNSClass, Name, RecordType};
use nsbeacon_prober::{AnswerMatch, Expectations, IdentitySpec, ProbeSpec, QuerySpec, Transport};

use super::Validator;
use super::raw::RawCheck;
use super::values::parse_name;
use crate::config::{DEFAULT_EDNS_PAYLOAD, MAX_TIMEOUT, fmt_duration};

impl Validator<'_> {
    pub(super) fn query_check(
        &mut self,
        path: &str,
        raw: &RawCheck,
        transport: Option<Transport>,
        timeout: Option<Duration>,
    ) -> Option<ProbeSpec> {
        let target = self.address(
            &format!("{path}.target"),
            raw.target.as_deref(),
            "give the server address to probe, e.g. target = \"127.0.0.1:53\" or the anycast address itself",
        );
        let qname = self.qname(path, raw);
        let qtype = self.qtype(path, raw);
        let qclass = self.qclass(path, raw);
        let edns_payload = self.edns_payload(path, raw);
        let rcodes = self.rcodes(path, raw);
        let min_answers = self.min_answers(path, raw, rcodes.as_deref());
        let answer = self.answer(path, raw);
        let slow_after = self.slow_after(path, raw, timeout);
        let identity = self.identity(path, raw);

        let query = QuerySpec {
            name: qname?,
            record_type: qtype?,
            class: qclass?,
        };
        let mut expect = Expectations::default()
            .with_rcodes(rcodes?)
            .with_authoritative(raw.authoritative.unwrap_or(true))
            .with_min_answers(min_answers?);
        if let Some(answer) = answer? {
            expect = expect.with_answer(answer);
        }
        if let Some(slow) = slow_after? {
            expect = expect.with_slow_after(slow);
        }
        let mut spec = ProbeSpec::new(target?, query)
            .with_transport(transport?)
            .with_timeout(timeout?)
            .with_edns_payload(edns_payload?)
            .with_expectations(expect);
        if let Some(identity) = identity? {
            spec = spec.with_identity(identity);
        }
        if let Err(e) = spec.validate() {
            self.issue(
                path,
                format!("the prober rejects this check: {e}"),
                "fix the check's settings",
            );
            return None;
        }
        Some(spec)
    }

    fn qname(&mut self, path: &str, raw: &RawCheck) -> Option<Name> {
        match raw.qname.as_deref() {
            None => {
                self.issue(
                    format!("{path}.qname"),
                    "missing",
                    "give the name to query, e.g. qname = \"example.com.\" (a zone the server is authoritative for)",
                );
                None
            }
            Some(s) => self.dns_name(&format!("{path}.qname"), s),
        }
    }

    fn qtype(&mut self, path: &str, raw: &RawCheck) -> Option<RecordType> {
        match raw.qtype.as_deref() {
            None => Some(RecordType::SOA),
            Some(s) => match RecordType::from_str(&s.to_ascii_uppercase()) {
                Ok(t) if !matches!(t, RecordType::Unknown(_)) => Some(t),
                _ => {
                    self.issue(
                        format!("{path}.qtype"),
                        format!("{s:?} is not a record type"),
                        "use a type name such as SOA (default), A, AAAA, TXT, NS",
                    );
                    None
                }
            },
        }
    }

    fn qclass(&mut self, path: &str, raw: &RawCheck) -> Option<DNSClass> {
        match raw.qclass.as_deref() {
            None => Some(DNSClass::IN),
            Some(s) => match DNSClass::from_str(&s.to_ascii_uppercase()) {
                Ok(c) => Some(c),
                Err(_) => {
                    self.issue(
                        format!("{path}.qclass"),
                        format!("{s:?} is not a DNS class"),
                        "use IN (default) or CH",
                    );
                    None
                }
            },
        }
    }

    fn edns_payload(&mut self, path: &str, raw: &RawCheck) -> Option<u16> {
        match raw.edns_payload {
            None => Some(DEFAULT_EDNS_PAYLOAD),
            Some(n) => match u16::try_from(n) {
                Ok(n) if n >= 512 => Some(n),
                _ => {
                    self.issue(
                        format!("{path}.edns_payload"),
                        format!("{n} is out of range"),
                        "use 512..=65535 (default 1232, which avoids IP fragmentation)",
                    );
                    None
                }
            },
        }
    }

    fn rcodes(&mut self, path: &str, raw: &RawCheck) -> Option<Vec<ResponseCode>> {
        match raw.rcodes.as_deref() {
            None => Some(vec![ResponseCode::NoError]),
            Some([]) => {
                self.issue(
                    format!("{path}.rcodes"),
                    "empty list: no reply could ever pass",
                    "list the acceptable rcodes, e.g. [\"NOERROR\"] (default)",
                );
                None
            }
            Some(list) => {
                let mut codes = Vec::new();
                let mut ok = true;
                for (i, s) in list.iter().enumerate() {
                    match parse_rcode(s) {
                        Some(code) => codes.push(code),
                        None => {
                            self.issue(
                                format!("{path}.rcodes[{i}]"),
                                format!("{s:?} is not an rcode"),
                                "use names such as NOERROR, NXDOMAIN, SERVFAIL, REFUSED",
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(codes)
            }
        }
    }

    /// Default: 1 when NOERROR is an accepted rcode, else 0.
    fn min_answers(
        &mut self,
        path: &str,
        raw: &RawCheck,
        rcodes: Option<&[ResponseCode]>,
    ) -> Option<usize> {
        match raw.min_answers {
            None => rcodes.map(|codes| usize::from(codes.contains(&ResponseCode::NoError))),
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= 1000 => Some(n),
                _ => {
                    self.issue(
                        format!("{path}.min_answers"),
                        format!("{n} is out of range"),
                        "use 0..=1000 (default 1 when NOERROR is expected, else 0)",
                    );
                    None
                }
            },
        }
    }

    /// `answer_exact` or `answer_contains`; `Some(None)` when neither is set.
    fn answer(&mut self, path: &str, raw: &RawCheck) -> Option<Option<AnswerMatch>> {
        match (raw.answer_exact.as_deref(), raw.answer_contains.as_deref()) {
            (Some(_), Some(_)) => {
                self.issue(
                    format!("{path}.answer_contains"),
                    "answer_exact and answer_contains are both set",
                    "set one of them",
                );
                None
            }
            (Some(""), None) | (None, Some("")) => {
                self.issue(
                    format!(
                        "{path}.{}",
                        if raw.answer_exact.is_some() {
                            "answer_exact"
                        } else {
                            "answer_contains"
                        }
                    ),
                    "empty expected value",
                    "give the RDATA to expect (TXT without quotes), or remove the key",
                );
                None
            }
            (Some(s), None) => Some(Some(AnswerMatch::Exact(s.to_owned()))),
            (None, Some(s)) => Some(Some(AnswerMatch::Contains(s.to_owned()))),
            (None, None) => Some(None),
        }
    }

    /// `slow_after` must be shorter than the timeout, or it could never trigger.
    fn slow_after(
        &mut self,
        path: &str,
        raw: &RawCheck,
        timeout: Option<Duration>,
    ) -> Option<Option<Duration>> {
        match raw.slow_after.as_deref() {
            None => Some(None),
            Some(s) => {
                let d = self.duration_in(
                    &format!("{path}.slow_after"),
                    Some(s),
                    Duration::from_micros(1),
                    MAX_TIMEOUT,
                );
                if let (Some(d), Some(t)) = (d, timeout)
                    && d >= t
                {
                    self.issue(
                        format!("{path}.slow_after"),
                        format!(
                            "{} must be shorter than the timeout {}",
                            fmt_duration(d),
                            fmt_duration(t)
                        ),
                        "an answer slower than the timeout is a failure, so slow_after would never trigger",
                    );
                    None
                } else {
                    d.map(Some)
                }
            }
        }
    }

    /// `identity` (NSID or a CHAOS TXT name) and `identity_expected`.
    fn identity(&mut self, path: &str, raw: &RawCheck) -> Option<Option<IdentitySpec>> {
        match (raw.identity.as_deref(), raw.identity_expected.as_deref()) {
            (_, Some("")) => {
                self.issue(
                    format!("{path}.identity_expected"),
                    "empty expected identity",
                    "give this node's NSID / id.server value, or remove the key",
                );
                None
            }
            (None, None) => Some(None),
            (None, Some(expected)) | (Some("nsid"), Some(expected)) => {
                Some(Some(IdentitySpec::nsid(Some(expected.to_owned()))))
            }
            (Some("nsid"), None) => Some(Some(IdentitySpec::nsid(None))),
            (Some(chaos), expected) => match parse_name(chaos).filter(|n| !n.is_root()) {
                Some(name) => Some(Some(IdentitySpec::chaos_txt(
                    name,
                    expected.map(str::to_owned),
                ))),
                None => {
                    self.issue(
                        format!("{path}.identity"),
                        format!("{chaos:?} is neither \"nsid\" nor a CHAOS TXT name"),
                        "use \"nsid\" (EDNS NSID, RFC 5001), \"id.server\" or \"hostname.bind\"",
                    );
                    None
                }
            },
        }
    }
}

fn parse_rcode(text: &str) -> Option<ResponseCode> {
    let code = match text.to_ascii_uppercase().as_str() {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        "YXDOMAIN" => 6,
        "YXRRSET" => 7,
        "NXRRSET" => 8,
        "NOTAUTH" => 9,
        "NOTZONE" => 10,
        _ => return None,
    };
    let code: u16 = code;
    Some(code.into())
}
