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

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Reply, TOKEN, WISP, module};

/// Clients of each kind.
const INCREMENTERS: usize = 2;
const WRITERS: usize = 2;
const PUBLISHERS: usize = 2;

/// How long the clients run before the kill, at random in this range (ms).
const RUN_MS: (u64, u64) = (50, 500);

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

/// A running server.
struct Wisp {
    child: Child,
    addr: SocketAddr,
    /// When it first answered.
    ready: Instant,
    /// The checks' keep-alive connection.
    conn: RefCell<Option<BufReader<TcpStream>>>,
}

impl Wisp {
    /// A `GET` on the checks' keep-alive connection (a new one if it was closed); `None` when
    /// no whole answer comes back.
    fn get(&self, path: &str) -> Option<Reply> {
        for _ in 0..2 {
            let mut conn = self.conn.borrow_mut();
            if conn.is_none() {
                let stream = TcpStream::connect(self.addr).ok()?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .ok()?;
                *conn = Some(BufReader::new(stream));
            }
            let reply = kept_alive(conn.as_mut().unwrap(), path);
            if reply.is_none() {
                *conn = None;
            }
            if reply.is_some() {
                return reply;
            }
        }
        None
    }
}

/// One `GET` on a kept-alive connection: the answer, if it has a `Content-Length`.
fn kept_alive(conn: &mut BufReader<TcpStream>, path: &str) -> Option<Reply> {
    let auth = if path.starts_with("/_wisp/") {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{auth}\r\n");
    conn.get_mut().write_all(request.as_bytes()).ok()?;
    let mut head = String::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<usize>().ok();
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length?];
    conn.read_exact(&mut body).ok()?;
    let raw = format!("{head}\r\n{}", String::from_utf8_lossy(&body));
    Some(Reply::parse(&raw))
}

impl Drop for Wisp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What became of one request.
enum Outcome {
    /// A whole response came back.
    Answered(Reply),
    /// The connection was refused: nothing was sent.
    NotSent,
    /// Sent, at least in part, and no whole response came back: in flight at the kill.
    Lost,
}

/// One request with `Connection: close` (and the admin token on `/_wisp/` paths).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Outcome {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return Outcome::NotSent;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    if path.starts_with("/_wisp/") {
        head.push_str(&format!("Authorization: Bearer {TOKEN}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    if stream.write_all(&raw).is_err() {
        return Outcome::Lost;
    }
    let mut out = Vec::new();
    // On an error, what was read before it is in `out`: a whole response still counts.
    let clean_end = stream.read_to_end(&mut out).is_ok();
    let text = String::from_utf8_lossy(&out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Outcome::Lost;
    };
    if !head.starts_with("HTTP/1.1 ") {
        return Outcome::Lost;
    }
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    let whole = match length {
        Some(length) => body.len() >= length,
        None => clean_end,
    };
    if whole {
        Outcome::Answered(Reply::parse(&text))
    } else {
        Outcome::Lost
    }
}

/// What a client makes of an answer.
enum Answer {
    /// Acknowledged, with what the answer said (a count, a message id, a version).
    Acked(String),
    /// A failure status: not acknowledged, and it may or may not have happened.
    Refused(String),
    /// An answer that breaks the contract: a violation.
    Broken(String),
}

/// What one client did in one cycle.
#[derive(Default)]
struct Client {
    /// The requests acknowledged, by index, with what their answers said.
    acked: Vec<(u64, String)>,
    /// The requests sent without an acknowledgement: in flight at the kill, or refused.
    doubt: Vec<u64>,
    /// The refusals' statuses and bodies.
    refused: Vec<String>,
    /// A violation the client saw in an answer.
    broken: Option<String>,
}

/// Sends request 0, 1, 2... until the server is gone.
fn client(
    addr: SocketAddr,
    mut request: impl FnMut(u64) -> (String, String, Vec<(String, String)>, Vec<u8>),
    mut answer: impl FnMut(u64, &Reply, &Client) -> Answer,
) -> Client {
    let mut client = Client::default();
    for i in 0.. {
        let (method, path, headers, body) = request(i);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match call(addr, &method, &path, &headers, &body) {
            Outcome::NotSent => break,
            Outcome::Lost => {
                client.doubt.push(i);
                break;
            }
            Outcome::Answered(reply) => match answer(i, &reply, &client) {
                Answer::Acked(said) => client.acked.push((i, said)),
                Answer::Refused(why) => {
                    client.doubt.push(i);
                    client.refused.push(why);
                    thread::sleep(Duration::from_millis(10));
                }
                Answer::Broken(why) => {
                    client.broken = Some(why);
                    break;
                }
            },
        }
    }
    client
}

