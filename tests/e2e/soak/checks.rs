//! The end of the soak: once the load stops and the queues drain, what the server holds must
//! agree with what the load did (every order paid, every watched change seen, the timer's runs,
//! the counters, the versions). The report comes before the assertions on what was found, so
//! that a failed soak still shows its figures.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::thread;
use std::time::{Duration, Instant};

use super::http::Http;
use super::sampling::queue_figures;
use super::server::Soaked;
use super::stats::Stats;
use super::{Done, Plan};

/// What the end checks found.
pub(super) struct End {
    done: Done,
    versions: BTreeMap<&'static str, u64>,
    /// From the start of the load to its end, then to the queues drained, then to the checks
    /// done.
    loaded: Duration,
    drained: Duration,
    checked: Duration,
    unpaid: Vec<String>,
    /// Changes `audit` counted, and the changes made to the keys it watches.
    audited: u64,
    changes: u64,
    /// `heartbeat`'s runs, in the server's `lifetime` (seconds), and the most there can be.
    beats: u64,
    lifetime: f64,
    at_most: u64,
    counters_wrong: Vec<String>,
    versions_wrong: Vec<String>,
    dead: usize,
    failed_invocations: Vec<String>,
    retries: Vec<String>,
    /// `VmRSS` and `VmHWM` after the load, in KiB.
    pub(super) rss_end: u64,
    pub(super) hwm_end: u64,
}

