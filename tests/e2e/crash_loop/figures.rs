//! The figures: what the cycles acknowledged, what landed of what was in flight at a kill,
//! the restarts' times, the deliveries; printed every 50 cycles and at the end.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::Loop;

/// The figures printed at the end.
#[derive(Default)]
pub(super) struct Figures {
    pub(super) restarts: Vec<Duration>,
    pub(super) drains: Vec<Duration>,
    pub(super) checks: Vec<Duration>,
    pub(super) clean_starts: Vec<Duration>,
    pub(super) mid_request_kills: usize,
    pub(super) increments_acked: u64,
    pub(super) increments_doubt: u64,
    pub(super) increments_landed: u64,
    pub(super) writes_acked: u64,
    pub(super) writes_doubt: u64,
    pub(super) writes_landed: u64,
    pub(super) publishes_acked: u64,
    pub(super) publishes_doubt: u64,
    pub(super) publishes_landed: u64,
    pub(super) deliveries: u64,
    pub(super) duplicate_deliveries: u64,
    pub(super) most_duplicates_per_kill: u64,
    pub(super) delivery_gaps: u64,
    pub(super) max_attempt: u64,
    pub(super) deploys_acked: u64,
    pub(super) deploys_doubt: u64,
    pub(super) deploys_landed: u64,
    pub(super) refused: BTreeMap<String, u64>,
}

impl Loop {
    /// The running totals, the last 50 restarts' median and the data folder's size.
    pub(super) fn totals(&self) -> String {
        let f = &self.figures;
        let mut recent: Vec<Duration> = f.restarts.iter().rev().take(50).copied().collect();
        recent.sort();
        format!(
            "{} increments, {} writes, {} publishes, {} deploys acknowledged; {} deliveries; \
             restart p50 {:.0} ms; data {:.1} MiB",
            f.increments_acked,
            f.writes_acked,
            f.publishes_acked,
            f.deploys_acked,
            f.deliveries,
            recent[recent.len() / 2].as_secs_f64() * 1e3,
            folder_size(&self.data) as f64 / (1024.0 * 1024.0)
        )
    }

    pub(super) fn report(&self, wall: Duration) {
        let f = &self.figures;
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        let spread = |samples: &[Duration]| {
            let mut sorted = samples.to_vec();
            sorted.sort();
            let pick = |q: f64| ms(&sorted[((sorted.len() - 1) as f64 * q) as usize]);
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                pick(0.5),
                pick(0.99),
                pick(1.0)
            )
        };
        let size = folder_size(&self.data);
        eprintln!(
            "crash_loop: {} cycles ({} kill -9 with a request in flight) in {:.0} s",
            self.cycles,
            f.mid_request_kills,
            wall.as_secs_f64()
        );
        eprintln!(
            "crash_loop: restart after kill -9 (spawn to /healthz 200): {}",
            spread(&f.restarts)
        );
        let clean: Vec<String> = f
            .clean_starts
            .iter()
            .map(|d| format!("{:.1}", ms(d)))
            .collect();
        eprintln!(
            "crash_loop: start after SIGTERM, on the data of the end: {} ms",
            clean.join(", ")
        );
        eprintln!(
            "crash_loop: topic queue empty, from /healthz 200: {}",
            spread(&f.drains)
        );
        eprintln!(
            "crash_loop: the checks after each restart took {}",
            spread(&f.checks)
        );
        let line = |what: &str, acked: u64, doubt: u64, landed: u64| {
            eprintln!(
                "crash_loop: {what}: {acked} acknowledged, all there; {doubt} in flight at a kill: \
                 {landed} landed, {} did not",
                doubt - landed
            );
        };
        line(
            "durable increments",
            f.increments_acked,
            f.increments_doubt,
            f.increments_landed,
        );
        line(
            "admin writes",
            f.writes_acked,
            f.writes_doubt,
            f.writes_landed,
        );
        line(
            "publishes",
            f.publishes_acked,
            f.publishes_doubt,
            f.publishes_landed,
        );
        line(
            "deploys",
            f.deploys_acked,
            f.deploys_doubt,
            f.deploys_landed,
        );
        eprintln!(
            "crash_loop: deliveries: {} recorded, {} of them a message delivered again \
             (at least once; at most {} after one kill), highest attempt {}, {} recorded halfway \
             (killed between its two writes); no message lost, none published twice",
            f.deliveries,
            f.duplicate_deliveries,
            f.most_duplicates_per_kill,
            f.max_attempt,
            f.delivery_gaps
        );
        eprintln!(
            "crash_loop: flip at version {}; data folder {:.1} MiB",
            self.tags.keys().next_back().unwrap(),
            size as f64 / (1024.0 * 1024.0)
        );
        if f.refused.is_empty() {
            eprintln!("crash_loop: no request was refused");
        }
        for (why, n) in &f.refused {
            eprintln!("crash_loop: refused {n} times: {why}");
        }
    }
}

fn folder_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => folder_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
