//! Health policy: a pure, synchronous state machine from probe outcomes to desired route states.
