//! RFC 1982 serial number arithmetic for SOA serials (32-bit, SERIAL_BITS = 32).
//!
//! Serials wrap: `1` is *after* `4294967295`. Plain integer comparison would call a zone that just wrapped
//! "behind by four billion". Two serials exactly 2^31 apart are incomparable (RFC 1982 §3.2 leaves the
//! result undefined); [`compare_serials`] reports that as [`SerialOrder::Undefined`] and callers treat it
//! as a failure, because a server cannot be shown to be current.

/// Half the serial space: the largest distance RFC 1982 can order.
const HALF: u32 = 1 << 31;

/// How a local serial relates to a reference serial under RFC 1982.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SerialOrder {
    /// Same serial.
    Equal,
    /// Local is behind the reference by `lag` increments (1 ..= 2^31 - 1).
    Behind {
        /// Reference minus local, modulo 2^32.
        lag: u32,
    },
    /// Local is ahead of the reference by `lead` increments (1 ..= 2^31 - 1): e.g. the reference is a
    /// stale hidden primary, or the local server was updated first.
    Ahead {
        /// Local minus reference, modulo 2^32.
        lead: u32,
    },
    /// Exactly 2^31 apart: RFC 1982 defines no order.
    Undefined,
}

/// Compares `local` with `reference` using RFC 1982 serial arithmetic.
///
/// ```
/// use nsbeacon_prober::{compare_serials, SerialOrder};
/// assert_eq!(compare_serials(5, 7), SerialOrder::Behind { lag: 2 });
/// assert_eq!(compare_serials(u32::MAX, 1), SerialOrder::Behind { lag: 2 }); // wrapped
/// assert_eq!(compare_serials(1, u32::MAX), SerialOrder::Ahead { lead: 2 });
/// assert_eq!(compare_serials(0, 1 << 31), SerialOrder::Undefined);
/// ```
pub fn compare_serials(local: u32, reference: u32) -> SerialOrder {
    let forward = reference.wrapping_sub(local);
    match forward {
        0 => SerialOrder::Equal,
        HALF => SerialOrder::Undefined,
        d if d < HALF => SerialOrder::Behind { lag: d },
        d => SerialOrder::Ahead {
            lead: d.wrapping_neg(),
        },
    }
}

/// RFC 1982 "s1 < s2": true when `a` is strictly before `b`.
pub fn serial_lt(a: u32, b: u32) -> bool {
    matches!(compare_serials(a, b), SerialOrder::Behind { .. })
}

/// RFC 1982 serial addition: `s + n` for `n` in `0 ..= 2^31 - 1`; `None` when `n` is out of that range
/// (the RFC leaves such additions undefined).
pub fn serial_add(serial: u32, n: u32) -> Option<u32> {
    (n < HALF).then(|| serial.wrapping_add(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_points() {
        assert_eq!(compare_serials(7, 7), SerialOrder::Equal);
        assert_eq!(
            compare_serials(0, HALF - 1),
            SerialOrder::Behind { lag: HALF - 1 }
        );
        assert_eq!(
            compare_serials(HALF - 1, 0),
            SerialOrder::Ahead { lead: HALF - 1 }
        );
        assert_eq!(compare_serials(u32::MAX, 0), SerialOrder::Behind { lag: 1 });
        assert_eq!(compare_serials(10, 10 + HALF), SerialOrder::Undefined);
        assert_eq!(serial_add(u32::MAX, 1), Some(0));
        assert_eq!(serial_add(1, HALF), None);
    }

    proptest! {
        #[test]
        fn add_is_after(s in any::<u32>(), n in 1u32..HALF) {
            let later = serial_add(s, n).expect("n < 2^31");
            prop_assert_eq!(compare_serials(s, later), SerialOrder::Behind { lag: n });
            prop_assert_eq!(compare_serials(later, s), SerialOrder::Ahead { lead: n });
            prop_assert!(serial_lt(s, later));
            prop_assert!(!serial_lt(later, s));
        }

        #[test]
        fn antisymmetric(a in any::<u32>(), b in any::<u32>()) {
            let ab = compare_serials(a, b);
            let ba = compare_serials(b, a);
            match ab {
                SerialOrder::Equal => prop_assert_eq!(ba, SerialOrder::Equal),
                SerialOrder::Undefined => prop_assert_eq!(ba, SerialOrder::Undefined),
                SerialOrder::Behind { lag } => prop_assert_eq!(ba, SerialOrder::Ahead { lead: lag }),
                SerialOrder::Ahead { lead } => prop_assert_eq!(ba, SerialOrder::Behind { lag: lead }),
            }
            prop_assert!(!(serial_lt(a, b) && serial_lt(b, a)));
        }

        #[test]
        fn equal_only_when_same(a in any::<u32>(), b in any::<u32>()) {
            prop_assert_eq!(compare_serials(a, b) == SerialOrder::Equal, a == b);
        }

        #[test]
        fn distance_bounded(a in any::<u32>(), b in any::<u32>()) {
            match compare_serials(a, b) {
                SerialOrder::Behind { lag } => prop_assert!(lag > 0 && lag < HALF),
                SerialOrder::Ahead { lead } => prop_assert!(lead > 0 && lead < HALF),
                SerialOrder::Undefined => prop_assert_eq!(b.wrapping_sub(a), HALF),
                SerialOrder::Equal => prop_assert_eq!(a, b),
            }
        }
    }
}
