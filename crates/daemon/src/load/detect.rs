//! From counter readings to rates, a moving baseline and the "overloaded" verdict. Pure: every call gets
//! the reading's `Instant`, so it is unit-tested without a server or a clock.
//!
//! - **Rates** are counter differences over the time between two good readings. A counter that went
//!   down (the server restarted) gives no rate for that reading, never a negative or huge one.
//! - **Baseline**: an exponentially weighted mean of the query rate with the time constant
//!   `baseline_window`. It is **frozen while overloaded**: otherwise a long flood would become the
//!   normal and the node would stop absorbing it exactly when it matters.
//! - **Overloaded** as soon as one reading is over a threshold: the rate above `max_qps`; above
//!   `overload_factor` x baseline and `min_qps` (once the baseline has [`WARMUP`] readings); UDP
//!   receive errors growing faster than `max_udp_errors` per second **while the server's statistics show
//!   it serving queries** (a hung server's buffer overflows too: errors alone must never keep a dead
//!   node announced). **Calm again** only after [`CALM`]
//!   readings in a row under every threshold (or without a signal), so one lucky interval in a flood
//!   does not end the absorption.

use std::time::Instant;

use crate::config::LoadConfig;

/// Good rate readings before the baseline is trusted by the factor rule.
pub const WARMUP: u32 = 5;

/// Readings in a row under every threshold that end an overload.
pub const CALM: u32 = 3;

/// What one read produced (each part is `None` when its read failed or is not configured).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// The server's request counter.
    pub queries: Option<u64>,
    /// The kernel's UDP `InErrors` and `RcvbufErrors`.
    pub udp_errors: Option<(u64, u64)>,
}

/// The detector's view after a reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    /// Queries per second since the previous good reading.
    pub qps: Option<f64>,
    /// The moving baseline (queries per second).
    pub baseline_qps: Option<f64>,
    /// Kernel UDP receive errors (`InErrors`) per second since the previous good reading.
    pub udp_errors_per_second: Option<f64>,
    /// Whether the server is overloaded.
    pub overloaded: bool,
    /// Why (or why not), in words: "2400 qps vs baseline 12 qps (threshold 120: overload_factor 10)".
    pub detail: String,
}

/// One service's detector.
#[derive(Debug, Clone)]
pub struct Detector {
    config: LoadConfig,
    last_queries: Option<(u64, Instant)>,
    last_udp: Option<(u64, Instant)>,
    baseline: Option<f64>,
    baseline_readings: u32,
    last_rate_at: Option<Instant>,
    overloaded: bool,
    calm: u32,
    /// What made the current overload start, kept while it lasts.
    cause: String,
}

impl Detector {
    /// A detector with no readings yet.
    pub fn new(config: LoadConfig) -> Self {
        Self {
            config,
            last_queries: None,
            last_udp: None,
            baseline: None,
            baseline_readings: 0,
            last_rate_at: None,
            overloaded: false,
            calm: 0,
            cause: String::new(),
        }
    }

    /// Takes new thresholds (SIGHUP) and keeps the baseline and the counters.
    pub fn reconfigure(&mut self, config: LoadConfig) {
        self.config = config;
    }

