//! The one exponential backoff of nsbeacon: the pause before the next attempt after consecutive failures.
//!
//! Every client of a routing daemon's socket (BIRD control socket, BIRD log watch, FRR vty socket) spaces
//! its connect attempts with it, and the daemon's reconciler can space its retries with it too, so the
//! formula (and its overflow guard) exists once.

use std::time::Duration;

/// `initial` after the first failure, doubling per further failure, never more than `max`; zero when
/// nothing has failed.
///
/// A value, not a counter: the caller keeps its own count of consecutive failures (and resets it when it
/// knows the peer is back), so one `Backoff` can be a `const` shared by many clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`. A `max` below `initial` caps every pause at
    /// `max`.
    pub const fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max }
    }

    /// The pause after the first failure.
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest pause.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The pause after `consecutive_failures` failures in a row: zero for none, `initial` for one, doubling
    /// per further failure up to `max`. Never overflows, however large the count.
    pub fn after_failures(&self, consecutive_failures: u32) -> Duration {
        if consecutive_failures == 0 {
            return Duration::ZERO;
        }
        let exponent = (consecutive_failures - 1).min(16);
        self.initial.saturating_mul(1 << exponent).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let backoff = Backoff::new(ms(50), ms(2000));
        let delays: Vec<_> = (0..7).map(|n| backoff.after_failures(n)).collect();
        assert_eq!(
            delays,
            [ms(0), ms(50), ms(100), ms(200), ms(400), ms(800), ms(1600)]
        );
        assert_eq!(backoff.after_failures(u32::MAX), ms(2000));
        assert_eq!(Backoff::new(Duration::MAX, ms(5)).after_failures(40), ms(5));
    }
}
