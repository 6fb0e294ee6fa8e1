//! knot test daemons (filled in by the crate that first needs them).
