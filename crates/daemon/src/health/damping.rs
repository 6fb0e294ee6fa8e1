//! Flap damping state: an exponentially decaying penalty with suppress/reuse thresholds and a maximum
//! hold-down (after RFC 2439, applied to one node's own announcement).

use std::time::{Duration, Instant};

use crate::config::{DampingConfig, fmt_duration};

/// Penalties below this are reset to zero, so an idle service exports a clean 0.
const NEGLIGIBLE: f64 = 0.5;

/// Damping state of one service. Pure: time only moves through [`Damping::advance`].
#[derive(Debug, Clone)]
pub struct Damping {
    config: DampingConfig,
    penalty: f64,
    updated: Instant,
    suppressed_since: Option<Instant>,
    flaps: u64,
}

impl Damping {
    /// No penalty, not suppressed.
    pub fn new(config: DampingConfig, now: Instant) -> Self {
        Self {
            config,
            penalty: 0.0,
            updated: now,
            suppressed_since: None,
            flaps: 0,
        }
    }

    /// Decays the penalty to `now`, releases an expired suppression, then records a flap if `flapped`
    /// (adding the penalty, capped at [`DampingConfig::ceiling`], and suppressing above the threshold).
    pub fn advance(&mut self, now: Instant, flapped: bool) {
        self.decay(now);
        if let Some(since) = self.suppressed_since
            && (self.penalty < self.config.reuse
                || now.saturating_duration_since(since) >= self.config.max_hold_down)
        {
            self.suppressed_since = None;
        }
        if flapped && self.config.enabled {
            self.flaps += 1;
            self.penalty = (self.penalty + self.config.penalty).min(self.config.ceiling());
            if self.penalty > self.config.suppress && self.suppressed_since.is_none() {
                self.suppressed_since = Some(now);
            }
        }
    }

    fn decay(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        if now > self.updated {
            self.updated = now;
        }
        if self.penalty == 0.0 || elapsed.is_zero() {
            return;
        }
        let half_lives =
            elapsed.as_secs_f64() / self.config.half_life.as_secs_f64().max(f64::MIN_POSITIVE);
        self.penalty *= 0.5f64.powf(half_lives);
        if self.penalty < NEGLIGIBLE {
            self.penalty = 0.0;
        }
    }

    /// Switches to new settings, keeping the penalty (capped at the new ceiling) and any suppression;
    /// disabling damping clears both.
    pub fn reconfigure(&mut self, config: DampingConfig, now: Instant) {
        self.decay(now);
        self.config = config;
        if config.enabled {
            self.penalty = self.penalty.min(config.ceiling());
        } else {
            self.penalty = 0.0;
            self.suppressed_since = None;
        }
    }

    /// The penalty as of the last [`Damping::advance`].
    pub fn penalty(&self) -> f64 {
        self.penalty
    }

    /// Whether the service is held withdrawn.
    pub fn suppressed(&self) -> bool {
        self.suppressed_since.is_some()
    }

    /// Flaps recorded since start.
    pub fn flaps(&self) -> u64 {
        self.flaps
    }

    /// Time until the penalty decays below the reuse threshold (zero if it already has).
    pub fn time_to_reuse(&self) -> Duration {
        if self.penalty <= self.config.reuse {
            return Duration::ZERO;
        }
        let half_lives = (self.penalty / self.config.reuse).log2();
        Duration::from_secs_f64((self.config.half_life.as_secs_f64() * half_lives).clamp(0.0, 1e9))
    }

    /// Time until the suppression is released, whichever of reuse and max hold-down comes first.
    pub fn time_to_release(&self, now: Instant) -> Option<Duration> {
        let since = self.suppressed_since?;
        let hold_left = self
            .config
            .max_hold_down
            .saturating_sub(now.saturating_duration_since(since));
        Some(self.time_to_reuse().min(hold_left))
    }

    /// A reason for a suppressed service, with the numbers an operator needs.
    pub fn describe_suppression(&self, now: Instant) -> String {
        let release = self.time_to_release(now).unwrap_or_default();
        format!(
            "flap damping: suppressed after {} flap(s), penalty {:.0} above the suppress threshold {:.0}; held \
             withdrawn until it decays below {:.0} (about {}, at most {} in all)",
            self.flaps,
            self.penalty,
            self.config.suppress,
            self.config.reuse,
            fmt_duration(Duration::from_secs(
                release.as_secs() + u64::from(release.subsec_nanos() > 0)
            )),
            fmt_duration(self.config.max_hold_down)
        )
    }
}
