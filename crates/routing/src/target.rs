//! Route targets: the things nsbeacon announces and withdraws, validated before they reach a daemon.

use std::fmt;
use std::str::FromStr;

/// One thing the reconciler can announce or withdraw.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// A BIRD protocol (usually a `static` protocol holding the anycast prefixes): enable/disable.
    BirdProtocol(BirdProtocolName),
    /// An FRR `network` statement under `router bgp` / `address-family`.
    FrrNetwork(ipnet::IpNet),
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

/// A BIRD protocol name that is safe to send on the control socket: BIRD symbol syntax, no glob characters.
///
/// Allowed are ASCII letters, digits, `_`, `-` and `.`, 1 to 64 bytes: the plain symbols of `bird.conf`
/// (`anycast_dns`) and the ones it writes in apostrophes (`'anycast-dns.v4'`, given here without them).
/// Anything else is rejected before it reaches BIRD: `*` and `?` because BIRD would treat the name as a
/// pattern and act on every protocol it matches, quotes and spaces because they would change the command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct BirdProtocolName(String);

impl BirdProtocolName {
    /// Validates `name` (see the type's documentation for the rules).
    pub fn new(name: impl Into<String>) -> Result<BirdProtocolName, BirdProtocolNameError> {
        let name = name.into();
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
        Ok(BirdProtocolName(name))
    }

    /// The name as BIRD knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BirdProtocolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BirdProtocolName {
    type Err = BirdProtocolNameError;

    fn from_str(s: &str) -> Result<BirdProtocolName, BirdProtocolNameError> {
        BirdProtocolName::new(s)
    }
}

impl TryFrom<String> for BirdProtocolName {
    type Error = BirdProtocolNameError;

    fn try_from(s: String) -> Result<BirdProtocolName, BirdProtocolNameError> {
        BirdProtocolName::new(s)
    }
}

impl From<BirdProtocolName> for String {
    fn from(name: BirdProtocolName) -> String {
        name.0
    }
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

    proptest::proptest! {
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
