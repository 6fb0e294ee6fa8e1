//! What the upstream router sees: one route, parsed from BIRD's `show route PREFIX all` reply.

/// How far apart two reads of one unchanged route's `since` stamp may be. BIRD keeps a route's age on its
/// monotonic clock and converts it to wall-clock time when it prints it, so the same route read twice
/// now and then differs by a millisecond. A re-announced route's stamp moves by the time between the two
/// reads, which the tests keep far above this.
pub const SINCE_JITTER_MS: i64 = 10;

/// `HH:MM:SS.mmm` (BIRD's route time format, a trailing `]` allowed) as milliseconds of the day.
pub fn since_ms(since: &str) -> Option<i64> {
    let (hms, ms) = since.trim_end_matches(']').split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() || ms.len() != 3 {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<i64>().ok()?)
}

/// Whether two `since` stamps are one unchanged route (within [`SINCE_JITTER_MS`]); stamps in another
/// format must be equal.
pub fn same_since(a: &str, b: &str) -> bool {
    match (since_ms(a), since_ms(b)) {
        (Some(a), Some(b)) => (a - b).abs() <= SINCE_JITTER_MS,
        _ => a == b,
    }
}

/// Whether two lines of `show route` are one unchanged route: word for word equal, except that `since`
/// stamps may differ by [`SINCE_JITTER_MS`].
pub fn same_route_line(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (
        a.split_whitespace().collect(),
        b.split_whitespace().collect(),
    );
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x == y || (since_ms(x).is_some() && since_ms(y).is_some() && same_since(x, y))
        })
}

/// The upstream's best route for a prefix, as BIRD reports it (`show route PREFIX all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The prefix as BIRD prints it, e.g. `203.0.113.53/32`.
    pub prefix: String,
    /// The upstream protocol (BGP session) the route came from, e.g. `node` or `node6`.
    pub protocol: String,
    /// When the upstream last changed this route (the time in `[node 16:42:19.947]`): a withdrawal and
    /// re-announcement between two polls still shows as a new stamp.
    pub since: String,
    /// `BGP.as_path`, first AS first (the node's AS, repeated when the node prepends).
    pub as_path: Vec<u32>,
    /// `BGP.next_hop`, as printed.
    pub next_hop: Option<String>,
    /// `BGP.community` as `(asn, value)` pairs, e.g. `(65535, 0)` for GRACEFUL_SHUTDOWN.
    pub communities: Vec<(u32, u32)>,
    /// `BGP.large_community` as `(asn, data1, data2)` triples.
    pub large_communities: Vec<(u32, u32, u32)>,
    /// The raw reply, for assertion messages.
    pub raw: String,
}

impl RouteInfo {
    /// Whether the path carries the well-known GRACEFUL_SHUTDOWN community 65535:0 (RFC 8326).
    pub fn has_graceful_shutdown(&self) -> bool {
        self.communities.contains(&(65535, 0))
    }

    /// How many times `asn` appears in the AS path (1 = announced normally by a direct neighbor AS,
    /// more = prepended).
    pub fn as_path_count(&self, asn: u32) -> usize {
        self.as_path.iter().filter(|a| **a == asn).count()
    }
}

/// Parses a BIRD control-socket reply to `show route PREFIX all` (codes included, as returned by
/// `nsbeacon_testkit::bird::bird_command`). `None` when BIRD has no such route (`8001 Network not found`)
/// or the reply holds no route line.
///
/// Only the first (best, marked `*`) route is read; the lab's upstream has one session per family, so
/// there is at most one route per prefix.
pub fn parse_show_route_all(reply: &str) -> Option<RouteInfo> {
    let mut info: Option<RouteInfo> = None;
    for raw_line in reply.lines() {
        // Strip the 4-digit code and its separator, or the leading space of a continuation line.
        let text = match raw_line.as_bytes() {
            [a, b, c, d, sep, ..]
                if [a, b, c, d].iter().all(|x| x.is_ascii_digit())
                    && (*sep == b'-' || *sep == b' ') =>
            {
                if raw_line.starts_with("8001") || raw_line.starts_with("9001") {
                    return None;
                }
                &raw_line[5..]
            }
            [b' ', ..] => &raw_line[1..],
            _ => raw_line,
        };
        if text.starts_with("Table ") {
            continue;
        }
        let trimmed = text.trim();
        if !text.starts_with(char::is_whitespace) && !trimmed.is_empty() {
            // A route line: `PREFIX  unicast [PROTO TIME] * (PREF) [ASPATH]`. Stop at a second route.
            if info.is_some() {
                break;
            }
            let mut words = trimmed.split_whitespace();
            let prefix = words.next()?.to_owned();
            let bracket = trimmed
                .split_once('[')
                .map(|(_, rest)| rest.split(']').next().unwrap_or_default())
                .unwrap_or_default();
            let mut words_in_bracket = bracket.split_whitespace();
            let protocol = words_in_bracket.next().unwrap_or_default().to_owned();
            let since = words_in_bracket.collect::<Vec<_>>().join(" ");
            info = Some(RouteInfo {
                prefix,
                protocol,
                since,
                as_path: Vec::new(),
                next_hop: None,
                communities: Vec::new(),
                large_communities: Vec::new(),
                raw: reply.to_owned(),
            });
            continue;
        }
        let Some(route) = info.as_mut() else {
            continue;
        };
        if let Some(path) = trimmed.strip_prefix("BGP.as_path:") {
            route.as_path = path
                .split_whitespace()
                .filter_map(|a| a.trim_matches(|c| c == '{' || c == '}').parse().ok())
                .collect();
        } else if let Some(hop) = trimmed.strip_prefix("BGP.next_hop:") {
            route.next_hop = hop.split_whitespace().next().map(str::to_owned);
        } else if let Some(list) = trimmed.strip_prefix("BGP.community:") {
            route.communities = tuples(list)
                .into_iter()
                .filter_map(|t| match t.as_slice() {
                    [a, b] => Some((*a, *b)),
                    _ => None,
                })
                .collect();
        } else if let Some(list) = trimmed.strip_prefix("BGP.large_community:") {
            route.large_communities = tuples(list)
                .into_iter()
                .filter_map(|t| match t.as_slice() {
                    [a, b, c] => Some((*a, *b, *c)),
                    _ => None,
                })
                .collect();
        }
    }
    info
}

