//! Counters per function and for the server, written out in Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::logs::FunctionLog;

/// Upper bounds of the duration histogram's buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// What is known of one function across its versions: its log and its counters. Kept by name,
/// so a redeploy keeps counting; dropped when the function is deleted.
#[derive(Default)]
pub struct FunctionStats {
    pub log: FunctionLog,
    /// Invocations by status class: 1xx to 5xx.
    by_class: [AtomicU64; 5],
    /// Cumulative counts per bucket, then `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_micros: AtomicU64,
    fuel: AtomicU64,
    memory_peak: AtomicU64,
    pub deploys: AtomicU64,
}

impl FunctionStats {
    /// Counts one invocation.
    pub fn record(&self, status: u16, duration: Duration, fuel: u64, memory: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        let seconds = duration.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.duration_micros
            .fetch_add(duration.as_micros() as u64, Relaxed);
        self.fuel.fetch_add(fuel, Relaxed);
        self.memory_peak.fetch_max(memory, Relaxed);
    }

    /// Invocations so far, all statuses.
    pub fn invocations(&self) -> u64 {
        self.by_class.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// Server-wide figures at the moment of a scrape.
pub struct ServerFigures {
    pub open_connections: u64,
    pub connections: u64,
    pub requests: u64,
    pub rejected: u64,
    pub queued: usize,
    pub functions: usize,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The Prometheus text exposition of the server and its functions.
pub fn render(server: &ServerFigures, functions: &[(String, &FunctionStats)]) -> String {
    let mut out = String::new();
    let gauges = [
        (
            "wisp_open_connections",
            "Open HTTP connections.",
            server.open_connections,
        ),
        (
            "wisp_queued_invocations",
            "Invocations waiting for a worker.",
            server.queued as u64,
        ),
        (
            "wisp_functions",
            "Functions deployed.",
            server.functions as u64,
        ),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let counters = [
        (
            "wisp_connections_total",
            "HTTP connections accepted.",
            server.connections,
        ),
        (
            "wisp_http_requests_total",
            "HTTP requests handled.",
            server.requests,
        ),
        (
            "wisp_http_rejected_total",
            "Requests the front end refused (4xx/5xx).",
            server.rejected,
        ),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }

    family(
        &mut out,
        "wisp_invocations_total",
        "counter",
        "Invocations by status class.",
    );
    for (name, stats) in functions {
        for (i, count) in stats.by_class.iter().enumerate() {
            let count = count.load(Relaxed);
            if count > 0 {
                let _ = writeln!(
                    out,
                    "wisp_invocations_total{{function=\"{name}\",status=\"{}xx\"}} {count}",
                    i + 1
                );
            }
        }
    }
    family(
        &mut out,
        "wisp_invocation_duration_seconds",
        "histogram",
        "Invocation durations.",
    );
    for (name, stats) in functions {
        let mut cumulative = 0;
        for (i, bucket) in stats.buckets.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "wisp_invocation_duration_seconds_bucket{{function=\"{name}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = stats.duration_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "wisp_invocation_duration_seconds_sum{{function=\"{name}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "wisp_invocation_duration_seconds_count{{function=\"{name}\"}} {cumulative}"
        );
    }
    type Figure = fn(&FunctionStats) -> u64;
    let per_function: [(&str, &str, &str, Figure); 3] = [
        (
            "wisp_fuel_used_total",
            "counter",
            "Fuel used: the pay-per-use meter.",
            |s| s.fuel.load(Relaxed),
        ),
        (
            "wisp_memory_peak_bytes",
            "gauge",
            "Largest linear memory an invocation ended with.",
            |s| s.memory_peak.load(Relaxed),
        ),
        (
            "wisp_deploys_total",
            "counter",
            "Deploys and rollbacks.",
            |s| s.deploys.load(Relaxed),
        ),
    ];
    for (metric, kind, help, value) in per_function {
        family(&mut out, metric, kind, help);
        for (name, stats) in functions {
            let _ = writeln!(out, "{metric}{{function=\"{name}\"}} {}", value(stats));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_a_cumulative_histogram() {
        let stats = FunctionStats::default();
        stats.record(200, Duration::from_micros(300), 1000, 65536);
        stats.record(200, Duration::from_millis(20), 500, 131072);
        stats.record(504, Duration::from_secs(30), 7, 0);
        let server = ServerFigures {
            open_connections: 3,
            connections: 9,
            requests: 12,
            rejected: 1,
            queued: 0,
            functions: 1,
        };
        let text = render(&server, &[("date".into(), &stats)]);
        for line in [
            "wisp_open_connections 3",
            "wisp_invocations_total{function=\"date\",status=\"2xx\"} 2",
            "wisp_invocations_total{function=\"date\",status=\"5xx\"} 1",
            "wisp_invocation_duration_seconds_bucket{function=\"date\",le=\"0.0005\"} 1",
            "wisp_invocation_duration_seconds_bucket{function=\"date\",le=\"0.025\"} 2",
            "wisp_invocation_duration_seconds_bucket{function=\"date\",le=\"+Inf\"} 3",
            "wisp_invocation_duration_seconds_count{function=\"date\"} 3",
            "wisp_fuel_used_total{function=\"date\"} 1507",
            "wisp_memory_peak_bytes{function=\"date\"} 131072",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
