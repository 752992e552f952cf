//! sandbox (being built).