    /// Feeds one reading taken at `now`.
    pub fn observe(&mut self, reading: Reading, now: Instant) -> Assessment {
        let qps = reading
            .queries
            .and_then(|q| rate(&mut self.last_queries, q, now));
        let udp_rate = reading
            .udp_errors
            .and_then(|(in_errors, _)| rate(&mut self.last_udp, in_errors, now));

        let mut hot: Vec<String> = Vec::new();
        if let (Some(qps), Some(max)) = (qps, self.config.max_qps)
            && qps > max
        {
            hot.push(format!("{} qps over max_qps {}", round(qps), round(max)));
        }
        let threshold = self.factor_threshold();
        if let (Some(qps), Some(threshold), Some(baseline)) = (qps, threshold, self.baseline)
            && qps > threshold
        {
            hot.push(format!(
                "{} qps vs baseline {} qps (over {}: overload_factor {} x baseline, at least min_qps {})",
                round(qps),
                round(baseline),
                round(threshold),
                self.config.overload_factor,
                round(self.config.min_qps)
            ));
        }
        // Receive errors alone cannot tell an overloaded server from a hung one: a stopped server reads
        // nothing, so its socket buffer overflows under ordinary traffic too. They count only while the
        // server's own statistics answer and show it serving queries.
        let serving = qps.is_some_and(|q| q > 0.0);
        if let (Some(rate), Some(max), true) = (udp_rate, self.config.max_udp_errors, serving)
            && rate > max
        {
            hot.push(format!(
                "{} UDP receive errors/s over max_udp_errors {}",
                round(rate),
                round(max)
            ));
        }

        if hot.is_empty() {
            if self.overloaded {
                self.calm += 1;
                if self.calm >= CALM {
                    self.overloaded = false;
                    self.calm = 0;
                    self.cause.clear();
                }
            }
        } else {
            self.overloaded = true;
            self.calm = 0;
            self.cause = hot.join("; ");
        }

        // The baseline learns only from calm readings: a flood must never become the normal.
        if let Some(qps) = qps
            && !self.overloaded
        {
            let dt = self
                .last_rate_at
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
            self.baseline = Some(match self.baseline {
                None => qps,
                Some(b) => {
                    let alpha = 1.0 - (-dt / self.config.baseline_window.as_secs_f64()).exp();
                    b + alpha * (qps - b)
                }
            });
            self.baseline_readings = self.baseline_readings.saturating_add(1);
        }
        if qps.is_some() {
            self.last_rate_at = Some(now);
        }

        let detail = if self.overloaded && hot.is_empty() {
            format!(
                "{} (calming: {}/{CALM} readings under the thresholds)",
                self.cause, self.calm
            )
        } else if self.overloaded {
            self.cause.clone()
        } else {
            match (qps, self.baseline) {
                (Some(qps), Some(b)) => format!("{} qps, baseline {} qps", round(qps), round(b)),
                (Some(qps), None) => format!("{} qps", round(qps)),
                (None, _) if reading.queries.is_some() => {
                    "first reading or counter reset: no rate yet".to_owned()
                }
                (None, _) => "no query rate".to_owned(),
            }
        };
        Assessment {
            qps,
            baseline_qps: self.baseline,
            udp_errors_per_second: udp_rate,
            overloaded: self.overloaded,
            detail,
        }
    }

    /// The factor rule's threshold, once the baseline is warm.
    fn factor_threshold(&self) -> Option<f64> {
        let baseline = self.baseline?;
        (self.baseline_readings >= WARMUP)
            .then(|| (baseline * self.config.overload_factor).max(self.config.min_qps))
    }
}

/// Per-second rate of `value` since `last`, updating `last`; `None` for the first reading and after a
/// counter went down (a restart).
fn rate(last: &mut Option<(u64, Instant)>, value: u64, now: Instant) -> Option<f64> {
    let previous = last.replace((value, now));
    let (before, at) = previous?;
    let dt = now.saturating_duration_since(at).as_secs_f64();
    if value < before || dt <= 0.0 {
        return None;
    }
    Some((value - before) as f64 / dt)
}