/// `(1,2) (3, 4)` -> `[[1,2],[3,4]]`; malformed tuples are skipped.
fn tuples(list: &str) -> Vec<Vec<u32>> {
    list.split('(')
        .filter_map(|chunk| chunk.split_once(')'))
        .filter_map(|(inner, _)| {
            inner
                .split(',')
                .map(|n| n.trim().parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from the lab's upstream BIRD 2.0.12 (a graceful-shutdown IPv6 route).
    const GSHUT_V6: &str = "1007-Table master6:\n 2001:db8::53/128     unicast [node6 16:42:22.083] * (100) [AS65001i]\n \tvia 2001:db8:0:1::2 on to-node\n1008-\tType: BGP univ\n1012-\tBGP.origin: IGP\n \tBGP.as_path: 65001\n \tBGP.next_hop: 2001:db8:0:1::2\n \tBGP.local_pref: 100\n \tBGP.community: (65535,0)\n \tBGP.large_community: (65001, 0, 2)\n0000 ";

    /// Recorded likewise: a degraded (prepended) IPv4 route.
    const DEGRADED_V4: &str = "1007-Table master4:\n 203.0.113.53/32      unicast [node 16:42:19.947] * (100) [AS65001i]\n \tvia 192.0.2.2 on to-node\n1008-\tType: BGP univ\n1012-\tBGP.origin: IGP\n \tBGP.as_path: 65001 65001 65001 65001\n \tBGP.next_hop: 192.0.2.2\n \tBGP.local_pref: 100\n \tBGP.large_community: (65001, 0, 1)\n0000 ";

    #[test]
    fn parses_recorded_routes() {
        let r = parse_show_route_all(GSHUT_V6).expect("route");
        assert_eq!(r.prefix, "2001:db8::53/128");
        assert_eq!(r.protocol, "node6");
        assert_eq!(r.since, "16:42:22.083");
        assert_eq!(r.as_path, vec![65001]);
        assert_eq!(r.next_hop.as_deref(), Some("2001:db8:0:1::2"));
        assert!(r.has_graceful_shutdown());
        assert_eq!(r.large_communities, vec![(65001, 0, 2)]);

        let r = parse_show_route_all(DEGRADED_V4).expect("route");
        assert_eq!(r.prefix, "203.0.113.53/32");
        assert_eq!(r.protocol, "node");
        assert_eq!(r.as_path_count(65001), 4);
        assert!(!r.has_graceful_shutdown());
        assert_eq!(r.large_communities, vec![(65001, 0, 1)]);
    }

    #[test]
    fn not_found_and_garbage_are_none() {
        assert_eq!(parse_show_route_all("8001 Network not found"), None);
        assert_eq!(
            parse_show_route_all("9001 syntax error, unexpected END"),
            None
        );
        assert_eq!(parse_show_route_all(""), None);
        assert_eq!(parse_show_route_all("0000 "), None);
    }

    #[test]
    fn never_panics_on_truncated_replies() {
        for cut in 0..DEGRADED_V4.len() {
            if DEGRADED_V4.is_char_boundary(cut) {
                let _ = parse_show_route_all(&DEGRADED_V4[..cut]);
            }
        }
    }

    #[test]
    fn since_stamps_a_millisecond_apart_are_one_route() {
        assert!(same_since("01:14:40.733", "01:14:40.734"));
        assert!(same_since("01:14:40.999", "01:14:41.001"));
        assert!(!same_since("01:14:40.733", "01:14:41.733"));
        assert!(!same_since("01:14:40.733", "01:14:40.900"));
        assert!(same_since("2026-12-08", "2026-12-08"));
        let a = " 203.0.113.53/32      unicast [node 01:14:40.734] * (100) [AS65001i]";
        let b = " 203.0.113.53/32      unicast [node 01:14:40.733] * (100) [AS65001i]";
        let later = " 203.0.113.53/32      unicast [node 01:14:42.733] * (100) [AS65001i]";
        let other = " 203.0.113.53/32      unicast [node 01:14:40.734] * (100) [AS65001?]";
        assert!(same_route_line(a, b));
        assert!(!same_route_line(a, later));
        assert!(!same_route_line(a, other));
    }
}
