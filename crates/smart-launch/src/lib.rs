//! smart-launch (being built).
