//! Validated inputs for FRR: ASN, VRF name, neighbor, prefix.
//!
//! Everything that ends up in a `vtysh -c` line is validated here first. vtysh splits a `-c` argument on
//! whitespace and treats an embedded newline as a second command, so a value with a space or a newline in
//! it could change which command runs: such values never reach vtysh.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;

use super::FrrError;
use crate::FrrNeighbor;
use crate::name::validated_name;

/// A BGP autonomous system number as FRR accepts it in `router bgp ASN`.
///
/// 0 is reserved (RFC 7607) and FRR rejects it, so it is rejected here before anything is spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asn(u32);

impl Asn {
    /// Validates a 4-byte ASN (1 to 4294967295).
    pub fn new(value: u32) -> Result<Asn, FrrError> {
        if value == 0 {
            return Err(FrrError::InvalidAsn {
                value: value.to_string(),
                reason: "AS 0 is reserved (RFC 7607); use the ASN of the `router bgp` instance"
                    .into(),
            });
        }
        Ok(Asn(value))
    }

    /// The ASN as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Asn {
    type Err = FrrError;

    /// Accepts plain decimal (`65001`, `4200000000`) and asdot (`1.10`, RFC 5396).
    fn from_str(s: &str) -> Result<Asn, FrrError> {
        let invalid = |reason: &str| FrrError::InvalidAsn {
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let all_digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let value = match s.split_once('.') {
            None if all_digits(s) => s
                .parse::<u32>()
                .map_err(|_| invalid("must be at most 4294967295"))?,
            Some((high, low)) if all_digits(high) && all_digits(low) => {
                let high: u16 = high
                    .parse()
                    .map_err(|_| invalid("asdot high part must be at most 65535"))?;
                let low: u16 = low
                    .parse()
                    .map_err(|_| invalid("asdot low part must be at most 65535"))?;
                (u32::from(high) << 16) | u32::from(low)
            }
            _ => return Err(invalid("expected a decimal number (65001) or asdot (1.10)")),
        };
        Asn::new(value)
    }
}

/// Longest VRF name FRR stores (`VRF_NAMSIZ` is 36 bytes including the terminating NUL).
const VRF_NAME_MAX: usize = 35;

validated_name! {
    /// A VRF name that is safe on a vtysh command line: `router bgp ASN vrf NAME`, `show bgp vrf NAME ...`.
    ///
    /// `default` is rejected (leave the VRF unset to use the default instance) and so is `all` (a keyword of
    /// `show bgp vrf all`, which would silently read every VRF). Accepted are 1 to 35 ASCII letters, digits,
    /// `-`, `_` or `.`, not starting with `-`.
    pub struct VrfName;
        error: FrrError;
        validate: validate_vrf_name;
        daemon: "FRR";
}

fn validate_vrf_name(name: String) -> Result<String, FrrError> {
    let reason = if name.is_empty() || name.len() > VRF_NAME_MAX {
        "must be 1 to 35 characters long"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "only ASCII letters, digits, '-', '_' and '.' are allowed"
    } else if name.starts_with('-') {
        "must not start with '-'"
    } else if name == "default" {
        "leave the VRF unset to use the default BGP instance"
    } else if name == "all" {
        "`all` is a vtysh keyword, not a VRF name"
    } else {
        return Ok(name);
    };
    Err(FrrError::InvalidVrf {
        name,
        reason: reason.to_owned(),
    })
}

/// Longest Linux interface name (`IFNAMSIZ` is 16 including the terminating NUL).
const IFNAME_MAX: usize = 15;

/// Why a neighbor that is not an IP address is not an acceptable interface name either; its message is the
/// `reason` of [`FrrError::InvalidNeighbor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum InterfaceNameError {
    /// Empty, or longer than Linux allows.
    #[error("an interface name must be 1 to 15 characters long")]
    Length,
    /// A character outside the safe set.
    #[error(
        "not an IP address, and not an interface name (only ASCII letters, digits, '-', '_' and '.')"
    )]
    Character,
    /// `-x` (an option to vtysh), `.` or `..`.
    #[error("not a valid interface name")]
    Reserved,
    /// Starts with a digit: more likely a mistyped address than an interface.
    #[error("not an IP address, and an interface name starting with a digit is refused")]
    LeadingDigit,
}

