//! Configuration: TOML -> serde structs -> one validation pass -> typed, checked config.
