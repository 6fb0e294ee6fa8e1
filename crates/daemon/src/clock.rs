//! Wall-clock time as `/status`, the drain store and the warm-restart record write it: seconds since the
//! Unix epoch. Decisions never use it (they use [`std::time::Instant`], which cannot jump); only what
//! people and other processes read does.

use std::time::SystemTime;

/// Seconds since the Unix epoch, with fractions; 0 if the clock is set before 1970.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Whole seconds since the Unix epoch; 0 if the clock is set before 1970.
pub fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
