//! BIRD 2, spoken to directly over its control socket.

/// Errors from the BIRD backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BirdError {}
