//! Counting every answer by call and outcome, from every thread at once: the soak asserts no
//! unexpected error, and when there is one the report says which call got it, when, and what
//! came back.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::http::Answer;

/// Every answer, by what was asked and what came back.
pub(super) struct Stats {
    pub(super) start: Instant,
    pub(super) requests: AtomicU64,
    pub(super) unexpected: AtomicU64,
    /// Deliberate errors that got the error expected.
    pub(super) deliberate: AtomicU64,
    pub(super) deploys: AtomicU64,
    pub(super) outcomes: Mutex<BTreeMap<String, u64>>,
    pub(super) failures: Mutex<Vec<String>>,
}

impl Stats {
    pub(super) fn new() -> Stats {
        Stats {
            start: Instant::now(),
            requests: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            deliberate: AtomicU64::new(0),
            deploys: AtomicU64::new(0),
            outcomes: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Counts the answer to a call labelled `label`: as expected if it has the status
    /// `expected` and `good` holds for it, and then it is returned; anything else is an
    /// unexpected error, counted and described.
    pub(super) fn check(
        &self,
        label: &str,
        answer: Result<Answer, String>,
        expected: u16,
        good: impl FnOnce(&Answer) -> bool,
    ) -> Option<Answer> {
        self.requests.fetch_add(1, Relaxed);
        let (outcome, ok) = match &answer {
            Ok(a) if a.status != expected => (a.status.to_string(), false),
            Ok(a) if good(a) => (a.status.to_string(), true),
            Ok(a) => (format!("{} with a wrong answer", a.status), false),
            Err(_) => ("connection error".to_string(), false),
        };
        *self
            .outcomes
            .lock()
            .unwrap()
            .entry(format!("{label} -> {outcome}"))
            .or_default() += 1;
        if ok {
            if expected >= 400 {
                self.deliberate.fetch_add(1, Relaxed);
            }
            return answer.ok();
        }
        self.unexpected.fetch_add(1, Relaxed);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 30 {
            let got = match answer {
                Ok(a) => {
                    let body: String = a.body.chars().take(300).collect();
                    format!("{} {:?} {body:?}", a.status, a.headers)
                }
                Err(e) => e,
            };
            failures.push(format!(
                "at {:.1} s: {label}: expected {expected}, got {got}",
                self.start.elapsed().as_secs_f64()
            ));
        }
        None
    }
}
