//! A function's last 15 minutes, in 10-second steps: requests, server errors, p50 and p99
//! latency, fuel. What the dashboard charts (`GET /_wisp/history`). The step being counted is a
//! few atomics that each invocation adds to; every 10 s [`roll`] closes it into a bounded ring.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use heapless::HistoryBuf;
use serde::Serialize;

use crate::deployed::Deployed;

/// Length of one step.
pub const STEP: Duration = Duration::from_secs(10);
/// Steps kept: 15 minutes.
pub const STEPS: usize = 90;

/// Latencies up to this many microseconds are told apart; longer ones count as this long.
const MAX_MICROS: u64 = (1 << 27) - 1;
/// Sub-buckets per power of two: a percentile is off by at most 1/8 (12.5%).
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// Exact buckets below `SUB` µs, then `SUB` per power of two up to `MAX_MICROS`.
const BUCKETS: usize = SUB + (27 - SUB_BITS as usize) * SUB;

/// One closed step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// When the step ended, in seconds since the epoch.
    pub at: u64,
    pub requests: u32,
    /// Invocations that ended in a 5xx: traps, limits, the function's own 5xx.
    pub errors: u32,
    pub p50_us: u32,
    pub p99_us: u32,
    pub fuel: u64,
}

/// The step being counted, and the closed ones.
pub struct History {
    latency: [AtomicU32; BUCKETS],
    errors: AtomicU32,
    fuel: AtomicU64,
    /// Allocated at the first step with an invocation: most functions are seldom called.
    closed: Mutex<Option<Box<HistoryBuf<Sample, STEPS>>>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            latency: [const { AtomicU32::new(0) }; BUCKETS],
            errors: AtomicU32::new(0),
            fuel: AtomicU64::new(0),
            closed: Mutex::new(None),
        }
    }
}

/// The bucket of a latency.
fn bucket(micros: u64) -> usize {
    let v = micros.min(MAX_MICROS);
    if v < SUB as u64 {
        return v as usize;
    }
    let top = 63 - v.leading_zeros();
    let sub = (v >> (top - SUB_BITS)) as usize & (SUB - 1);
    SUB + (top - SUB_BITS) as usize * SUB + sub
}

/// The largest latency in bucket `i`, in microseconds.
fn upper_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let (octave, sub) = ((i - SUB) / SUB, (i - SUB) % SUB);
    (((SUB + sub + 1) as u64) << octave) - 1
}

impl History {
    /// Counts one invocation into the current step.
    pub fn record(&self, status: u16, duration: Duration, fuel: u64) {
        let micros = duration.as_micros().min(u128::from(MAX_MICROS)) as u64;
        self.latency[bucket(micros)].fetch_add(1, Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Relaxed);
        }
        self.fuel.fetch_add(fuel, Relaxed);
    }

    /// Closes the current step, which ended at `at` (seconds since the epoch).
    pub fn close(&self, at: u64) {
        let counts: [u32; BUCKETS] = std::array::from_fn(|i| self.latency[i].swap(0, Relaxed));
        let requests: u32 = counts.iter().sum();
        let sample = Sample {
            at,
            requests,
            errors: self.errors.swap(0, Relaxed),
            p50_us: percentile(&counts, requests, 50),
            p99_us: percentile(&counts, requests, 99),
            fuel: self.fuel.swap(0, Relaxed),
        };
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        match closed.as_mut() {
            Some(ring) => ring.write(sample),
            None if requests > 0 => {
                let mut ring = Box::new(HistoryBuf::new());
                ring.write(sample);
                *closed = Some(ring);
            }
            None => {}
        }
    }

    /// The closed steps that ended after `since` (seconds since the epoch) and had an
    /// invocation, oldest first: a step left out had none.
    pub fn samples(&self, since: u64) -> Vec<Sample> {
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        closed
            .iter()
            .flat_map(|ring| ring.oldest_ordered())
            .filter(|s| s.at > since && s.requests > 0)
            .copied()
            .collect()
    }
}

/// The latency under which `percent` of the step's `total` invocations finished (the upper
/// bound of its bucket); 0 without invocations.
fn percentile(counts: &[u32], total: u32, percent: u64) -> u32 {
    if total == 0 {
        return 0;
    }
    // The rank of the invocation at `percent`, counting from 1.
    let rank = (u64::from(total) * percent).div_ceil(100).max(1);
    let mut seen = 0u64;
    for (i, &count) in counts.iter().enumerate() {
        seen += u64::from(count);
        if seen >= rank {
            return upper_bound(i) as u32;
        }
    }
    upper_bound(BUCKETS - 1) as u32
}

/// Closes a step of every deployed function at each multiple of [`STEP`] on the clock, for
/// ever.
pub async fn roll(deployed: Arc<Deployed>) {
    let step = STEP.as_secs();
    loop {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let next = (now.as_secs() / step + 1) * step;
        smol::Timer::after(Duration::from_secs(next).saturating_sub(now)).await;
        for function in deployed.functions() {
            function.stats.history.close(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_falls_in_a_bucket_whose_bound_is_within_an_eighth() {
        for micros in (0..5000).chain([65_535, 65_536, 1_000_000, MAX_MICROS, u64::MAX]) {
            let i = bucket(micros);
            assert!(i < BUCKETS, "{micros}");
            let upper = upper_bound(i);
            let v = micros.min(MAX_MICROS);
            assert!(upper >= v, "{micros}: bound {upper}");
            assert!(upper - v <= v / 8, "{micros}: bound {upper}");
            if i > 0 {
                assert!(upper_bound(i - 1) < v, "{micros}: bucket {i} too high");
            }
        }
    }

    #[test]
    fn a_step_closes_into_a_sample_with_its_percentiles() {
        let history = History::default();
        history.close(10);
        assert!(
            history.closed.lock().unwrap().is_none(),
            "no ring before an invocation"
        );
        for _ in 0..98 {
            history.record(200, Duration::from_micros(300), 10);
        }
        history.record(500, Duration::from_millis(20), 5);
        history.record(504, Duration::from_secs(1), 5);
        history.close(20);
        history.close(30);
        history.record(200, Duration::from_micros(5), 1);
        history.close(40);
        // The quiet step at 30 is kept, but not shown.
        let samples = history.samples(0);
        assert_eq!(samples.len(), 2);
        let s = samples[0];
        assert_eq!((s.at, s.requests, s.errors, s.fuel), (20, 100, 2, 990));
        assert!((300..=340).contains(&s.p50_us), "{s:?}");
        assert!((20_000..=22_500).contains(&s.p99_us), "{s:?}");
        assert_eq!((samples[1].at, samples[1].p99_us), (40, 5));
        assert_eq!(history.samples(20), [samples[1]]);
        assert_eq!(history.closed.lock().unwrap().as_ref().unwrap().len(), 3);
    }

    #[test]
    fn the_ring_keeps_the_last_fifteen_minutes() {
        let history = History::default();
        for step in 0..200 {
            history.record(200, Duration::from_micros(50), 1);
            history.close(step);
        }
        let samples = history.samples(0);
        assert_eq!(samples.len(), STEPS);
        assert_eq!(samples[0].at, 200 - STEPS as u64);
        assert_eq!(samples.last().unwrap().at, 199);
    }
}
