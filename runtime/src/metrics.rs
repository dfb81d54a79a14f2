//! Counters per function and for the server, written out in Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::history::History;
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
    /// The last 15 minutes, for the dashboard.
    pub history: History,
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
        self.history.record(status, duration, fuel);
    }

    /// Invocations so far, all statuses.
    pub fn invocations(&self) -> u64 {
        self.by_class.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// Upper bounds of the publish-to-delivery latency buckets, in seconds: messages wait for
/// retries and backoff, so the buckets reach further than the invocations'.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0, 600.0,
];

/// What is known of one queue's deliveries: a topic's subscriber, a watcher, or a function's
/// asynchronous calls.
#[derive(Default)]
pub struct QueueStats {
    /// Deliveries that succeeded.
    pub delivered: AtomicU64,
    /// Deliveries that failed and were scheduled again.
    pub retried: AtomicU64,
    /// Messages that used up their attempts.
    pub dead_lettered: AtomicU64,
    /// Deliveries running now.
    pub in_flight: AtomicU64,
    /// From push to the end of the successful delivery: cumulative counts per bucket, `+Inf`.
    latency: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_ms: AtomicU64,
}

impl QueueStats {
    /// Whether nothing was ever delivered, retried or buried, and nothing is in flight.
    pub fn untouched(&self) -> bool {
        [
            &self.delivered,
            &self.retried,
            &self.dead_lettered,
            &self.in_flight,
        ]
        .iter()
        .all(|n| n.load(Relaxed) == 0)
    }

    pub fn delivered_after(&self, latency: Duration) {
        self.delivered.fetch_add(1, Relaxed);
        let seconds = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency[bucket].fetch_add(1, Relaxed);
        self.latency_ms
            .fetch_add(latency.as_millis() as u64, Relaxed);
    }
}

/// What is known of one timer.
#[derive(Default)]
pub struct TimerStats {
    /// Ticks it ran for.
    pub runs: AtomicU64,
    /// Ticks skipped because the previous run had not finished.
    pub skipped: AtomicU64,
}

/// One queue's figures for a scrape: labels, counts from the backend, and its stats.
pub struct QueueFigures<'a> {
    pub function: &'a str,
    pub source: String,
    pub depth: u64,
    pub dead: u64,
    pub stats: &'a QueueStats,
}

/// One timer's figures for a scrape.
pub struct TimerFigures<'a> {
    pub function: &'a str,
    pub timer: &'a str,
    pub stats: &'a TimerStats,
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

/// A fleet device's figures for a scrape.
pub struct FleetFigures {
    pub fleet: String,
    pub device: String,
    pub connected: bool,
    /// Log entries applied here since start.
    pub applied: u64,
    /// Log entries that could not be applied here since start.
    pub skipped: u64,
    /// Times the link to Redis came back.
    pub reconnects: u64,
}

/// The Prometheus text of a fleet device.
pub fn render_fleet(fleet: &FleetFigures) -> String {
    let mut out = String::new();
    let labels = format!("fleet=\"{}\",device=\"{}\"", fleet.fleet, fleet.device);
    let figures = [
        (
            "wisp_fleet_connected",
            "gauge",
            "Whether this device reaches its fleet's Redis (1) or not (0).",
            u64::from(fleet.connected),
        ),
        (
            "wisp_fleet_entries_applied_total",
            "counter",
            "Entries of the fleet's log (deploys, rollbacks, deletes) applied here.",
            fleet.applied,
        ),
        (
            "wisp_fleet_entries_skipped_total",
            "counter",
            "Entries of the fleet's log that could not be applied here.",
            fleet.skipped,
        ),
        (
            "wisp_fleet_reconnects_total",
            "counter",
            "Times the link to the fleet's Redis came back.",
            fleet.reconnects,
        ),
    ];
    for (name, kind, help, value) in figures {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
    out
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

/// The Prometheus text of the event triggers: queues (topics' subscribers, watchers,
/// asynchronous calls) and timers.
pub fn render_events(queues: &[QueueFigures], timers: &[TimerFigures], unrouted: u64) -> String {
    let mut out = String::new();
    type Figure = fn(&QueueFigures) -> u64;
    let per_queue: [(&str, &str, &str, Figure); 6] = [
        (
            "wisp_queue_depth",
            "gauge",
            "Messages waiting or being delivered.",
            |q| q.depth,
        ),
        (
            "wisp_queue_in_flight",
            "gauge",
            "Deliveries running now.",
            |q| q.stats.in_flight.load(Relaxed),
        ),
        (
            "wisp_queue_dead_letters",
            "gauge",
            "Dead letters kept.",
            |q| q.dead,
        ),
        (
            "wisp_deliveries_total",
            "counter",
            "Deliveries that succeeded.",
            |q| q.stats.delivered.load(Relaxed),
        ),
        (
            "wisp_delivery_retries_total",
            "counter",
            "Failed deliveries tried again later.",
            |q| q.stats.retried.load(Relaxed),
        ),
        (
            "wisp_dead_lettered_total",
            "counter",
            "Messages that used up their attempts.",
            |q| q.stats.dead_lettered.load(Relaxed),
        ),
    ];
    for (metric, kind, help, value) in per_queue {
        family(&mut out, metric, kind, help);
        for q in queues {
            let _ = writeln!(
                out,
                "{metric}{{function=\"{}\",source=\"{}\"}} {}",
                q.function,
                q.source,
                value(q)
            );
        }
    }
    family(
        &mut out,
        "wisp_delivery_latency_seconds",
        "histogram",
        "From publish (or the write, or the call) to the end of its successful delivery.",
    );
    for q in queues {
        let labels = format!("function=\"{}\",source=\"{}\"", q.function, q.source);
        let mut cumulative = 0;
        for (i, bucket) in q.stats.latency.iter().enumerate() {
            cumulative += bucket.load(Relaxed);
            let le = LATENCY_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "wisp_delivery_latency_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = q.stats.latency_ms.load(Relaxed) as f64 / 1e3;
        let _ = writeln!(out, "wisp_delivery_latency_seconds_sum{{{labels}}} {sum}");
        let _ = writeln!(
            out,
            "wisp_delivery_latency_seconds_count{{{labels}}} {cumulative}"
        );
    }
    type TimerFigure = fn(&TimerStats) -> &AtomicU64;
    let per_timer: [(&str, &str, TimerFigure); 2] = [
        ("wisp_timer_runs_total", "Ticks a timer ran for.", |t| {
            &t.runs
        }),
        (
            "wisp_timer_skipped_total",
            "Ticks skipped because the previous run had not finished.",
            |t| &t.skipped,
        ),
    ];
    for (metric, help, value) in per_timer {
        family(&mut out, metric, "counter", help);
        for t in timers {
            let _ = writeln!(
                out,
                "{metric}{{function=\"{}\",timer=\"{}\"}} {}",
                t.function,
                t.timer.replace('\\', "\\\\").replace('"', "\\\""),
                value(t.stats).load(Relaxed)
            );
        }
    }
    family(
        &mut out,
        "wisp_topic_unrouted_total",
        "counter",
        "Messages published to a topic with no subscriber (dropped).",
    );
    let _ = writeln!(out, "wisp_topic_unrouted_total {unrouted}");
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