/// Rounds for reasons: whole numbers above 10, one decimal below.
pub fn round(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{LoadSource, OverloadPolicy};

    fn config() -> LoadConfig {
        LoadConfig {
            source: LoadSource::None,
            kernel: true,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            overload_factor: 10.0,
            min_qps: 100.0,
            max_qps: None,
            max_udp_errors: Some(50.0),
            baseline_window: Duration::from_secs(60),
            overload: OverloadPolicy::Absorb {
                absorb_for: Duration::from_secs(600),
            },
        }
    }

    /// Feeds `qps` per second for `secs` readings, one per second, from counter `*q` at `*t`.
    fn feed(d: &mut Detector, q: &mut u64, t: &mut Instant, qps: u64, secs: u32) -> Assessment {
        let mut last = Assessment::default();
        for _ in 0..secs {
            *q += qps;
            *t += Duration::from_secs(1);
            last = d.observe(
                Reading {
                    queries: Some(*q),
                    udp_errors: Some((0, 0)),
                },
                *t,
            );
        }
        last
    }

    #[test]
    fn a_flood_is_overloaded_at_once_and_the_baseline_freezes() {
        let mut d = Detector::new(config());
        let (mut q, mut t) = (0, Instant::now());
        let calm = feed(&mut d, &mut q, &mut t, 50, 30);
        assert!(!calm.overloaded, "{calm:?}");
        let baseline = calm.baseline_qps.expect("baseline");
        assert!((baseline - 50.0).abs() < 1.0, "{baseline}");
        let flood = feed(&mut d, &mut q, &mut t, 5000, 1);
        assert!(flood.overloaded, "{flood:?}");
        assert!(
            flood.detail.contains("5000 qps vs baseline 50 qps"),
            "{}",
            flood.detail
        );
        // A long flood does not move the baseline.
        let long = feed(&mut d, &mut q, &mut t, 5000, 600);
        assert!(long.overloaded);
        assert_eq!(long.baseline_qps, Some(baseline));
        // Two calm readings are not enough; the third ends it.
        let one = feed(&mut d, &mut q, &mut t, 50, 2);
        assert!(one.overloaded, "{one:?}");
        assert!(one.detail.contains("calming: 2/3"), "{}", one.detail);
        let over = feed(&mut d, &mut q, &mut t, 50, 1);
        assert!(!over.overloaded, "{over:?}");
    }

    #[test]
    fn min_qps_warmup_and_counter_resets() {
        let mut d = Detector::new(config());
        let (mut q, mut t) = (0, Instant::now());
        // Idle node: 2 qps baseline; 90 qps is 45x but under min_qps.
        feed(&mut d, &mut q, &mut t, 2, 30);
        assert!(!feed(&mut d, &mut q, &mut t, 90, 1).overloaded);
        // Warm-up: a fresh detector does not use the factor rule before WARMUP rates.
        let mut fresh = Detector::new(config());
        let (mut q2, mut t2) = (0, Instant::now());
        feed(&mut fresh, &mut q2, &mut t2, 10, 3);
        assert!(!feed(&mut fresh, &mut q2, &mut t2, 100_000, 1).overloaded);
        // A counter reset gives no rate, not a huge or negative one.
        let mut r = Detector::new(config());
        let t0 = Instant::now();
        r.observe(
            Reading {
                queries: Some(1_000_000),
                udp_errors: None,
            },
            t0,
        );
        let reset = r.observe(
            Reading {
                queries: Some(5),
                udp_errors: None,
            },
            t0 + Duration::from_secs(1),
        );
        assert_eq!(reset.qps, None);
        assert!(!reset.overloaded);
        let after = r.observe(
            Reading {
                queries: Some(15),
                udp_errors: None,
            },
            t0 + Duration::from_secs(2),
        );
        assert_eq!(after.qps, Some(10.0));
    }

    /// A hung server (SIGSTOP) under ordinary traffic overflows its socket buffer just like an overloaded
    /// one; without its statistics answering, or with its query counter standing still, the receive
    /// errors are no evidence of an overload, and the node must be withdrawn, not absorbed.
    #[test]
    fn receive_errors_of_a_server_that_serves_nothing_are_not_an_overload() {
        let t0 = Instant::now();
        for queries in [(None, None), (Some(500), Some(500))] {
            let mut d = Detector::new(config());
            d.observe(
                Reading {
                    queries: queries.0,
                    udp_errors: Some((100, 90)),
                },
                t0,
            );
            let a = d.observe(
                Reading {
                    queries: queries.1,
                    udp_errors: Some((5000, 4990)),
                },
                t0 + Duration::from_secs(1),
            );
            assert!(!a.overloaded, "{queries:?}: {a:?}");
        }
    }

    #[test]
    fn max_qps_and_udp_errors_need_no_baseline() {
        let mut c = config();
        c.max_qps = Some(1000.0);
        let mut d = Detector::new(c);
        let t0 = Instant::now();
        d.observe(
            Reading {
                queries: Some(0),
                udp_errors: Some((0, 0)),
            },
            t0,
        );
        let a = d.observe(
            Reading {
                queries: Some(2000),
                udp_errors: Some((0, 0)),
            },
            t0 + Duration::from_secs(1),
        );
        assert!(
            a.overloaded && a.detail.contains("over max_qps 1000"),
            "{a:?}"
        );

        let mut u = Detector::new(config());
        u.observe(
            Reading {
                queries: Some(0),
                udp_errors: Some((100, 90)),
            },
            t0,
        );
        let b = u.observe(
            Reading {
                queries: Some(40),
                udp_errors: Some((300, 280)),
            },
            t0 + Duration::from_secs(1),
        );
        assert!(
            b.overloaded && b.detail.contains("200 UDP receive errors/s"),
            "{b:?}"
        );
        // Failed reads count towards calm: no signal is no evidence of an overload.
        for i in 2..=4 {
            let c = u.observe(Reading::default(), t0 + Duration::from_secs(i));
            assert_eq!(c.overloaded, i < 4, "reading {i}: {c:?}");
        }
    }
}
