//! Integration tests of the generated models: the official examples round trip, and the two reading modes.

mod json;
mod modes;
mod round_trip;