fn json(reply: &Reply) -> Option<Value> {
    serde_json::from_str(&reply.body).ok()
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

/// The figures printed at the end.
#[derive(Default)]
struct Figures {
    restarts: Vec<Duration>,
    drains: Vec<Duration>,
    checks: Vec<Duration>,
    clean_starts: Vec<Duration>,
    mid_request_kills: usize,
    increments_acked: u64,
    increments_doubt: u64,
    increments_landed: u64,
    writes_acked: u64,
    writes_doubt: u64,
    writes_landed: u64,
    publishes_acked: u64,
    publishes_doubt: u64,
    publishes_landed: u64,
    deliveries: u64,
    duplicate_deliveries: u64,
    most_duplicates_per_kill: u64,
    delivery_gaps: u64,
    max_attempt: u64,
    deploys_acked: u64,
    deploys_doubt: u64,
    deploys_landed: u64,
    refused: BTreeMap<String, u64>,
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

    /// Starts the server on the data folder; waits until `/healthz` answers.
    fn start(&mut self, cycle: usize) -> Wisp {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        writeln!(log, "=== crash_loop: cycle {cycle}").unwrap();
        let began = Instant::now();
        let mut child = Command::new(WISP)
            .args([
                "serve",
                "--board",
                "none",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(&self.data)
            .env("WISP_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start wisp");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr: SocketAddr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                self.violation(
                    cycle,
                    format!("the server exited before listening ({status}); see server.log"),
                );
            }
            if let Some(addr) = line.trim().strip_prefix("wisp: listening on http://") {
                break addr.parse().unwrap();
            }
        };
        thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let mut wisp = Wisp {
            child,
            addr,
            ready: began,
            conn: RefCell::new(None),
        };
        loop {
            if let Outcome::Answered(r) = call(addr, "GET", "/healthz", &[], b"")
                && r.status == 200
            {
                break;
            }
            if began.elapsed() > Duration::from_secs(60) {
                self.violation(cycle, "the server did not answer /healthz within 60 s");
            }
            thread::sleep(Duration::from_millis(5));
        }
        wisp.ready = Instant::now();
        self.figures.restarts.push(wisp.ready - began);
        wisp
    }

    /// A request the checks make: it must be answered.
    fn ask(&self, cycle: usize, wisp: &Wisp, method: &str, path: &str, body: &[u8]) -> Reply {
        self.ask_with(cycle, wisp, method, path, &[], body)
    }

    fn ask_with(
        &self,
        cycle: usize,
        wisp: &Wisp,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let answered = if method == "GET" && headers.is_empty() && body.is_empty() {
            wisp.get(path)
        } else {
            match call(wisp.addr, method, path, headers, body) {
                Outcome::Answered(reply) => Some(reply),
                _ => None,
            }
        };
        answered.unwrap_or_else(|| {
            self.violation(cycle, format!("{method} {path}: no answer from the server"))
        })
    }

    fn ask_json(&self, cycle: usize, wisp: &Wisp, path: &str) -> Value {
        let reply = self.ask(cycle, wisp, "GET", path, b"");
        match (reply.status, json(&reply)) {
            (200, Some(value)) => value,
            _ => self.violation(cycle, format!("GET {path}: {reply:?}")),
        }
    }

    /// Deploys the three functions on the first start; `flip`'s version and tag.
    fn set_up(&mut self, wisp: &Wisp) -> (u64, String) {
        let deploys = [
            (
                "counter",
                "counter",
                r#"{"routes": ["/api/counter/..."], "methods": ["GET", "POST"]}"#.to_string(),
            ),
            (
                SINK,
                "events",
                format!(r#"{{"routes": ["/{SINK}/..."], "topics": [{{"topic": "{TOPIC}", "#,)
                    + r#""concurrency": 4}]}"#,
            ),
            (FLIP, "hostile", flip_config("d-setup")),
        ];
        for (name, module_name, config) in deploys {
            let wasm = std::fs::read(module(module_name)).unwrap();
            let path = format!("/_wisp/functions/{name}");
            let reply = self.ask_with(0, wisp, "PUT", &path, &[("Wisp-Config", &config)], &wasm);
            assert_eq!(reply.status, 201, "deploy {name}: {reply:?}");
        }
        self.tags.insert(1, "d-setup".into());
        (1, "d-setup".into())
    }

    /// Runs the clients until a `kill -9` at a random moment; what they did.
    fn clients_until_killed(&mut self, cycle: usize, mut wisp: Wisp, flip: (u64, String)) -> Cycle {
        let addr = wisp.addr;
        let incrementers: Vec<_> = (0..INCREMENTERS)
            .map(|k| thread::spawn(move || incrementer(addr, cycle, k)))
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|k| thread::spawn(move || writer(addr, cycle, k)))
            .collect();
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|k| thread::spawn(move || publisher(addr, cycle, k)))
            .collect();
        let first_version = flip.0 + 1;
        let deployer = thread::spawn(move || deployer(addr, cycle, first_version));
        thread::sleep(Duration::from_millis(self.rng.between(RUN_MS.0, RUN_MS.1)));
        if let Some(status) = wisp.child.try_wait().unwrap() {
            self.violation(
                cycle,
                format!("the server exited by itself ({status}); see server.log"),
            );
        }
        wisp.child.kill().unwrap();
        wisp.child.wait().unwrap();
        drop(wisp);
        let join = |handles: Vec<thread::JoinHandle<Client>>| -> Vec<Client> {
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        };
        let done = Cycle {
            incrementers: join(incrementers),
            writers: join(writers),
            publishers: join(publishers),
            deployer: deployer.join().unwrap(),
            flip_before: flip,
        };
        let all = done
            .incrementers
            .iter()
            .chain(&done.writers)
            .chain(&done.publishers)
            .chain([&done.deployer]);
        let mut mid_request = false;
        for client in all {
            if let Some(why) = &client.broken {
                self.violation(cycle, why);
            }
            for refusal in &client.refused {
                *self.figures.refused.entry(refusal.clone()).or_default() += 1;
            }
            mid_request |= !client.doubt.is_empty();
        }
        self.figures.mid_request_kills += usize::from(mid_request);
        done
    }

    /// After the restart: everything `last` (the previous cycle) was told is there. Returns
    /// `flip`'s active version and tag.
    fn check(&mut self, cycle: usize, wisp: &Wisp, last: Cycle) -> (u64, String) {
        let was = cycle - 1;
        self.check_counters(cycle, wisp, was, &last.incrementers);
        self.check_writes(cycle, wisp, was, &last.writers);
        for (k, publisher) in last.publishers.iter().enumerate() {
            for (i, id) in &publisher.acked {
                self.awaiting.insert(payload(was, k, *i), id.clone());
                self.figures.publishes_acked += 1;
            }
            for i in &publisher.doubt {
                self.in_doubt.insert(payload(was, k, *i));
                self.figures.publishes_doubt += 1;
            }
        }
        self.check_deliveries(cycle, wisp);
        self.check_deploys(cycle, wisp, &last.deployer, last.flip_before)
    }

    fn check_counters(&mut self, cycle: usize, wisp: &Wisp, was: usize, clients: &[Client]) {
        for (k, client) in clients.iter().enumerate() {
            let name = format!("c-{was}-{k}");
            let value = self.ask_json(cycle, wisp, &format!("/api/counter/{name}"))["count"]
                .as_u64()
                .unwrap_or_else(|| self.violation(cycle, format!("counter {name}: no count")));
            let (acked, doubt) = (client.acked.len() as u64, client.doubt.len() as u64);
            if value < acked {
                self.violation(
                    cycle,
                    format!(
                        "counter {name} holds {value} after the restart, but {acked} increments \
                         were acknowledged"
                    ),
                );
            }
            if value > acked + doubt {
                self.violation(
                    cycle,
                    format!(
                        "counter {name} holds {value}: more than the {acked} acknowledged and \
                         {doubt} unanswered increments sent (applied twice)"
                    ),
                );
            }
            self.figures.increments_acked += acked;
            self.figures.increments_doubt += doubt;
            self.figures.increments_landed += value - acked;
            self.counters.push((name, value));
        }
    }

    fn check_writes(&mut self, cycle: usize, wisp: &Wisp, was: usize, clients: &[Client]) {
        for (k, client) in clients.iter().enumerate() {
            let listed: HashSet<String> = self
                .list_keys(cycle, wisp, &format!("w-{was:05}-{k}-"))
                .into_iter()
                .collect();
            for (i, _) in &client.acked {
                let key = write_key(was, k, *i);
                if !listed.contains(&key) {
                    self.violation(cycle, format!("acknowledged write {key} is missing"));
                }
                let reply = self.ask(
                    cycle,
                    wisp,
                    "GET",
                    &format!("/_wisp/kv/default/writer/{key}"),
                    b"",
                );
                if reply.status != 200 || reply.body != write_value(&key) {
                    self.violation(
                        cycle,
                        format!("acknowledged write {key} reads back as {reply:?}"),
                    );
                }
            }
            let doubt: HashSet<String> =
                client.doubt.iter().map(|i| write_key(was, k, *i)).collect();
            for key in &listed {
                let acked = client
                    .acked
                    .iter()
                    .any(|(i, _)| write_key(was, k, *i) == *key);
                if !acked && !doubt.contains(key) {
                    self.violation(cycle, format!("key {key} is there but was never sent"));
                }
            }
            self.figures.writes_acked += client.acked.len() as u64;
            self.figures.writes_doubt += doubt.len() as u64;
            self.figures.writes_landed +=
                doubt.iter().filter(|k| listed.contains(*k)).count() as u64;
            self.keys.extend(listed);
        }
    }

    /// Every key of `writer` under `prefix`, page by page.
    fn list_keys(&self, cycle: usize, wisp: &Wisp, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut after = String::new();
        loop {
            let mut path = format!("/_wisp/kv/default/writer?prefix={prefix}&limit=1000");
            if !after.is_empty() {
                path.push_str(&format!("&after={after}"));
            }
            let page = self.ask_json(cycle, wisp, &path);
            let listed = page["keys"].as_array().unwrap();
            keys.extend(listed.iter().map(|k| k.as_str().unwrap().to_string()));
            match page["next"].as_str() {
                Some(next) => after = next.to_string(),
                None => return keys,
            }
        }
    }

    /// Waits for the sink's queue to empty, reads the new deliveries, and checks every
    /// acknowledged publish arrived under its id, once as a message.
    fn check_deliveries(&mut self, cycle: usize, wisp: &Wisp) {
        let began = Instant::now();
        let duplicates = self.figures.duplicate_deliveries;
        loop {
            let topics = self.ask_json(cycle, wisp, "/_wisp/topics");
            let sink = topics["topics"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["name"] == TOPIC))
                .and_then(|t| t["subscribers"].as_array())
                .and_then(|s| s.iter().find(|s| s["function"] == SINK))
                .cloned()
                .unwrap_or_else(|| {
                    self.violation(cycle, format!("no subscriber {SINK}: {topics}"))
                });
            if sink["dead_letters"] != 0 {
                let letters = self
                    .ask(cycle, wisp, "GET", "/_wisp/dead-letters", b"")
                    .body;
                self.violation(cycle, format!("messages were buried: {letters}"));
            }
            if sink["depth"] == 0 && sink["in_flight"] == 0 {
                break;
            }
            if began.elapsed() > Duration::from_secs(120) {
                self.violation(cycle, format!("the queue did not empty in 120 s: {sink}"));
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.figures.drains.push(wisp.ready.elapsed());
        let seq = self.sink_value(cycle, wisp, "seq").map_or(0, |s| {
            s.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| self.violation(cycle, format!("sink seq is {s:?}")))
        });
        if seq + 1 < self.next_event {
            self.violation(
                cycle,
                format!(
                    "the sink's seq went back to {seq}: deliveries up to {} were recorded",
                    self.next_event - 1
                ),
            );
        }
        for n in self.next_event..=seq {
            let Some(line) = self.sink_value(cycle, wisp, &format!("event%2F{n:010}")) else {
                // A delivery killed between its two writes: it is delivered again.
                self.figures.delivery_gaps += 1;
                self.gaps.insert(n);
                continue;
            };
            let parsed = line
                .strip_prefix(&format!("trigger=topic topic={TOPIC} id="))
                .and_then(|rest| rest.split_once(" attempt="))
                .and_then(|(id, rest)| {
                    let (attempt, payload) = rest.split_once(" payload=")?;
                    Some((
                        id.to_string(),
                        attempt.parse::<u64>().ok()?,
                        payload.to_string(),
                    ))
                });
            let Some((id, attempt, payload)) = parsed else {
                self.violation(cycle, format!("event/{n} is not a delivery: {line:?}"));
            };
            self.delivery(cycle, n, id, attempt, payload);
        }
        self.next_event = seq + 1;
        let again = self.figures.duplicate_deliveries - duplicates;
        self.figures.most_duplicates_per_kill = self.figures.most_duplicates_per_kill.max(again);
        // The queue is empty: every acknowledged publish has arrived, and what was in doubt
        // has arrived or never will.
        if let Some((payload, id)) = self.awaiting.iter().next() {
            self.violation(
                cycle,
                format!(
                    "acknowledged publish {payload} (message {id}) was not delivered; {} in all",
                    self.awaiting.len()
                ),
            );
        }
        self.never.extend(self.in_doubt.drain());
    }

    fn delivery(&mut self, cycle: usize, n: u64, id: String, attempt: u64, payload: String) {
        self.figures.deliveries += 1;
        self.figures.max_attempt = self.figures.max_attempt.max(attempt);
        if let Some(first) = self.delivered.get(&payload) {
            if *first != id {
                self.violation(
                    cycle,
                    format!(
                        "publish {payload} arrived as two messages, {first} and {id} (event/{n})"
                    ),
                );
            }
            self.figures.duplicate_deliveries += 1;
            return;
        }
        if let Some(acked) = self.awaiting.remove(&payload) {
            if acked != id {
                self.violation(
                    cycle,
                    format!("publish {payload} was acknowledged as {acked}, delivered as {id}"),
                );
            }
        } else if self.in_doubt.remove(&payload) {
            self.figures.publishes_landed += 1;
        } else if self.never.contains(&payload) {
            self.violation(
                cycle,
                format!("publish {payload} arrived after its queue had been empty (event/{n})"),
            );
        } else {
            self.violation(
                cycle,
                format!("event/{n} delivered {payload:?}, which was never published"),
            );
        }
        self.delivered.insert(payload, id);
    }

    /// A value in the sink's store, as the operator reads it.
    fn sink_value(&self, cycle: usize, wisp: &Wisp, key: &str) -> Option<String> {
        let path = format!("/_wisp/kv/default/{SINK}/{key}");
        let reply = self.ask(cycle, wisp, "GET", &path, b"");
        match reply.status {
            200 => Some(reply.body),
            404 => None,
            _ => self.violation(cycle, format!("GET {path}: {reply:?}")),
        }
    }

    /// `flip`'s deploys: consecutive versions while they ran, and the newest acknowledged one
    /// (or the one in flight) active after the restart, serving its env.
    fn check_deploys(
        &mut self,
        cycle: usize,
        wisp: &Wisp,
        deployer: &Client,
        before: (u64, String),
    ) -> (u64, String) {
        let was = cycle - 1;
        let mut newest = before;
        for (i, said) in &deployer.acked {
            // The deployer checked each against the one before it.
            let version: u64 = said.parse().unwrap();
            newest = (version, deploy_tag(was, *i));
            self.tags.insert(version, newest.1.clone());
        }
        let last_acked = deployer.acked.last().map(|(i, _)| *i);
        // The deploys that may have landed unacknowledged: those sent after the last
        // acknowledged one (one in flight at the kill, or refused).
        let doubt: Vec<String> = deployer
            .doubt
            .iter()
            .filter(|i| last_acked.is_none_or(|last| **i > last))
            .map(|i| deploy_tag(was, *i))
            .collect();
        self.figures.deploys_acked += deployer.acked.len() as u64;
        self.figures.deploys_doubt += deployer.doubt.len() as u64;
        let versions = self.ask_json(cycle, wisp, &format!("/_wisp/functions/{FLIP}/versions"));
        let active = versions["active"].as_u64().unwrap();
        if active < newest.0 {
            self.violation(
                cycle,
                format!(
                    "{FLIP} is at version {active} after the restart, but version {} ({}) was \
                     acknowledged",
                    newest.0, newest.1
                ),
            );
        }
        if active > newest.0 + doubt.len() as u64 {
            self.violation(
                cycle,
                format!(
                    "{FLIP} is at version {active}: past the acknowledged {} and the deploys \
                     sent after it, {doubt:?}",
                    newest.0
                ),
            );
        }
        let info = self.ask_json(cycle, wisp, &format!("/_wisp/functions/{FLIP}"));
        let serving = info["env"]["DEPLOY"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let tag = if active == newest.0 {
            newest.1
        } else if doubt.contains(&serving) {
            self.figures.deploys_landed += active - newest.0;
            self.tags.insert(active, serving.clone());
            serving.clone()
        } else {
            self.violation(
                cycle,
                format!(
                    "{FLIP} v{active} serves DEPLOY={serving}, not one of the deploys sent after \
                     the last acknowledged: {doubt:?}"
                ),
            );
        };
        let numbers: Vec<u64> = versions["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_u64().unwrap())
            .collect();
        let kept = active.min(10);
        let want: Vec<u64> = (active + 1 - kept..=active).collect();
        if numbers != want {
            self.violation(
                cycle,
                format!("{FLIP} keeps versions {numbers:?}; expected {want:?}"),
            );
        }
        if info["version"] != active || serving != tag {
            self.violation(
                cycle,
                format!("{FLIP} serves {info}; expected version {active} with DEPLOY={tag}"),
            );
        }
        let echo = self.ask(cycle, wisp, "GET", &format!("/{FLIP}/echo"), b"");
        if echo.status != 200 || !echo.body.contains(&format!("\nDEPLOY={tag}\n")) {
            self.violation(cycle, format!("{FLIP} v{active} ({tag}) answers {echo:?}"));
        }
        (active, tag)
    }

    /// At the end: everything of every cycle is still there.
    fn last_check(&mut self, cycle: usize, wisp: &Wisp) {
        let mut listed: Vec<String> = self.list_keys(cycle, wisp, "w-");
        listed.sort();
        let mut landed = self.keys.clone();
        landed.sort();
        if listed != landed {
            let listed_set: HashSet<&String> = listed.iter().collect();
            let landed_set: HashSet<&String> = landed.iter().collect();
            let gone: Vec<_> = landed_set.difference(&listed_set).take(5).collect();
            let extra: Vec<_> = listed_set.difference(&landed_set).take(5).collect();
            self.violation(
                cycle,
                format!("the writes changed since their cycles: gone {gone:?}, new {extra:?}"),
            );
        }
        for (name, value) in &self.counters {
            let now = self.ask_json(cycle, wisp, &format!("/api/counter/{name}"))["count"].clone();
            if now != *value {
                self.violation(cycle, format!("counter {name} was {value}, is now {now}"));
            }
        }
        // Every delivery recorded is still there, and no gap was filled.
        for n in 1..self.next_event {
            let there = self
                .sink_value(cycle, wisp, &format!("event%2F{n:010}"))
                .is_some();
            if there == self.gaps.contains(&n) {
                self.violation(
                    cycle,
                    format!("event/{n} there: {there}, when read: {}", !there),
                );
            }
        }
        let seq = self.sink_value(cycle, wisp, "seq").unwrap_or_default();
        if seq.trim() != (self.next_event - 1).to_string() {
            self.violation(
                cycle,
                format!("the sink's seq is {seq}, was {}", self.next_event - 1),
            );
        }
        let versions = self.ask_json(cycle, wisp, &format!("/_wisp/functions/{FLIP}/versions"));
        let active = versions["active"].as_u64().unwrap();
        if self.tags.keys().next_back() != Some(&active) {
            self.violation(cycle, format!("{FLIP}'s active version moved to {active}"));
        }
    }

    /// A clean stop: SIGTERM, exit 0, nothing panicked in any cycle. Then three starts and
    /// clean stops, for what a start costs on the same data without a crash to recover from.
    fn stop(&mut self, cycle: usize, wisp: Wisp) {
        self.terminate(cycle, wisp);
        for _ in 0..3 {
            let wisp = self.start(cycle);
            let took = self.figures.restarts.pop().unwrap();
            self.figures.clean_starts.push(took);
            self.terminate(cycle, wisp);
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
            self.violation(cycle, format!("the server panicked: {line}"));
        }
    }

    fn terminate(&self, cycle: usize, mut wisp: Wisp) {
        let pid = wisp.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = wisp.child.wait().unwrap();
        if !status.success() {
            self.violation(cycle, format!("SIGTERM ended the server with {status}"));
        }
    }

    /// The running totals, the last 50 restarts' median and the data folder's size.
    fn totals(&self) -> String {
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

    fn report(&self, wall: Duration) {
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

fn flip_config(tag: &str) -> String {
    format!(r#"{{"routes": ["/{FLIP}/..."], "env": {{"DEPLOY": "{tag}"}}}}"#)
}

fn write_key(cycle: usize, k: usize, i: u64) -> String {
    format!("w-{cycle:05}-{k}-{i:06}")
}

fn write_value(key: &str) -> String {
    format!("value of {key}")
}

fn payload(cycle: usize, k: usize, i: u64) -> String {
    format!("p-{cycle}-{k}-{i}")
}

fn deploy_tag(cycle: usize, i: u64) -> String {
    format!("d-{cycle}-{i}")
}

fn refusal(reply: &Reply) -> Answer {
    Answer::Refused(format!("{} {}", reply.status, reply.body.trim()))
}

fn incrementer(addr: SocketAddr, cycle: usize, k: usize) -> Client {
    let name = format!("c-{cycle}-{k}");
    let path = format!("/api/counter/{name}");
    client(
        addr,
        |_| ("POST".into(), path.clone(), vec![], vec![]),
        |i, reply, client| {
            if reply.status != 200 {
                return refusal(reply);
            }
            let count = json(reply).and_then(|v| v["count"].as_u64());
            let low = client.acked.len() as u64 + 1;
            let high = low + client.doubt.len() as u64;
            match count {
                Some(count) if (low..=high).contains(&count) => Answer::Acked(count.to_string()),
                _ => Answer::Broken(format!(
                    "increment {i} of {name} answered {:?}; expected a count in {low}..={high}",
                    reply.body
                )),
            }
        },
    )
}

fn writer(addr: SocketAddr, cycle: usize, k: usize) -> Client {
    client(
        addr,
        |i| {
            let key = write_key(cycle, k, i);
            let path = format!("/_wisp/kv/default/writer/{key}");
            ("PUT".into(), path, vec![], write_value(&key).into_bytes())
        },
        |_, reply, _| match reply.status {
            204 => Answer::Acked(String::new()),
            _ => refusal(reply),
        },
    )
}

fn publisher(addr: SocketAddr, cycle: usize, k: usize) -> Client {
    let path = format!("/_wisp/topics/{TOPIC}");
    client(
        addr,
        |i| {
            (
                "POST".into(),
                path.clone(),
                vec![],
                payload(cycle, k, i).into_bytes(),
            )
        },
        |i, reply, _| {
            if reply.status != 202 {
                return refusal(reply);
            }
            let answer = json(reply).unwrap_or_default();
            match (answer["id"].as_str(), answer["subscribers"].as_u64()) {
                (Some(id), Some(1)) => Answer::Acked(id.to_string()),
                _ => Answer::Broken(format!(
                    "publish {} answered {:?}",
                    payload(cycle, k, i),
                    reply.body
                )),
            }
        },
    )
}

fn deployer(addr: SocketAddr, cycle: usize, first_version: u64) -> Client {
    let wasm = std::fs::read(module("hostile")).unwrap();
    let path = format!("/_wisp/functions/{FLIP}");
    client(
        addr,
        |i| {
            let config = flip_config(&deploy_tag(cycle, i));
            let headers = vec![("Wisp-Config".to_string(), config)];
            ("PUT".into(), path.clone(), headers, wasm.clone())
        },
        |i, reply, client| {
            if reply.status != 200 {
                return refusal(reply);
            }
            let info = json(reply).unwrap_or_default();
            let tag = deploy_tag(cycle, i);
            // Refused deploys may have taken a number; acknowledged ones never share one.
            let low = first_version + client.acked.len() as u64;
            let high = low + client.doubt.len() as u64;
            match info["version"].as_u64() {
                Some(v) if (low..=high).contains(&v) && info["env"]["DEPLOY"] == tag.as_str() => {
                    Answer::Acked(v.to_string())
                }
                _ => Answer::Broken(format!(
                    "deploy {tag} answered {:?}; expected a version in {low}..={high}",
                    reply.body
                )),
            }
        },
    )
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
