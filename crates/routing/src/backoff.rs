//! The pause before the next connect attempt after consecutive failures, shared by every client of a
//! routing daemon's socket (BIRD control socket, BIRD log watch, FRR vty socket).

use std::time::Duration;

/// `initial` after the first failure, doubling per further failure, never more than `max`; zero when
/// nothing has failed.
pub(crate) fn after_failures(
    initial: Duration,
    max: Duration,
    consecutive_failures: u32,
) -> Duration {
    if consecutive_failures == 0 {
        return Duration::ZERO;
    }
    let exponent = (consecutive_failures - 1).min(16);
    initial.saturating_mul(1 << exponent).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let delays: Vec<_> = (0..7)
            .map(|n| after_failures(ms(50), ms(2000), n))
            .collect();
        assert_eq!(
            delays,
            [ms(0), ms(50), ms(100), ms(200), ms(400), ms(800), ms(1600)]
        );
        assert_eq!(after_failures(ms(50), ms(2000), u32::MAX), ms(2000));
    }
}
