//! Route targets: the things nsbeacon announces and withdraws, validated before they reach a daemon.

use std::fmt;
use std::str::FromStr;

use crate::name::validated_name;

/// One thing the reconciler can announce or withdraw.
///
/// In JSON (the reconciler's event log) a target is `{"bird_protocol": "anycast_dns"}`,
/// `{"frr_network": "203.0.113.53/32"}` or `{"frr_neighbor": "192.0.2.1"}`, validated again when read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    /// A BIRD protocol (usually a `static` protocol holding the anycast prefixes): enable/disable.
    BirdProtocol(BirdProtocolName),
    /// An FRR `network` statement under `router bgp` / `address-family`, with or without a route-map: the
    /// normal route and its degraded variants are the same prefix with different route-maps.
    FrrNetwork(FrrNetwork),
    /// An FRR BGP neighbor: `neighbor X shutdown` withdraws everything on that session.
    FrrNeighbor(FrrNeighbor),
}

impl fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteTarget::BirdProtocol(p) => write!(f, "bird protocol {p}"),
            RouteTarget::FrrNetwork(n) => write!(f, "frr network {n}"),
            RouteTarget::FrrNeighbor(n) => write!(f, "frr neighbor {n}"),
        }
    }
}

/// Longest BIRD symbol (BIRD 2's `SYM_MAX_LEN`).
pub const BIRD_PROTOCOL_NAME_MAX_LEN: usize = 64;

validated_name! {
    /// A BIRD protocol name that is safe to send on the control socket: BIRD symbol syntax, no glob characters.
    ///
    /// Allowed are ASCII letters, digits, `_`, `-` and `.`, 1 to 64 bytes: the plain symbols of `bird.conf`
    /// (`anycast_dns`) and the ones it writes in apostrophes (`'anycast-dns.v4'`, given here without them).
    /// Anything else is rejected before it reaches BIRD: `*` and `?` because BIRD would treat the name as a
    /// pattern and act on every protocol it matches, quotes and spaces because they would change the command.
    pub struct BirdProtocolName;
        error: BirdProtocolNameError;
        validate: validate_bird_protocol_name;
        daemon: "BIRD";
}

fn validate_bird_protocol_name(name: String) -> Result<String, BirdProtocolNameError> {
    if name.is_empty() {
        return Err(BirdProtocolNameError::Empty);
    }
    if let Some((position, ch)) = name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(match ch {
            '*' | '?' => BirdProtocolNameError::Pattern { name, ch },
            '\'' | '"' => BirdProtocolNameError::Quoted { name },
            _ => BirdProtocolNameError::InvalidCharacter { name, ch, position },
        });
    }
    if name.len() > BIRD_PROTOCOL_NAME_MAX_LEN {
        return Err(BirdProtocolNameError::TooLong {
            len: name.len(),
            name,
        });
    }
    Ok(name)
}

/// Why a string is not an acceptable BIRD protocol name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BirdProtocolNameError {
    /// The name is empty.
    #[error(
        "BIRD protocol name is empty: give the name of a protocol from bird.conf, e.g. `anycast_dns`"
    )]
    Empty,
    /// Longer than BIRD allows for a symbol.
    #[error("BIRD protocol name {name:?} is {len} bytes long; BIRD symbols have at most 64")]
    TooLong {
        /// The rejected name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Contains `*` or `?`, which BIRD would expand as a pattern over all protocol names.
    #[error(
        "BIRD protocol name {name:?} contains the pattern character {ch:?}: BIRD would enable/disable every \
         protocol it matches; name exactly one protocol"
    )]
    Pattern {
        /// The rejected name.
        name: String,
        /// The pattern character.
        ch: char,
    },
    /// Written with quotes or apostrophes.
    #[error(
        "BIRD protocol name {name:?} contains quotes: give the bare name (for `protocol static 'anycast-dns'` \
         write anycast-dns)"
    )]
    Quoted {
        /// The rejected name.
        name: String,
    },
    /// Any other character outside BIRD's symbol syntax.
    #[error(
        "BIRD protocol name {name:?} contains {ch:?} at byte {position}: only ASCII letters, digits, '_', '-' \
         and '.' are allowed"
    )]
    InvalidCharacter {
        /// The rejected name.
        name: String,
        /// The first offending character.
        ch: char,
        /// Its byte offset.
        position: usize,
    },
}

