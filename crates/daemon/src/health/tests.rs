//! Unit tests of the health policy.
