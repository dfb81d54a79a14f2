//! The soak (issue 13): the example functions served as `functions/wisp.json` deploys them, under
//! mixed load for minutes, with the server's memory sampled every second.
//!
//! The load, all at once on loopback: clients calling every HTTP route of every example (Rust,
//! C and Go) on keep-alive connections, deliberate errors among them (a 404, a 405, a 400,
//! counted apart); a new version of one example deployed every few seconds, the next one each
//! time, while it is being called; key-value writes through a function (`counter`, `checkout`)
//! and through the admin API; messages published to the topic `orders`, which `payment`
//! subscribes to; `heartbeat`'s timer every second (the manifest's 10 s, shortened); and `audit`
//! watching the orders' keys. Every answer is checked (status and body); anything else than
//! what was expected (a 5xx, a wrong body, a connection error) is an unexpected error, and there
//! must be none. At the end the queues drain and the test checks that every order got paid,
//! that the watcher saw every change, that the timer ran about once a second, that the counters
//! hold every increment, and that each function is at the version its deploys made.
//!
//! It prints a table of the server's RSS (`VmRSS`, and the peak `VmHWM`) per minute, with the
//! requests done and the errors, and the growth from minute 2 to the end. `WISP_SOAK_SECONDS`
//! sets the length (`tests/soak.sh` runs ten minutes, in release); without it the soak runs for
//! 4 s, a row per second, so that CI runs the same code. Timings are not asserted (the machines
//! are shared), and memory only loosely: the last RSS under four times the first row's.
//! `WISP_SOAK_BINARY` soaks another `wisp` binary than the one cargo built (the static musl
//! build from `boards/build.sh`, say: its allocator returns memory that glibc's keeps).

mod admin;
mod checks;
mod clients;
mod http;
mod sampling;
mod server;
mod stats;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use admin::{deployer, operator, publisher};
use checks::End;
use clients::{client, go_client};
use server::Soaked;
use stats::Stats;

/// The examples of `functions/wisp.json` whose routes the soak calls: a new one there fails the
/// soak until it is called here too.
const EXAMPLES: [&str; 9] = [
    "audit",
    "checkout",
    "counter",
    "date",
    "go-seed",
    "heartbeat",
    "hello-c",
    "payment",
    "weather",
];

/// The order the deployer goes through the examples in: the Go module first, the largest by
/// far (7.6 MB) and the slowest to deploy, so that the short soak does not end in one.
const ROTATION: [&str; 9] = [
    "go-seed",
    "date",
    "weather",
    "hello-c",
    "counter",
    "checkout",
    "payment",
    "heartbeat",
    "audit",
];

/// How long and how hard.
struct Plan {
    seconds: u64,
    /// Seconds per row of the table.
    row: u64,
    /// Between two deploys.
    deploy_every: Duration,
    /// HTTP clients calling the Rust and C examples.
    clients: usize,
}

fn plan() -> Plan {
    match std::env::var("WISP_SOAK_SECONDS") {
        Ok(seconds) => {
            let seconds: u64 = seconds
                .parse()
                .expect("WISP_SOAK_SECONDS is a number of seconds");
            Plan {
                seconds,
                row: if seconds >= 120 { 60 } else { 1 },
                deploy_every: Duration::from_secs(3),
                clients: 4,
            }
        }
        Err(_) => Plan {
            seconds: 4,
            row: 1,
            deploy_every: Duration::from_millis(500),
            clients: 3,
        },
    }
}

impl Plan {
    /// What a row of the table spans.
    fn unit(&self) -> &'static str {
        if self.row == 60 { "minute" } else { "second" }
    }
}

/// Sleeps `pause`, in steps, returning early when `stop` is set.
fn pause(stop: &AtomicBool, pause: Duration) {
    let end = Instant::now() + pause;
    while !stop.load(Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// What the workers did that the end checks.
#[derive(Default)]
struct Done {
    /// Orders placed, by id: through `checkout` and by the publisher.
    orders: Vec<String>,
    /// Writes under `order/` in the store `orders`, which `audit` watches (besides the
    /// payments, counted at the end).
    watched_writes: u64,
    /// Each client's counter and the count it must hold.
    counters: Vec<(String, u64)>,
}

#[test]
fn mixed_load_on_every_example_keeps_answers_right_and_memory_flat() {
    let plan = plan();
    let began = Instant::now();
    let server = Soaked::start();
    let started = began.elapsed();
    let addr = server.addr;
    let stats = Stats::new();
    let stop = AtomicBool::new(false);
    let done = Mutex::new(Done::default());
    eprintln!(
        "soak: {} s of mixed load on every example ({} clients, the Go client, the operator, \
         the publisher, a deploy every {:?}), server pid {}",
        plan.seconds,
        plan.clients,
        plan.deploy_every,
        server.child.id()
    );
    let (samples, versions) = thread::scope(|s| {
        let (stats, stop, done) = (&stats, &stop, &done);
        for i in 0..plan.clients {
            s.spawn(move || client(i, addr, stats, stop, done));
        }
        s.spawn(move || go_client(addr, stats, stop));
        s.spawn(move || operator(addr, stats, stop, done));
        s.spawn(move || publisher(addr, stats, stop, done));
        let deploys = s.spawn(move || deployer(addr, stats, stop, plan.deploy_every));
        let samples = sampling::every_second(&server, stats, &plan);
        stop.store(true, Relaxed);
        (samples, deploys.join().unwrap())
    });
    let loaded = stats.start.elapsed();
    let done = done.into_inner().unwrap();
    let end = End::check(&server, &stats, done, versions, began, loaded);
    let first = sampling::print_table(&samples, &plan, end.rss_end, end.hwm_end);
    end.report(&server, &stats, started);
    end.assert(&server, &stats, &plan, first);
}