/// One variant of an FRR `network` statement: `network PREFIX [route-map NAME]`.
///
/// FRR keeps at most one `network` statement per prefix, so a degraded announcement is not a second route
/// but the same prefix with another route-map (`network 203.0.113.53/32 route-map NSBEACON-DEGRADED`).
/// `network P route-map M` switches the route-map in place, so the peer sees an update and never a
/// withdrawal. The FRR backend therefore treats `(P, M)` as announced only while P is configured with
/// exactly route-map M (`None` = none), and withdrawing `(P, M)` while another variant of P is active leaves
/// it alone: that is what makes the daemon's make-before-break order (announce the new variant, then
/// withdraw the old one) switch without a gap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrrNetwork {
    /// The prefix of the `network` statement (no host bits set; the backend checks).
    pub prefix: ipnet::IpNet,
    /// The route-map attached to the statement; `None` is a plain `network P`.
    pub route_map: Option<RouteMapName>,
}

impl FrrNetwork {
    /// The variant of `prefix` that carries `route_map` (`None` for the plain, healthy announcement).
    pub fn new(prefix: ipnet::IpNet, route_map: Option<RouteMapName>) -> FrrNetwork {
        FrrNetwork { prefix, route_map }
    }
}

impl From<ipnet::IpNet> for FrrNetwork {
    /// A plain `network P`, without a route-map.
    fn from(prefix: ipnet::IpNet) -> FrrNetwork {
        FrrNetwork::new(prefix, None)
    }
}

impl fmt::Display for FrrNetwork {
    /// `203.0.113.53/32` or `203.0.113.53/32 route-map NSBEACON-DEGRADED`, as in FRR's configuration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.route_map {
            None => write!(f, "{}", self.prefix),
            Some(map) => write!(f, "{} route-map {map}", self.prefix),
        }
    }
}

impl FromStr for FrrNetwork {
    type Err = FrrNetworkParseError;

    /// Accepts `PREFIX` or `PREFIX route-map NAME` (words separated by whitespace). The prefix must have no
    /// host bits set: FRR would silently mask them and then announce another prefix than the one read back.
    fn from_str(s: &str) -> Result<FrrNetwork, FrrNetworkParseError> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let (prefix_text, route_map) = match words.as_slice() {
            [prefix] => (*prefix, None),
            [prefix, "route-map", name] => (*prefix, Some(RouteMapName::new(*name)?)),
            _ => {
                return Err(FrrNetworkParseError::Syntax { text: s.to_owned() });
            }
        };
        let prefix: ipnet::IpNet =
            prefix_text
                .parse()
                .map_err(|_| FrrNetworkParseError::Prefix {
                    text: prefix_text.to_owned(),
                })?;
        if prefix.trunc() != prefix {
            return Err(FrrNetworkParseError::HostBits {
                prefix,
                canonical: prefix.trunc(),
            });
        }
        Ok(FrrNetwork::new(prefix, route_map))
    }
}

/// Why a string is not an FRR network target (`PREFIX [route-map NAME]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrrNetworkParseError {
    /// Not one or three words of the form `PREFIX [route-map NAME]`.
    #[error(
        "{text:?} is not an FRR network: write a prefix, optionally followed by `route-map NAME` \
         (e.g. \"203.0.113.53/32\" or \"203.0.113.53/32 route-map NSBEACON-DEGRADED\")"
    )]
    Syntax {
        /// The text as given.
        text: String,
    },
    /// The first word is not an IP prefix.
    #[error(
        "{text:?} is not an IP prefix: write it with a length, e.g. 203.0.113.53/32 or 2001:db8::53/128"
    )]
    Prefix {
        /// The word as given.
        text: String,
    },
    /// Host bits set: FRR would silently announce the masked network instead.
    #[error(
        "{prefix} has host bits set: FRR would announce {canonical} instead; write {canonical}"
    )]
    HostBits {
        /// The prefix as given.
        prefix: ipnet::IpNet,
        /// The network FRR would use.
        canonical: ipnet::IpNet,
    },
    /// The route-map name is not acceptable.
    #[error(transparent)]
    RouteMap(#[from] RouteMapNameError),
}

/// Longest route-map name nsbeacon accepts. FRR itself has no limit; this bound keeps commands and error
/// messages reasonable and is far above names seen in practice.
pub const ROUTE_MAP_NAME_MAX_LEN: usize = 128;

validated_name! {
    /// An FRR route-map name that is safe on a vtysh command line: `network P route-map NAME`.
    ///
    /// FRR accepts any word without whitespace. vtysh splits each `-c` line on whitespace and runs an embedded
    /// newline as a second command, so whitespace and control characters could change what runs: they are
    /// rejected, and so are non-ASCII characters, quotes (error messages render commands in single quotes,
    /// pasteable into a shell) and names longer than [`ROUTE_MAP_NAME_MAX_LEN`] bytes.
    pub struct RouteMapName;
        error: RouteMapNameError;
        validate: validate_route_map_name;
        daemon: "FRR";
}

fn validate_route_map_name(name: String) -> Result<String, RouteMapNameError> {
    if name.is_empty() {
        return Err(RouteMapNameError::Empty);
    }
    if let Some((position, ch)) = name
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_graphic() || c == '\'' || c == '"')
    {
        return Err(RouteMapNameError::InvalidCharacter { name, ch, position });
    }
    if name.len() > ROUTE_MAP_NAME_MAX_LEN {
        return Err(RouteMapNameError::TooLong {
            len: name.len(),
            name,
        });
    }
    Ok(name)
}

