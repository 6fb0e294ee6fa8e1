//! What BIRD exports to its BGP peers: pure parsers for `show protocols all`, `show route ...` and
//! `show bfd sessions`, deciding by reply codes and line shapes, never by BIRD's English messages.
//!
//! Recorded from BIRD 2.0.12 (the fixtures in `fixtures/`): `show protocols all` gives each protocol as a
//! `1002` row followed by its `1006` details (for BGP: `BGP state:`, `Neighbor address:`, and per channel
//! `Table:`); `show route protocol 'T' export 'P'` lists under `1007` the routes of `T` that pass `P`'s
//! export filter (empty when the filter rejects them, `9001` when `P`'s channel is not up);
//! `show bfd sessions` lists under `1020` one row per session, `IP Interface State Since ...`.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::backend::{ProtocolRow, ProtocolState};
use super::reply::{Reply, ReplyCode};

/// One protocol of `show protocols all`: its row and what its details say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolDetails {
    /// The `1002` row.
    pub row: ProtocolRow,
    /// `BGP state:` (`Established`, `Active`, `Connect`, `Down`, ...), BGP protocols only.
    pub bgp_state: Option<String>,
    /// `Neighbor address:`, BGP protocols only.
    pub neighbor: Option<IpAddr>,
    /// The `Table:` of each channel, e.g. `master4`.
    pub tables: Vec<String>,
}

impl ProtocolDetails {
    /// Whether the BGP session is established: BIRD puts a BGP protocol in state `up` only then. Decided
    /// on the State column, not on the `BGP state:` text (only shown, since BIRD rewords texts).
    pub fn established(&self) -> bool {
        self.row.state == ProtocolState::Up
    }

    /// The session state in BIRD's words: `BGP state:`, else the row's state.
    pub fn session_state(&self) -> String {
        self.bgp_state
            .clone()
            .unwrap_or_else(|| self.row.state.to_string())
    }
}

/// Parses `show protocols all`: each `1002` row starts a protocol, the `1006` lines after it (continuation
/// lines included) are its details. `None` when a row lacks the four columns every row has.
pub fn parse_protocols_all(reply: &Reply) -> Option<Vec<ProtocolDetails>> {
    let mut protocols: Vec<ProtocolDetails> = Vec::new();
    for line in reply.lines() {
        if line.code == ReplyCode::PROTOCOL_ROW {
            protocols.push(ProtocolDetails {
                row: ProtocolRow::parse(&line.text)?,
                bgp_state: None,
                neighbor: None,
                tables: Vec::new(),
            });
        } else if line.code == ReplyCode::PROTOCOL_DETAILS
            && let Some(current) = protocols.last_mut()
        {
            let text = line.text.trim();
            if let Some(state) = text.strip_prefix("BGP state:") {
                current.bgp_state = Some(state.trim().to_owned()).filter(|s| !s.is_empty());
            } else if let Some(addr) = text.strip_prefix("Neighbor address:") {
                // BIRD may add `%iface` for link-local neighbors; the address comes first.
                current.neighbor = addr
                    .split(['%', ' '])
                    .find(|s| !s.is_empty())
                    .and_then(|a| a.parse().ok());
            } else if let Some(table) = text.strip_prefix("Table:") {
                let table = table.trim();
                if !table.is_empty() {
                    current.tables.push(table.to_owned());
                }
            }
        }
    }
    Some(protocols)
}

/// The prefixes of the routes listed under `1007` by `show route ...`: lines whose first word is a
/// prefix (a route's first line; further routes of the same prefix and attribute lines start with white
/// space, the table heading with `Table`).
pub fn parse_route_prefixes(reply: &Reply) -> BTreeSet<ipnet::IpNet> {
    reply
        .lines_with_code(ReplyCode::ROUTE_LIST)
        .filter(|l| !l.text.starts_with(char::is_whitespace))
        .filter_map(|l| l.text.split_whitespace().next())
        .filter_map(|word| word.parse::<ipnet::IpNet>().ok())
        .collect()
}

/// `show bfd sessions`: each `1020` line whose first word is an address is a session; its state is the
/// third column (after the interface). Address to state, e.g. `192.0.2.1` to `Up`.
pub fn parse_bfd_sessions(reply: &Reply) -> HashMap<IpAddr, String> {
    reply
        .lines_with_code(ReplyCode::BFD_SESSIONS)
        .filter_map(|l| {
            let mut words = l.text.split_whitespace();
            let addr = words.next()?.parse::<IpAddr>().ok()?;
            let state = words.nth(1)?;
            Some((addr, state.to_owned()))
        })
        .collect()
}

