//! The server's memory, sampled every second while the load runs, and the table it makes: the
//! soak's question is whether RSS stays flat under minutes of load, and the table is what
//! answers it (the test's own bound on memory is loose, for shared machines).

use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::Duration;

use super::Plan;
use super::http::Http;
use super::server::Soaked;
use super::stats::Stats;

/// One sample a second.
pub(super) struct Sample {
    at: Duration,
    rss_kib: u64,
    hwm_kib: u64,
    requests: u64,
    unexpected: u64,
    deploys: u64,
    /// Messages and change events waiting in the queues of `payment` and `audit`.
    queued: u64,
}

/// The queues the soak fills: `payment`'s subscription and `audit`'s watch.
const QUEUES: [(&str, &str); 2] = [("payment", "topic:orders"), ("audit", "kv:orders:order/")];

/// What the metrics say of the queues: messages waiting, and deliveries running.
pub(super) fn queue_figures(metrics: &str) -> (u64, u64) {
    let mut figures = (0, 0);
    for (function, source) in QUEUES {
        let labels = format!(r#"{{function="{function}",source="{source}"}}"#);
        let value = |metric: &str| -> u64 {
            let series = format!("{metric}{labels} ");
            metrics
                .lines()
                .find_map(|line| line.strip_prefix(&series))
                .map_or(0, |v| v.parse().unwrap())
        };
        figures.0 += value("wisp_queue_depth");
        figures.1 += value("wisp_queue_in_flight");
    }
    figures
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Samples the server every second until the plan's end, along with the requests, errors,
/// deploys and queued messages so far; when a row is a minute, prints each row's line as it
/// completes, so that a long soak shows how it goes.
pub(super) fn every_second(server: &Soaked, stats: &Stats, plan: &Plan) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = 1;
    let mut sampler = Http::new(server.addr);
    loop {
        let at = Duration::from_secs(tick);
        if let Some(wait) = at.checked_sub(stats.start.elapsed()) {
            thread::sleep(wait);
        }
        let (rss_kib, hwm_kib) = server.memory_kib();
        let metrics = stats.check(
            "GET /_wisp/metrics (each second)",
            sampler.admin("GET", "/_wisp/metrics", b""),
            200,
            |_| true,
        );
        let queued = metrics.map_or(0, |m| queue_figures(&m.body).0);
        samples.push(Sample {
            at,
            rss_kib,
            hwm_kib,
            requests: stats.requests.load(Relaxed),
            unexpected: stats.unexpected.load(Relaxed),
            deploys: stats.deploys.load(Relaxed),
            queued,
        });
        if plan.row > 1 && tick.is_multiple_of(plan.row) {
            eprintln!(
                "soak: at {} s: RSS {:.1} MiB (peak {:.1}), {queued} queued, {} requests, {} unexpected errors, {} deploys",
                tick,
                mib(rss_kib),
                mib(hwm_kib),
                stats.requests.load(Relaxed),
                stats.unexpected.load(Relaxed),
                stats.deploys.load(Relaxed),
            );
        }
        if tick >= plan.seconds {
            break;
        }
        tick += 1;
    }
    samples
}

/// Prints the table, a row per `plan.row` seconds, and the RSS after the load (`rss_end`,
/// `hwm_end`) with its growth from the end of row 2, past the first row's warm-up. Returns the
/// RSS at the end of row 1, which the test bounds the end's by.
pub(super) fn print_table(samples: &[Sample], plan: &Plan, rss_end: u64, hwm_end: u64) -> u64 {
    let unit = plan.unit();
    eprintln!();
    eprintln!(
        "soak: {:>6} | RSS min | RSS max | RSS last | peak (HWM) | requests |  req/s | deploys | unexpected | queued max",
        unit
    );
    eprintln!(
        "soak: -------|---------|---------|----------|------------|----------|--------|---------|------------|-----------"
    );
    let mut rows: Vec<(u64, Vec<&Sample>)> = Vec::new();
    for sample in samples {
        let row = (sample.at.as_secs() - 1) / plan.row + 1;
        match rows.last_mut() {
            Some((r, members)) if *r == row => members.push(sample),
            _ => rows.push((row, vec![sample])),
        }
    }
    let mut before = (0, 0, 0);
    let mut last_rss = Vec::new();
    for (row, members) in &rows {
        let last = members.last().unwrap();
        let min = members.iter().map(|s| s.rss_kib).min().unwrap();
        let max = members.iter().map(|s| s.rss_kib).max().unwrap();
        let requests = last.requests - before.0;
        let seconds = members.len() as f64;
        eprintln!(
            "soak: {row:>6} | {:>7.1} | {:>7.1} | {:>8.1} | {:>10.1} | {requests:>8} | {:>6.0} | {:>7} | {:>10} | {:>10}",
            mib(min),
            mib(max),
            mib(last.rss_kib),
            mib(last.hwm_kib),
            requests as f64 / seconds,
            last.deploys - before.1,
            last.unexpected - before.2,
            members.iter().map(|s| s.queued).max().unwrap(),
        );
        before = (last.requests, last.deploys, last.unexpected);
        last_rss.push(last.rss_kib);
    }
    eprintln!(
        "soak: (RSS in MiB: the server's VmRSS sampled every second, VmHWM its peak; queued: the \
         messages and change events waiting for `payment` and `audit`)"
    );
    let first = last_rss[0];
    let second = last_rss.get(1).copied().unwrap_or(first);
    eprintln!(
        "soak: RSS at the end of {unit} 1 {:.1} MiB, of {unit} 2 {:.1} MiB, after the load {:.1} MiB \
         (peak {:.1}): growth from {unit} 2 to the end {:+.1} MiB ({:+.1}%)",
        mib(first),
        mib(second),
        mib(rss_end),
        mib(hwm_end),
        mib(rss_end) - mib(second),
        (rss_end as f64 / second as f64 - 1.0) * 100.0,
    );
    first
}