/// Why a string is not an acceptable FRR route-map name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteMapNameError {
    /// The name is empty.
    #[error(
        "FRR route-map name is empty: give the name of a route-map from FRR's config, e.g. NSBEACON-DEGRADED"
    )]
    Empty,
    /// Longer than nsbeacon accepts.
    #[error("FRR route-map name {name:?} is {len} bytes long; at most 128 are accepted")]
    TooLong {
        /// The rejected name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Whitespace, a control character, a quote or a non-ASCII character.
    #[error(
        "FRR route-map name {name:?} contains {ch:?} at byte {position}: only printable ASCII without spaces \
         or quotes is accepted (vtysh would split the command there)"
    )]
    InvalidCharacter {
        /// The rejected name.
        name: String,
        /// The first offending character.
        ch: char,
        /// Its byte offset.
        position: usize,
    },
}

/// An FRR BGP neighbor: an IP address or an interface name (unnumbered BGP).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FrrNeighbor {
    /// A numbered neighbor.
    Address(std::net::IpAddr),
    /// An unnumbered neighbor on an interface.
    Interface(String),
}

impl fmt::Display for FrrNeighbor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrrNeighbor::Address(a) => write!(f, "{a}"),
            FrrNeighbor::Interface(i) => f.write_str(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_protocol_names_follow_bird_symbol_syntax() {
        for ok in [
            "anycast_dns",
            "upstream1",
            "_x",
            "anycast-dns.v4",
            "9lives",
            &"a".repeat(64),
        ] {
            assert_eq!(
                ok.parse::<BirdProtocolName>().map(|n| n.to_string()),
                Ok(ok.to_owned())
            );
        }
        assert_eq!(
            "".parse::<BirdProtocolName>(),
            Err(BirdProtocolNameError::Empty)
        );
        assert!(matches!(
            "anycast*".parse::<BirdProtocolName>(),
            Err(BirdProtocolNameError::Pattern { ch: '*', .. })
        ));
        assert!(matches!(
            "any?ast".parse::<BirdProtocolName>(),
            Err(BirdProtocolNameError::Pattern { ch: '?', .. })
        ));
        assert!(matches!(
            "\"anycast\"".parse::<BirdProtocolName>(),
            Err(BirdProtocolNameError::Quoted { .. })
        ));
        assert!(matches!(
            "'anycast-dns'".parse::<BirdProtocolName>(),
            Err(BirdProtocolNameError::Quoted { .. })
        ));
        assert!(matches!(
            "a b".parse::<BirdProtocolName>(),
            Err(BirdProtocolNameError::InvalidCharacter {
                ch: ' ',
                position: 1,
                ..
            })
        ));
        for bad in ["x\ndisable all", "x;y", "é", "a\\b", "x\0"] {
            assert!(
                matches!(
                    bad.parse::<BirdProtocolName>(),
                    Err(BirdProtocolNameError::InvalidCharacter { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            BirdProtocolName::try_from("a".repeat(65)),
            Err(BirdProtocolNameError::TooLong { len: 65, .. })
        ));
    }

    #[test]
    fn frr_networks_parse_and_display() {
        let plain: FrrNetwork = "203.0.113.53/32".parse().expect("plain");
        assert_eq!(
            plain,
            FrrNetwork::from("203.0.113.53/32".parse::<ipnet::IpNet>().expect("net"))
        );
        assert_eq!(plain.to_string(), "203.0.113.53/32");
        let degraded: FrrNetwork = "  2001:db8::53/128 \troute-map NSBEACON-DEGRADED "
            .parse()
            .expect("with route-map");
        assert_eq!(
            degraded.route_map.as_ref().map(RouteMapName::as_str),
            Some("NSBEACON-DEGRADED")
        );
        assert_eq!(
            degraded.to_string(),
            "2001:db8::53/128 route-map NSBEACON-DEGRADED"
        );
        assert_eq!(
            degraded.to_string().parse::<FrrNetwork>(),
            Ok(degraded.clone())
        );
        assert_eq!(
            RouteTarget::FrrNetwork(degraded).to_string(),
            "frr network 2001:db8::53/128 route-map NSBEACON-DEGRADED"
        );
        for bad in [
            "",
            "203.0.113.53/32 route-map",
            "203.0.113.53/32 NSBEACON-DEGRADED",
            "203.0.113.53/32 route-map A B",
            "203.0.113.53/32 label-index 5",
        ] {
            assert!(
                matches!(
                    bad.parse::<FrrNetwork>(),
                    Err(FrrNetworkParseError::Syntax { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            "203.0.113.53".parse::<FrrNetwork>(),
            Err(FrrNetworkParseError::Prefix { .. })
        ));
        let err = "203.0.113.1/24"
            .parse::<FrrNetwork>()
            .expect_err("host bits");
        assert!(err.to_string().contains("write 203.0.113.0/24"), "{err}");
        assert!(matches!(
            "203.0.113.53/32 route-map a'b".parse::<FrrNetwork>(),
            Err(FrrNetworkParseError::RouteMap(
                RouteMapNameError::InvalidCharacter { ch: '\'', .. }
            ))
        ));
    }

    #[test]
    fn route_map_names_are_single_printable_words() {
        for ok in [
            "NSBEACON-DEGRADED",
            "rm:x.y/z+@-_*",
            "a!b#c",
            &"A".repeat(128),
        ] {
            assert_eq!(
                ok.parse::<RouteMapName>().map(|n| n.to_string()),
                Ok(ok.to_owned())
            );
        }
        assert_eq!("".parse::<RouteMapName>(), Err(RouteMapNameError::Empty));
        for bad in [
            "a b",
            "a\nno router bgp 65001",
            "a\tb",
            "x\0",
            "é",
            "a'b",
            "\"a\"",
        ] {
            assert!(
                matches!(
                    bad.parse::<RouteMapName>(),
                    Err(RouteMapNameError::InvalidCharacter { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            RouteMapName::new("A".repeat(129)),
            Err(RouteMapNameError::TooLong { len: 129, .. })
        ));
        let name: RouteMapName = serde_json::from_str("\"NSBEACON-GSHUT\"").expect("valid");
        assert_eq!(name.as_str(), "NSBEACON-GSHUT");
        assert!(serde_json::from_str::<RouteMapName>("\"a b\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn accepted_route_map_names_are_one_vtysh_word(name in "\\PC{0,140}") {
            if let Ok(valid) = name.parse::<RouteMapName>() {
                proptest::prop_assert!(valid.as_str().len() <= ROUTE_MAP_NAME_MAX_LEN);
                proptest::prop_assert!(valid.as_str().bytes().all(|b| b.is_ascii_graphic() && b != b'\'' && b != b'"'));
            }
        }

        #[test]
        fn frr_network_display_round_trips(text in "\\PC{0,60}") {
            if let Ok(network) = text.parse::<FrrNetwork>() {
                proptest::prop_assert_eq!(network.to_string().parse::<FrrNetwork>(), Ok(network));
            }
        }

        #[test]
        fn accepted_bird_protocol_names_are_safe_to_quote(name in "\\PC{0,80}") {
            if let Ok(valid) = name.parse::<BirdProtocolName>() {
                proptest::prop_assert!(valid.as_str().len() <= BIRD_PROTOCOL_NAME_MAX_LEN);
                proptest::prop_assert!(valid.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)));
            }
        }
    }

    #[test]
    fn bird_protocol_names_deserialize_with_validation() {
        let name: BirdProtocolName = serde_json::from_str("\"anycast_dns\"").expect("valid");
        assert_eq!(name.as_str(), "anycast_dns");
        assert_eq!(
            serde_json::to_string(&name).expect("serializes"),
            "\"anycast_dns\""
        );
        let err = serde_json::from_str::<BirdProtocolName>("\"anycast*\"").expect_err("pattern");
        assert!(err.to_string().contains("pattern character"), "{err}");
    }
}

/// Serde through `Display` and `FromStr`: a target's text form is its JSON form, and reading it back
/// validates it again, so an event log cannot smuggle in a name the config would have rejected.
macro_rules! serde_via_text {
    ($($ty:ty),*) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_via_text!(FrrNetwork, FrrNeighbor);

#[cfg(test)]
mod serde_tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_json_and_are_validated_when_read() {
        let targets = [
            RouteTarget::BirdProtocol(BirdProtocolName::new("anycast_dns").expect("valid")),
            RouteTarget::FrrNetwork(
                "203.0.113.53/32 route-map NSB-DEGRADED"
                    .parse()
                    .expect("valid"),
            ),
            RouteTarget::FrrNeighbor("192.0.2.1".parse().expect("valid")),
        ];
        let json = serde_json::to_string(&targets).expect("serializes");
        assert_eq!(
            json,
            r#"[{"bird_protocol":"anycast_dns"},{"frr_network":"203.0.113.53/32 route-map NSB-DEGRADED"},{"frr_neighbor":"192.0.2.1"}]"#
        );
        let back: Vec<RouteTarget> = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, targets);
        assert!(serde_json::from_str::<RouteTarget>(r#"{"bird_protocol":"a*"}"#).is_err());
        assert!(
            serde_json::from_str::<RouteTarget>(r#"{"frr_network":"203.0.113.53/24"}"#).is_err()
        );
    }
}
