//! A clock a test moves forward.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The system time plus an offset that only grows. Clones share the offset: give one to the code under test (as
/// a [`smart_launch::Clock`]) and keep one to [`advance`](TestClock::advance).
///
/// It follows the real time between advances, so a sandbox that reads the system clock and the code under test
/// agree on everything but the jump the test asked for.
#[derive(Clone, Debug, Default)]
pub struct TestClock {
    offset_ms: Arc<AtomicI64>,
}

impl TestClock {
    /// A clock reading the system time (no offset yet).
    pub fn new() -> TestClock {
        TestClock::default()
    }

    /// Moves this clock (and every clone) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// What time it is by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + TimeDelta::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// This clock as the code under test takes one.
    pub fn clock(&self) -> smart_launch::Clock {
        let me = self.clone();
        Arc::new(move || me.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_every_clone_forward_and_time_still_passes() {
        let clock = TestClock::new();
        let given = clock.clock();
        let before = given();
        clock.advance(Duration::from_secs(3600));
        let after = given();
        assert!(after - before >= TimeDelta::seconds(3600), "{before} → {after}");
        assert!(after - before < TimeDelta::seconds(3660), "{before} → {after}");
        assert!(clock.now() >= after, "the clock does not go back");
    }
}
