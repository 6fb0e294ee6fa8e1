//! FRR, driven through `vtysh` (argv, never a shell).

/// Errors from the FRR backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrrError {}