impl End {
    /// Waits for the queues to drain, then reads back what the load left; `done` is what the
    /// workers did, `versions` where the deployer left each example, `began` when the server
    /// was started and `loaded` how long the load ran.
    pub(super) fn check(
        server: &Soaked,
        stats: &Stats,
        done: Done,
        versions: BTreeMap<&'static str, u64>,
        began: Instant,
        loaded: Duration,
    ) -> End {
        // The queues drain: every message delivered, every watched change seen.
        let mut http = Http::new(server.addr);
        let drained_by = Instant::now() + Duration::from_secs(60);
        loop {
            let metrics = http.admin("GET", "/_wisp/metrics", b"").unwrap().body;
            let (waiting, running) = queue_figures(&metrics);
            if waiting + running == 0 {
                break;
            }
            assert!(
                Instant::now() < drained_by,
                "{waiting} messages still waiting a minute after the load"
            );
            thread::sleep(Duration::from_millis(100));
        }
        let drained = stats.start.elapsed() - loaded;

        // Every order paid, whether `checkout` published it or the publisher did.
        let mut unpaid = Vec::new();
        for id in &done.orders {
            let answer = http
                .admin(
                    "GET",
                    &format!("/_wisp/kv/orders/_shared/order%2F{id}"),
                    b"",
                )
                .unwrap();
            let paid = answer.status == 200
                && answer
                    .json()
                    .is_some_and(|order| order["status"] == "paid" && order["paid_at"].is_u64());
            if !paid {
                unpaid.push(format!("{id}: {} {}", answer.status, answer.body));
            }
        }
        // The watcher saw every change: each order stored, then paid, and the operator's writes.
        // Delivery is at least once, so it may have seen some twice.
        let kv_number = |http: &mut Http, path: &str| -> u64 {
            let answer = http.admin("GET", path, b"").unwrap();
            assert_eq!(answer.status, 200, "{path}: {answer:?}");
            answer.body.parse().unwrap()
        };
        let audited = kv_number(&mut http, "/_wisp/kv/default/audit/seq");
        let changes = done.watched_writes + done.orders.len() as u64;
        // The timer: once a second since the server started (which was between `began` and
        // `stats.start`), less a tick or two around the redeploys of `heartbeat`.
        let beats = kv_number(&mut http, "/_wisp/kv/default/heartbeat/beats");
        let lifetime = stats.start.elapsed().as_secs_f64();
        let at_most = began.elapsed().as_secs() + 1;
        // The counters hold every increment.
        let mut counters_wrong = Vec::new();
        for (name, count) in &done.counters {
            let answer = http.get(&format!("/api/counter/{name}")).unwrap();
            let expect = format!(r#"{{"name":"{name}","count":{count}}}"#);
            if answer.body != expect {
                counters_wrong.push(format!("{name}: {} (expected {expect})", answer.body));
            }
        }
        // Every function at the version its deploys made, and serving.
        let mut versions_wrong = Vec::new();
        for (name, version) in &versions {
            let answer = http
                .admin("GET", &format!("/_wisp/functions/{name}"), b"")
                .unwrap();
            let json = answer.json().unwrap_or_default();
            if json["version"] != *version {
                versions_wrong.push(format!("{name}: {} (expected {version})", json["version"]));
            }
        }
        let dead = http
            .admin("GET", "/_wisp/dead-letters", b"")
            .unwrap()
            .json()
            .unwrap();
        let dead = dead["dead_letters"].as_array().unwrap().len();
        let metrics = http.admin("GET", "/_wisp/metrics", b"").unwrap().body;
        let failed_invocations: Vec<String> = metrics
            .lines()
            .filter(|l| l.starts_with("wisp_invocations_total") && l.contains("status=\"5xx\""))
            .map(str::to_string)
            .collect();
        let retries: Vec<String> = metrics
            .lines()
            .filter(|l| l.starts_with("wisp_delivery_retries_total{") && !l.ends_with(" 0"))
            .map(str::to_string)
            .collect();
        let (rss_end, hwm_end) = server.memory_kib();
        let checked = stats.start.elapsed() - loaded - drained;
        End {
            done,
            versions,
            loaded,
            drained,
            checked,
            unpaid,
            audited,
            changes,
            beats,
            lifetime,
            at_most,
            counters_wrong,
            versions_wrong,
            dead,
            failed_invocations,
            retries,
            rss_end,
            hwm_end,
        }
    }

    /// The lines after the table: the totals, what the end checks found, the server's stderr,
    /// every answer by call and status, and the first unexpected ones.
    pub(super) fn report(&self, server: &Soaked, stats: &Stats, started: Duration) {
        let End {
            ref done,
            ref versions,
            loaded,
            drained,
            checked,
            ref unpaid,
            audited,
            changes,
            beats,
            lifetime,
            dead,
            ref retries,
            ..
        } = *self;
        eprintln!(
            "soak: {} requests in {:.1} s ({:.0}/s), {} deliberate errors answered as expected, \
             {} unexpected; {} deploys; the server started in {:.1} s, the end checks took {:.1} s",
            stats.requests.load(Relaxed),
            loaded.as_secs_f64(),
            stats.requests.load(Relaxed) as f64 / loaded.as_secs_f64(),
            stats.deliberate.load(Relaxed),
            stats.unexpected.load(Relaxed),
            stats.deploys.load(Relaxed),
            started.as_secs_f64(),
            checked.as_secs_f64(),
        );
        eprintln!(
            "soak: {} orders paid of {} ({} unpaid); the queues drained {:.1} s after the load; \
             audit saw {audited} changes of {changes} written (at least once); heartbeat ran {beats} \
             times in {lifetime:.0} s; dead letters {dead}; retried deliveries {retries:?}; \
             final versions {versions:?}",
            done.orders.len() - unpaid.len(),
            done.orders.len(),
            unpaid.len(),
            drained.as_secs_f64(),
        );
        {
            let log = server.log.lock().unwrap();
            eprintln!(
                "soak: server stderr: {} lines, {} of them `[payment] paid order`, {} others, {} panics",
                log.lines, log.paid_lines, log.notable, log.panics
            );
            for line in &log.first_notable {
                eprintln!("soak:   stderr: {line}");
            }
        }
        eprintln!("soak: answers by call and status:");
        for (outcome, count) in stats.outcomes.lock().unwrap().iter() {
            eprintln!("soak:   {outcome}: {count}");
        }
        let failures = stats.failures.lock().unwrap();
        for failure in failures.iter() {
            eprintln!("soak: UNEXPECTED {failure}");
        }
    }

    /// Fails the soak on anything the end checks found amiss, or on the RSS after the load
    /// grown fourfold from `first`, the RSS at the end of the table's first row.
    pub(super) fn assert(&self, server: &Soaked, stats: &Stats, plan: &Plan, first: u64) {
        let End {
            ref unpaid,
            audited,
            changes,
            beats,
            lifetime,
            at_most,
            ref counters_wrong,
            ref versions_wrong,
            dead,
            ref failed_invocations,
            rss_end,
            ..
        } = *self;
        let unit = plan.unit();
        let failures = stats.failures.lock().unwrap();
        assert_eq!(
            stats.unexpected.load(Relaxed),
            0,
            "unexpected errors; the first: {failures:#?}"
        );
        assert!(unpaid.is_empty(), "orders not paid: {unpaid:?}");
        assert!(
            audited >= changes,
            "audit saw {audited} changes of the {changes} written"
        );
        let at_least = ((lifetime * 0.9) as u64).saturating_sub(2);
        assert!(
            (at_least..=at_most).contains(&beats),
            "heartbeat ran {beats} times in {lifetime:.1} s (expected {at_least} to {at_most})"
        );
        assert!(counters_wrong.is_empty(), "{counters_wrong:?}");
        assert!(versions_wrong.is_empty(), "{versions_wrong:?}");
        assert!(
            stats.deploys.load(Relaxed) > 0,
            "no deploy happened during the soak"
        );
        assert_eq!(dead, 0, "dead letters");
        assert!(
            failed_invocations.is_empty(),
            "failed invocations: {failed_invocations:?}"
        );
        assert_eq!(server.log.lock().unwrap().panics, 0, "the server panicked");
        // Memory: loosely, on a shared machine; the table is what to read.
        assert!(
            rss_end < 4 * first,
            "RSS {} KiB after the load, {first} KiB after the first {unit}",
            rss_end
        );
    }
}