/// A protocol name as a BIRD symbol in a command: in apostrophes (BIRD's syntax for any symbol, needed
/// for names with `-` or `.`). `None` for a name BIRD could not have printed as a symbol (an apostrophe,
/// a control character or white space in it), which is then never spliced into a command.
pub fn quoted_symbol(name: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name.len() <= crate::BIRD_PROTOCOL_NAME_MAX_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '\'' && c != '"');
    plain.then(|| format!("'{name}'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bird::reply::parse_reply;

    fn reply(text: &str) -> Reply {
        parse_reply(text.as_bytes())
            .expect("valid reply")
            .expect("complete reply")
            .0
    }

    const PROTOCOLS_ALL: &str = include_str!("fixtures/show_protocols_all.txt");
    const PROTOCOLS_ALL_DOWN: &str = include_str!("fixtures/show_protocols_all_upstream1_down.txt");

    #[test]
    fn protocols_all_recorded_from_bird_2_0_12() {
        let all = parse_protocols_all(&reply(PROTOCOLS_ALL)).expect("rows");
        let names: Vec<_> = all.iter().map(|p| p.row.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "device1",
                "anycast_dns",
                "anycast_dns6",
                "anycast_dns_degraded",
                "anycast_dns6_degraded",
                "anycast_dns_gshut",
                "anycast_dns6_gshut",
                "nsbeacon_bfd",
                "upstream1",
                "upstream1_v6"
            ]
        );
        let up1 = &all[8];
        assert!(up1.row.is_bgp());
        assert!(up1.established());
        assert_eq!(up1.session_state(), "Established");
        assert_eq!(up1.neighbor, Some("192.0.2.1".parse().expect("addr")));
        assert_eq!(up1.tables, ["master4"]);
        let up6 = &all[9];
        assert_eq!(up6.neighbor, Some("2001:db8:0:1::1".parse().expect("addr")));
        assert_eq!(up6.tables, ["master6"]);
        assert_eq!(all[1].row.table, "master4");
        assert_eq!(all[1].bgp_state, None);

        let down = parse_protocols_all(&reply(PROTOCOLS_ALL_DOWN)).expect("rows");
        let up1 = down
            .iter()
            .find(|p| p.row.name == "upstream1")
            .expect("upstream1");
        assert!(!up1.established());
        assert_eq!(up1.session_state(), "Down");
        assert_eq!(up1.tables, ["master4"]);
    }

    #[test]
    fn route_prefixes_recorded_from_bird_2_0_12() {
        let exported = reply(include_str!(
            "fixtures/route_protocol_anycast_dns_export_upstream1.txt"
        ));
        let v4: ipnet::IpNet = "203.0.113.53/32".parse().expect("prefix");
        assert_eq!(
            parse_route_prefixes(&exported)
                .into_iter()
                .collect::<Vec<_>>(),
            [v4]
        );
        for empty in [
            include_str!("fixtures/route_protocol_anycast_dns_export_upstream1_filtered.txt"),
            include_str!("fixtures/route_protocol_anycast_dns6_export_upstream1.txt"),
            include_str!("fixtures/route_protocol_anycast_dns_degraded.txt"),
            include_str!(
                "fixtures/route_protocol_anycast_dns_degraded_export_upstream1_shadowed.txt"
            ),
        ] {
            assert!(parse_route_prefixes(&reply(empty)).is_empty(), "{empty}");
        }
        // The channel of a session that is down: 9001, an error line, no routes.
        let down = reply(include_str!(
            "fixtures/route_protocol_anycast_dns_export_upstream1_down.txt"
        ));
        assert_eq!(down.first_error().map(|l| l.code.value()), Some(9001));
        assert!(parse_route_prefixes(&down).is_empty());
        // A second route for the same prefix and attribute lines are not prefixes.
        let more = reply(
            "1007-Table master4:\n 203.0.113.53/32      blackhole [anycast_dns 20:50:31.267] * (200)\n                      blackhole [anycast_dns_degraded 20:50:31.267] (190)\n \tType: static univ\n0000 \n",
        );
        assert_eq!(parse_route_prefixes(&more).len(), 1);
    }

    #[test]
    fn bfd_sessions_recorded_from_bird_2_0_12() {
        let up = parse_bfd_sessions(&reply(include_str!("fixtures/show_bfd_sessions_up.txt")));
        assert_eq!(up.len(), 2);
        assert_eq!(
            up.get(&"192.0.2.1".parse().expect("addr"))
                .map(String::as_str),
            Some("Up")
        );
        let down = parse_bfd_sessions(&reply(include_str!("fixtures/show_bfd_sessions_down.txt")));
        assert_eq!(
            down.get(&"2001:db8:0:1::1".parse().expect("addr"))
                .map(String::as_str),
            Some("Down")
        );
        assert!(
            parse_bfd_sessions(&reply(include_str!("fixtures/show_bfd_sessions_none.txt")))
                .is_empty()
        );
    }

    #[test]
    fn symbols_are_quoted_or_refused() {
        assert_eq!(quoted_symbol("upstream1").as_deref(), Some("'upstream1'"));
        assert_eq!(
            quoted_symbol("anycast-dns.v4").as_deref(),
            Some("'anycast-dns.v4'")
        );
        for bad in ["", "a'b", "a b", "a\nb", "a\"b"] {
            assert_eq!(quoted_symbol(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(lines in proptest::collection::vec("(1002|1006|1007|1020|0000)[- ][ -~\\t]{0,60}", 1..30)) {
            let mut text = lines.join("\n");
            text.push_str("\n0000 \n");
            if let Ok(Some((reply, _))) = parse_reply(text.as_bytes()) {
                let _ = parse_protocols_all(&reply);
                let _ = parse_route_prefixes(&reply);
                let _ = parse_bfd_sessions(&reply);
            }
        }
    }
}
