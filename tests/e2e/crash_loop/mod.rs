//! The crash loop (issue 13): `kill -9` the server again and again while clients write, and
//! after each restart check that everything acknowledged is there and nothing is doubled.
//!
//! Each cycle starts the real `wisp` binary on the same data folder (a new ephemeral loopback
//! port), checks what the previous cycle's clients were told, then lets clients run until a
//! `kill -9` at a random moment 50 to 500 ms later, while they are mid-request:
//!
//! - incrementers: `POST /api/counter/c-CYCLE-K` (the `counter` function: an atomic, durable
//!   increment); each answer must count one more than the last, and after the restart the
//!   counter must hold every acknowledged increment and at most the ones sent besides;
//! - writers: `PUT /_wisp/kv/default/writer/w-CYCLE-K-I` (the operator's write, durable when
//!   answered `204`); after the restart every acknowledged key holds its value, and no key is
//!   there that was never sent;
//! - publishers: `POST /_wisp/topics/crash` with a unique payload (`202`: on disk), delivered
//!   to `sink` (the `events` function, 4 at a time), which records each delivery's message id
//!   and payload in its store. After the restart and once the queue is empty, every acknowledged
//!   publish has been delivered, under the id its `202` named; one payload never arrives under
//!   two ids (a publish stored twice). The same message delivered twice is counted, not failed:
//!   delivery is at least once (README, "Durability and crashes");
//! - a deployer: `PUT /_wisp/functions/flip` (the `hostile` module with an env `DEPLOY` naming
//!   the deploy); acknowledged versions must be consecutive, and after the restart the active
//!   version is the newest acknowledged one (or the one in flight at the kill), the versions
//!   kept are consecutive and end with it, and `flip` serves with its env.
//!
//! A violation fails the test naming the cycle and the item, and keeps the data folder (with
//! the server's stderr in `server.log`) for a look. Not part of CI: without
//! `WISP_CRASH_LOOP=CYCLES` the test only says it is skipped. `tests/crash_loop.sh [CYCLES]`
//! runs it in release and prints the figures.

mod checks;
mod clients;
mod deliveries;
mod figures;
mod server;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::thread;
use std::time::Instant;

use clients::Client;
use figures::Figures;

/// The topic and its subscriber, and the function that is redeployed.
const TOPIC: &str = "crash";
const SINK: &str = "sink";
const FLIP: &str = "flip";

#[test]
fn crash_loop() {
    let Some(cycles) = std::env::var("WISP_CRASH_LOOP").ok() else {
        eprintln!("crash_loop: skipped (WISP_CRASH_LOOP=CYCLES runs it; tests/crash_loop.sh)");
        return;
    };
    let cycles: usize = cycles
        .parse()
        .expect("WISP_CRASH_LOOP is a number of cycles");
    let seed = std::env::var("WISP_CRASH_LOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_nanos() as u64
        })
        | 1;
    Loop::new(cycles, seed).run();
}

/// The data folder and the server's log, removed unless the test fails.
struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "crash_loop: the data folder is kept in {} (server stderr in server.log)",
                self.0.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A small xorshift generator: the kill's moment.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// One cycle's clients, as they ended.
struct Cycle {
    incrementers: Vec<Client>,
    writers: Vec<Client>,
    publishers: Vec<Client>,
    deployer: Client,
    /// The active version of `flip` when the cycle started, and its tag.
    flip_before: (u64, String),
}

struct Loop {
    cycles: usize,
    seed: u64,
    rng: Rng,
    folder: Folder,
    data: PathBuf,
    log: PathBuf,
    figures: Figures,
    /// Acknowledged publishes not yet seen delivered: payload to the id the `202` gave.
    awaiting: HashMap<String, String>,
    /// Publishes sent without an acknowledgement, not yet seen: payload.
    in_doubt: HashSet<String>,
    /// Publishes in doubt that had not arrived when their queue was empty: they must never.
    never: HashSet<String>,
    /// Every payload delivered, with its message id.
    delivered: HashMap<String, String>,
    /// The next `event/N` of the sink to read.
    next_event: u64,
    /// The `event/N` missing when read (a delivery killed between its two writes).
    gaps: HashSet<u64>,
    /// Every admin key that landed, for the last check.
    keys: Vec<String>,
    /// Every counter, with its value after its cycle, for the last check.
    counters: Vec<(String, u64)>,
    /// The tag each version of `flip` was deployed with, as far as known.
    tags: BTreeMap<u64, String>,
}

impl Loop {
    fn new(cycles: usize, seed: u64) -> Loop {
        let root = std::env::temp_dir().join(format!("wisp-crash-loop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Loop {
            cycles,
            seed,
            rng: Rng(seed),
            data: root.join("data"),
            log: root.join("server.log"),
            folder: Folder(root),
            figures: Figures::default(),
            awaiting: HashMap::new(),
            in_doubt: HashSet::new(),
            never: HashSet::new(),
            delivered: HashMap::new(),
            next_event: 1,
            gaps: HashSet::new(),
            keys: Vec::new(),
            counters: Vec::new(),
            tags: BTreeMap::new(),
        }
    }

    fn run(mut self) {
        eprintln!(
            "crash_loop: {} cycles, seed {}, data in {}",
            self.cycles,
            self.seed,
            self.folder.0.display()
        );
        let started = Instant::now();
        let mut previous: Option<Cycle> = None;
        for cycle in 0..=self.cycles {
            let wisp = self.start(cycle);
            let began = Instant::now();
            let flip_before = match previous.take() {
                None => self.set_up(&wisp),
                Some(last) => self.check(cycle, &wisp, last),
            };
            self.figures.checks.push(began.elapsed());
            if cycle == self.cycles {
                self.last_check(cycle, &wisp);
                self.stop(cycle, wisp);
                break;
            }
            previous = Some(self.clients_until_killed(cycle, wisp, flip_before));
            if (cycle + 1) % 50 == 0 {
                eprintln!(
                    "crash_loop: {} cycles, {:.0} s: {}",
                    cycle + 1,
                    started.elapsed().as_secs_f64(),
                    self.totals()
                );
            }
        }
        self.report(started.elapsed());
    }

    /// Fails the test: a violation in `cycle`.
    fn violation(&self, cycle: usize, what: impl std::fmt::Display) -> ! {
        panic!(
            "crash_loop: VIOLATION in cycle {cycle} (seed {}): {what}",
            self.seed
        )
    }
}