/// Checks that `name` is a Linux interface name that is safe on a vtysh command line.
fn validate_interface_name(name: &str) -> Result<(), InterfaceNameError> {
    if name.is_empty() || name.len() > IFNAME_MAX {
        return Err(InterfaceNameError::Length);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(InterfaceNameError::Character);
    }
    if name.starts_with('-') || name == "." || name == ".." {
        return Err(InterfaceNameError::Reserved);
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(InterfaceNameError::LeadingDigit);
    }
    Ok(())
}

/// Checks a neighbor built elsewhere (the enum's variants are public) before it reaches vtysh.
pub(crate) fn validate_neighbor(neighbor: &FrrNeighbor) -> Result<(), FrrError> {
    match neighbor {
        FrrNeighbor::Address(_) => Ok(()),
        FrrNeighbor::Interface(name) => {
            validate_interface_name(name).map_err(|reason| FrrError::InvalidNeighbor {
                value: name.clone(),
                reason: reason.to_string(),
            })
        }
    }
}

impl FromStr for FrrNeighbor {
    type Err = FrrError;

    /// An IP address (`192.0.2.1`, `2001:db8::1`) or an interface name for unnumbered BGP (`eth0`).
    fn from_str(s: &str) -> Result<FrrNeighbor, FrrError> {
        if let Ok(addr) = s.parse() {
            return Ok(FrrNeighbor::Address(addr));
        }
        validate_interface_name(s).map_err(|reason| FrrError::InvalidNeighbor {
            value: s.to_owned(),
            reason: reason.to_string(),
        })?;
        Ok(FrrNeighbor::Interface(s.to_owned()))
    }
}

/// Checks that `prefix` has no host bits set.
///
/// FRR silently masks `network 192.0.2.1/24` to `192.0.2.0/24`, and read-back would then look for a
/// prefix that is not in the table: reject it and name the network that was probably meant.
pub(crate) fn validate_prefix(prefix: &IpNet) -> Result<(), FrrError> {
    let canonical = prefix.trunc();
    if canonical != *prefix {
        return Err(FrrError::InvalidPrefix {
            prefix: *prefix,
            reason: format!("host bits are set; did you mean {canonical}?"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asn_parsing() {
        assert_eq!("65001".parse::<Asn>().unwrap().get(), 65001);
        assert_eq!("4294967295".parse::<Asn>().unwrap().get(), u32::MAX);
        assert_eq!("1.10".parse::<Asn>().unwrap().get(), 65546);
        for bad in [
            "0",
            "",
            "-1",
            "4294967296",
            "65001 ",
            "1.65536",
            "1.",
            ".1",
            "AS65001",
            "1.2.3",
        ] {
            assert!(
                matches!(bad.parse::<Asn>(), Err(FrrError::InvalidAsn { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn vrf_names() {
        for good in ["blue", "vrf-1", "red_2", "a.b", "x"] {
            assert_eq!(VrfName::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "default",
            "all",
            "-x",
            "blue green",
            "blue\nend",
            "a;b",
            "vrf/1",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(
                matches!(VrfName::new(bad), Err(FrrError::InvalidVrf { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn neighbors() {
        assert_eq!(
            "192.0.2.1".parse::<FrrNeighbor>().unwrap(),
            FrrNeighbor::Address("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            "2001:db8::1".parse::<FrrNeighbor>().unwrap(),
            FrrNeighbor::Address("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            "eth0.100".parse::<FrrNeighbor>().unwrap(),
            FrrNeighbor::Interface("eth0.100".into())
        );
        for bad in [
            "",
            "eth0 shutdown",
            "eth0\nno router bgp",
            "fe80::1%eth0",
            "192.0.2.300x",
            "averyveryverylongifname",
            "-x",
            "..",
        ] {
            assert!(
                matches!(
                    bad.parse::<FrrNeighbor>(),
                    Err(FrrError::InvalidNeighbor { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(validate_neighbor(&FrrNeighbor::Interface("a b".into())).is_err());
    }

    #[test]
    fn prefixes() {
        assert!(validate_prefix(&"203.0.113.53/32".parse().unwrap()).is_ok());
        assert!(validate_prefix(&"2001:db8::/48".parse().unwrap()).is_ok());
        let err = validate_prefix(&"192.0.2.1/24".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("192.0.2.0/24"), "{err}");
    }
}
