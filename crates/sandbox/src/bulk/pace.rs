//! Pacing an export job: at most [`super::BulkConfig::max_rows_per_second`] rows a second, so a job shares
//! the machine with the FHIR API's reads instead of taking every core it can.
//!
//! Handing the store's task permit back between chunks lets a waiting read go first, but on a busy machine the
//! job's next chunk is ready at once and takes the CPU again (measured on 2 cores: reads fell from 11,656 to
//! 3,104 requests/s during an unpaced 10,000-patient export). A job is a background task its client polls every
//! few seconds; it has no reason to finish in 12 s rather than 80. The pace is a budget over the whole job (rows
//! written so far against time since the job started), so a chunk that ran slowly is not made up for with a burst
//! beyond the rate, and a pause is only ever taken after a chunk, never while holding a permit.
//!
//! The clock is the caller's: [`Pace::pause`] takes the elapsed time, so the arithmetic is tested without
//! sleeping.

use std::time::Duration;

/// The rate budget of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    /// Rows a second at most; 0 means no limit.
    rows_per_second: u64,
}

impl Pace {
    /// A budget of `rows_per_second` (0: unlimited).
    pub(crate) fn new(rows_per_second: u64) -> Self {
        Self { rows_per_second }
    }

    /// How long to wait, after `rows` rows in all were written `elapsed` after the job started, before the next
    /// chunk: the time those rows are allowed at the rate, less the time already spent; zero when the job is
    /// behind its budget or unlimited.
    pub(crate) fn pause(&self, rows: u64, elapsed: Duration) -> Duration {
        if self.rows_per_second == 0 {
            return Duration::ZERO;
        }
        let allowed = Duration::from_secs_f64(rows as f64 / self.rows_per_second as f64);
        allowed.saturating_sub(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_waits_for_its_budget_and_never_bursts_to_catch_up() {
        let pace = Pace::new(20_000);
        // 500 rows in 5 ms: they are allowed 25 ms, so wait 20 ms more.
        assert_eq!(
            pace.pause(500, Duration::from_millis(5)),
            Duration::from_millis(20)
        );
        // 10,000 rows after exactly half a second: on budget, no wait.
        assert_eq!(pace.pause(10_000, Duration::from_millis(500)), Duration::ZERO);
        // Behind (a slow disk): no wait, and no burst either, as the budget is rows over the whole job.
        assert_eq!(pace.pause(10_500, Duration::from_secs(2)), Duration::ZERO);
        assert_eq!(pace.pause(60_000, Duration::from_secs(2)), Duration::from_secs(1));
        // Unlimited.
        assert_eq!(Pace::new(0).pause(1_000_000, Duration::ZERO), Duration::ZERO);
    }
}
