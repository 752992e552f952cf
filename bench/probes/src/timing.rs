//! The timing loop the probes share.

use std::time::{Duration, Instant};

/// Median nanoseconds per call of `f` over 7 batches that together fill about `budget` (one call first, to size
/// the batches and to warm up).
pub fn median_ns(budget: Duration, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    let once = t.elapsed().max(Duration::from_micros(1));
    let per_batch = (budget.as_secs_f64() / 7.0 / once.as_secs_f64()).max(1.0) as u32;
    let mut samples: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(per_batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[3]
}
