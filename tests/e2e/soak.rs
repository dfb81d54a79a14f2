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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TOKEN, TempDir, WISP, modules};

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

/// How often each client places an order. An order is two changes to the watched keys (its
/// write, then its payment), and `audit`, the watcher, handles them one at a time: faster, and
/// its queue fills up until the writes are refused (`503`, by design).
const ORDER_EVERY: Duration = Duration::from_millis(100);

/// A pause between two rounds of a client's calls: the load is continuous, and still leaves
/// the shared machine some room.
const CLIENT_PAUSE: Duration = Duration::from_millis(2);

// --- The server ---------------------------------------------------------------------------

/// What the server wrote on stderr, in short.
#[derive(Default)]
struct ServerLog {
    lines: u64,
    /// `[payment] paid order N`: one per order, expected.
    paid_lines: u64,
    /// Every other line, counted; the first ones kept.
    notable: u64,
    first_notable: Vec<String>,
    panics: u64,
}

/// `wisp up` on the examples, on an ephemeral loopback port; killed when dropped.
struct Soaked {
    addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<ServerLog>>,
    _dir: TempDir,
}

impl Soaked {
    fn start() -> Soaked {
        let dir = TempDir::new();
        let manifest = dir.0.join("wisp.json");
        std::fs::write(&manifest, examples_manifest()).unwrap();
        // Another build of the same version can be soaked instead: the static musl binary, say,
        // whose allocator gives memory back where glibc's keeps it.
        let binary = std::env::var_os("WISP_SOAK_BINARY").unwrap_or(WISP.into());
        let mut child = Command::new(binary)
            .arg("up")
            .args(["--board", "none", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.0.join("data"))
            .arg(&manifest)
            .env("WISP_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wisp");
        let log = Arc::new(Mutex::new(ServerLog::default()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log_for_thread = log.clone();
        thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                let mut log = log_for_thread.lock().unwrap();
                log.lines += 1;
                if line.contains("panicked") {
                    log.panics += 1;
                }
                if line.starts_with("[payment] paid order ") {
                    log.paid_lines += 1;
                } else {
                    log.notable += 1;
                    if log.first_notable.len() < 20 {
                        log.first_notable.push(line);
                    }
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                thread::sleep(Duration::from_millis(100));
                let said = log.lock().unwrap().first_notable.join("\n");
                panic!("wisp exited before listening:\n{said}");
            }
            if let Some(addr) = line.trim().strip_prefix("wisp: listening on http://") {
                break addr.parse().unwrap();
            }
        };
        thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Soaked {
            addr,
            child,
            log,
            _dir: dir,
        }
    }

    /// `VmRSS` and `VmHWM`, in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server is running");
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Soaked {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `functions/wisp.json` with each module's absolute path, no build commands, and the
/// heartbeat's timer every second. Checks that every example listed there was built.
fn examples_manifest() -> String {
    let built = modules();
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let text = std::fs::read_to_string(functions.join("wisp.json")).unwrap();
    let mut manifest: Value = serde_json::from_str(&text).unwrap();
    let mut names = Vec::new();
    for function in manifest["functions"].as_array_mut().unwrap() {
        let name = function["name"].as_str().unwrap().to_string();
        let module = functions.join(function["module"].as_str().unwrap());
        assert!(
            module.exists(),
            "{} was not built: functions/build.sh builds hello-c with clang and wasi-libc and \
             go-seed with Go, and says what it lacked (README: \"A fresh machine\")",
            module.display()
        );
        assert_eq!(module.parent().unwrap().canonicalize().unwrap(), built);
        function["module"] = module.to_str().unwrap().into();
        function.as_object_mut().unwrap().remove("build");
        if name == "heartbeat" {
            function["timers"] = serde_json::json!(["every 1s"]);
        }
        names.push(name);
    }
    names.sort();
    let mut rotation = ROTATION;
    rotation.sort();
    assert_eq!(
        rotation, EXAMPLES,
        "the deployer goes through every example"
    );
    assert_eq!(
        names, EXAMPLES,
        "functions/wisp.json's examples changed: call the new ones' routes in the soak"
    );
    manifest.to_string()
}

/// `wasm` with a custom section appended: a new module, with the same code, for each deploy.
fn variant(wasm: &[u8], n: u64) -> Vec<u8> {
    let mut section = vec![4];
    section.extend_from_slice(b"wisp");
    section.extend_from_slice(&n.to_le_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

// --- A keep-alive HTTP client --------------------------------------------------------------

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// One client on one keep-alive connection at a time. Every 500th request on a connection
/// says `Connection: close`, so connections come and go as well.
struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    on_conn: u32,
}

impl Http {
    fn new(addr: SocketAddr) -> Http {
        Http {
            addr,
            conn: None,
            on_conn: 0,
        }
    }

    fn get(&mut self, path: &str) -> Result<Answer, String> {
        self.call("GET", path, &[], b"")
    }

    fn admin(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Answer, String> {
        let auth = format!("Bearer {TOKEN}");
        self.call(method, path, &[("Authorization", &auth)], body)
    }

    fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        let answer = self.exchange(method, path, headers, body);
        if answer.is_err() {
            self.conn = None;
        }
        answer
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, String> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            stream.set_nodelay(true).unwrap();
            self.conn = Some(BufReader::new(stream));
            self.on_conn = 0;
        }
        self.on_conn += 1;
        let closing = self.on_conn >= 500;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: soak\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if closing {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let conn = self.conn.as_mut().unwrap();
        conn.get_mut()
            .write_all(&request)
            .map_err(|e| format!("send: {e}"))?;
        let answer = read_answer(conn, method == "HEAD").map_err(|e| format!("receive: {e}"))?;
        let close = answer
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if closing || close {
            self.conn = None;
        }
        Ok(answer)
    }
}

fn read_answer(conn: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<Answer> {
    use std::io::{Error, ErrorKind};
    let bad = |what: String| Error::new(ErrorKind::InvalidData, what);
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(Error::new(
            ErrorKind::UnexpectedEof,
            "closed before answering",
        ));
    }
    let status: u16 = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "closed in the head"));
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (k, v) = trimmed
            .split_once(':')
            .ok_or_else(|| bad(format!("header {trimmed:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 || status < 200 {
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or("");
            let size =
                usize::from_str_radix(size, 16).map_err(|_| bad(format!("chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    line.clear();
                    if conn.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size + 2, 0);
            conn.read_exact(&mut body[start..])?;
            body.truncate(start + size);
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| bad(format!("Content-Length {length:?}")))?;
        body.resize(length, 0);
        conn.read_exact(&mut body)?;
    } else {
        conn.read_to_end(&mut body)?;
    }
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// --- Counting ------------------------------------------------------------------------------

/// Every answer, by what was asked and what came back.
struct Stats {
    start: Instant,
    requests: AtomicU64,
    unexpected: AtomicU64,
    /// Deliberate errors that got the error expected.
    deliberate: AtomicU64,
    deploys: AtomicU64,
    outcomes: Mutex<BTreeMap<String, u64>>,
    failures: Mutex<Vec<String>>,
}

impl Stats {
    fn new() -> Stats {
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
    fn check(
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

// --- The load ------------------------------------------------------------------------------

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

fn weather_is_whole(a: &Answer) -> bool {
    a.json().is_some_and(|json| {
        json.as_array().is_some_and(|cities| {
            cities.len() == 4
                && cities
                    .iter()
                    .all(|c| c["city"].is_string() && c["temperature_c"].is_number())
        })
    })
}

/// `{ "now": <ms> }`, both from Rust's `date` and from Go's.
fn is_a_date(a: &Answer) -> bool {
    a.json().is_some_and(|json| json["now"].as_u64().is_some())
}

/// Calls every route of the Rust and C examples, round after round, until `stop`.
fn client(i: usize, addr: SocketAddr, stats: &Stats, stop: &AtomicBool, done: &Mutex<Done>) {
    let mut http = Http::new(addr);
    let name = format!("soak-{i}");
    let counter = format!("/api/counter/{name}");
    let mut count = 0;
    let mut round = 0u64;
    let mut next_order = Instant::now();
    while !stop.load(Relaxed) {
        round += 1;
        stats.check("GET /api/date", http.get("/api/date"), 200, is_a_date);
        let origin = [("Origin", "http://app.example")];
        stats.check(
            "GET /api/date (CORS)",
            http.call("GET", "/api/date", &origin, b""),
            200,
            |a| a.header("access-control-allow-origin") == Some("*") && is_a_date(a),
        );
        let preflight = [
            ("Origin", "http://app.example"),
            ("Access-Control-Request-Method", "GET"),
        ];
        stats.check(
            "OPTIONS /api/date",
            http.call("OPTIONS", "/api/date", &preflight, b""),
            204,
            |a| a.header("access-control-allow-origin") == Some("*"),
        );
        stats.check(
            "GET /api/weather",
            http.get("/api/weather"),
            200,
            weather_is_whole,
        );
        stats.check(
            "GET /api/weather?city=",
            http.get("/api/weather?city=lisbon"),
            200,
            |a| a.json().is_some_and(|json| json["city"] == "Lisbon"),
        );
        stats.check(
            "HEAD /api/weather",
            http.call("HEAD", "/api/weather", &[], b""),
            200,
            |a| a.body.is_empty() && a.header("content-length").is_some_and(|l| l != "0"),
        );
        let path = format!("/soak/{i}/{round}");
        stats.check(
            "GET /hello-c/...",
            http.get(&format!("/hello-c{path}")),
            200,
            |a| a.body == format!("Hello from C! method=GET path={path}\n"),
        );
        stats.check(
            "POST /hello-c/...",
            http.call("POST", "/hello-c/post", &[], b"a body"),
            200,
            |a| a.body == "Hello from C! method=POST path=/post\n",
        );
        let expect = format!(r#"{{"name":"{name}","count":{}}}"#, count + 1);
        if stats
            .check(
                "POST /api/counter/NAME",
                http.call("POST", &counter, &[], b""),
                200,
                |a| a.body == expect,
            )
            .is_some()
        {
            count += 1;
        }
        let expect = format!(r#"{{"name":"{name}","count":{count}}}"#);
        stats.check("GET /api/counter/NAME", http.get(&counter), 200, |a| {
            a.body == expect
        });
        // An order every ORDER_EVERY (see there).
        if Instant::now() >= next_order {
            next_order = Instant::now() + ORDER_EVERY;
            let order = format!(r#"{{"item": "{name}", "amount": {round}}}"#);
            let placed = stats.check(
                "POST /api/checkout",
                http.call("POST", "/api/checkout", &[], order.as_bytes()),
                202,
                |a| {
                    a.json().is_some_and(|json| json["id"].is_string())
                        && a.header("location").is_some()
                },
            );
            if let Some(placed) = placed {
                let id = placed.json().unwrap()["id"].as_str().unwrap().to_string();
                stats.check(
                    "GET /api/orders/ID",
                    http.get(&format!("/api/orders/{id}")),
                    200,
                    |a| {
                        a.json().is_some_and(|json| {
                            json["id"] == id.as_str()
                                && json["item"] == name.as_str()
                                && (json["status"] == "pending" || json["status"] == "paid")
                        })
                    },
                );
                let mut done = done.lock().unwrap();
                done.orders.push(id);
                done.watched_writes += 1;
            }
        }
        stats.check("GET /api/heartbeat", http.get("/api/heartbeat"), 200, |a| {
            a.json().is_some_and(|json| json["beats"].is_u64())
        });
        stats.check("GET /api/audit", http.get("/api/audit"), 200, |a| {
            a.json().is_some_and(|json| json["entries"].is_array())
        });
        if round.is_multiple_of(10) {
            // Deliberate errors: from a function, from the router, from a function's parser.
            stats.check(
                "GET /api/weather?city=nowhere",
                http.get("/api/weather?city=atlantis"),
                404,
                |a| a.body.contains("no weather for atlantis"),
            );
            stats.check(
                "DELETE /api/date",
                http.call("DELETE", "/api/date", &[], b""),
                405,
                |_| true,
            );
            stats.check("GET /api/nothing", http.get("/api/nothing"), 404, |_| true);
            stats.check(
                "POST /api/checkout (not JSON)",
                http.call("POST", "/api/checkout", &[], b"nonsense"),
                400,
                |_| true,
            );
            stats.check(
                "POST /api/heartbeat",
                http.call("POST", "/api/heartbeat", &[], b""),
                405,
                |_| true,
            );
        }
        thread::sleep(CLIENT_PAUSE);
    }
    done.lock().unwrap().counters.push((name, count));
}

/// Calls the Go example's routes, one at a time: each request starts Go's runtime (tens of
/// millions of fuel).
fn go_client(addr: SocketAddr, stats: &Stats, stop: &AtomicBool) {
    let mut http = Http::new(addr);
    while !stop.load(Relaxed) {
        stats.check("GET /go/api/date", http.get("/go/api/date"), 200, |a| {
            a.header("access-control-allow-origin") == Some("*") && is_a_date(a)
        });
        stats.check(
            "GET /go/api/weather",
            http.get("/go/api/weather"),
            200,
            weather_is_whole,
        );
        stats.check(
            "OPTIONS /go/api/weather",
            http.call("OPTIONS", "/go/api/weather", &[], b""),
            204,
            |a| a.header("access-control-allow-methods") == Some("GET"),
        );
        pause(stop, Duration::from_millis(20));
    }
}

/// The operator's key-value writes, reads and deletes, and a look at the admin API now and
/// then.
fn operator(addr: SocketAddr, stats: &Stats, stop: &AtomicBool, done: &Mutex<Done>) {
    let mut http = Http::new(addr);
    let mut n = 0u64;
    let mut note_written = None;
    while !stop.load(Relaxed) {
        n += 1;
        let key = format!("/_wisp/kv/default/counter/admin-{n}");
        let value = format!("value {n}");
        stats.check(
            "PUT /_wisp/kv/default/counter/KEY",
            http.admin("PUT", &key, value.as_bytes()),
            204,
            |_| true,
        );
        stats.check(
            "GET /_wisp/kv/default/counter/KEY",
            http.admin("GET", &key, b""),
            200,
            |a| a.body == value,
        );
        // Keeps the last 8 keys.
        if n > 8 {
            let old = format!("/_wisp/kv/default/counter/admin-{}", n - 8);
            stats.check(
                "DELETE /_wisp/kv/default/counter/KEY",
                http.admin("DELETE", &old, b""),
                204,
                |_| true,
            );
            if n.is_multiple_of(5) {
                stats.check(
                    "GET /_wisp/kv/default/counter/KEY (deleted)",
                    http.admin("GET", &old, b""),
                    404,
                    |_| true,
                );
            }
        }
        // Every other time a watched write, and every fourth time the delete of the last one.
        if !n.is_multiple_of(2) {
            let note = format!(r#"{{"id":"note-{n}","note":"written by the operator"}}"#);
            if stats
                .check(
                    "PUT /_wisp/kv/orders/_shared/order%2FKEY",
                    http.admin(
                        "PUT",
                        &format!("/_wisp/kv/orders/_shared/order%2Fnote-{n}"),
                        note.as_bytes(),
                    ),
                    204,
                    |_| true,
                )
                .is_some()
            {
                done.lock().unwrap().watched_writes += 1;
                note_written = Some(n);
            }
        } else if n.is_multiple_of(4)
            && let Some(written) = note_written.take()
            && stats
                .check(
                    "DELETE /_wisp/kv/orders/_shared/order%2FKEY",
                    http.admin(
                        "DELETE",
                        &format!("/_wisp/kv/orders/_shared/order%2Fnote-{written}"),
                        b"",
                    ),
                    204,
                    |_| true,
                )
                .is_some()
        {
            done.lock().unwrap().watched_writes += 1;
        }
        if n.is_multiple_of(25) {
            stats.check(
                "GET /_wisp/kv/default/counter?prefix=admin-",
                http.admin("GET", "/_wisp/kv/default/counter?prefix=admin-", b""),
                200,
                |a| {
                    a.json().is_some_and(|json| {
                        json["keys"].as_array().is_some_and(|keys| keys.len() <= 8)
                    })
                },
            );
            for path in ["/_wisp/functions", "/_wisp/topics", "/_wisp/metrics"] {
                stats.check(
                    &format!("GET {path}"),
                    http.admin("GET", path, b""),
                    200,
                    |_| true,
                );
            }
            stats.check("GET /healthz", http.get("/healthz"), 200, |a| {
                a.body == "ok\n"
            });
        }
        pause(stop, Duration::from_millis(20));
    }
}

/// Stores pending orders as the operator and publishes them on `orders` for `payment`.
fn publisher(addr: SocketAddr, stats: &Stats, stop: &AtomicBool, done: &Mutex<Done>) {
    let mut http = Http::new(addr);
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        n += 1;
        let id = format!("pub-{n}");
        let order = format!(r#"{{"id":"{id}","item":"soak","amount":1,"status":"pending"}}"#);
        let stored = stats.check(
            "PUT /_wisp/kv/orders/_shared/order%2FID",
            http.admin(
                "PUT",
                &format!("/_wisp/kv/orders/_shared/order%2F{id}"),
                order.as_bytes(),
            ),
            204,
            |_| true,
        );
        if stored.is_some() {
            done.lock().unwrap().watched_writes += 1;
            let published = stats.check(
                "POST /_wisp/topics/orders",
                http.admin("POST", "/_wisp/topics/orders", order.as_bytes()),
                202,
                |a| a.json().is_some_and(|json| json["subscribers"] == 1),
            );
            if published.is_some() {
                done.lock().unwrap().orders.push(id);
            }
        }
        pause(stop, Duration::from_millis(50));
    }
}

/// Deploys a new version of the next example every `every`, keeping its configuration; the
/// version each one is at in the end.
fn deployer(
    addr: SocketAddr,
    stats: &Stats,
    stop: &AtomicBool,
    every: Duration,
) -> BTreeMap<&'static str, u64> {
    let mut http = Http::new(addr);
    let mut versions: BTreeMap<&str, u64> = EXAMPLES.iter().map(|&name| (name, 1)).collect();
    let wasm: BTreeMap<&str, Vec<u8>> = EXAMPLES
        .iter()
        .map(|&name| {
            let path = modules().join(format!("{name}.wasm"));
            (name, std::fs::read(path).unwrap())
        })
        .collect();
    let mut k = 0u64;
    loop {
        pause(stop, every);
        if stop.load(Relaxed) {
            return versions;
        }
        let name = ROTATION[k as usize % ROTATION.len()];
        k += 1;
        let next = versions[name] + 1;
        let deployed = stats.check(
            "PUT /_wisp/functions/NAME",
            http.admin(
                "PUT",
                &format!("/_wisp/functions/{name}"),
                &variant(&wasm[name], k),
            ),
            200,
            |a| a.json().is_some_and(|json| json["version"] == next),
        );
        if deployed.is_some() {
            versions.insert(name, next);
            stats.deploys.fetch_add(1, Relaxed);
        }
    }
}

// --- The soak ------------------------------------------------------------------------------

/// One sample a second.
struct Sample {
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
fn queue_figures(metrics: &str) -> (u64, u64) {
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
        // Samples every second until the end; prints each row as it completes.
        let mut samples = Vec::new();
        let mut tick = 1;
        let mut sampler = Http::new(addr);
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
        stop.store(true, Relaxed);
        (samples, deploys.join().unwrap())
    });
    let loaded = stats.start.elapsed();
    let done = done.into_inner().unwrap();

    // The queues drain: every message delivered, every watched change seen.
    let mut http = Http::new(addr);
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
    let failed_invocations: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("wisp_invocations_total") && l.contains("status=\"5xx\""))
        .collect();
    let retries: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("wisp_delivery_retries_total{") && !l.ends_with(" 0"))
        .collect();
    let (rss_end, hwm_end) = server.memory_kib();
    let checked = stats.start.elapsed() - loaded - drained;

    // The table.
    let unit = if plan.row == 60 { "minute" } else { "second" };
    eprintln!();
    eprintln!(
        "soak: {:>6} | RSS min | RSS max | RSS last | peak (HWM) | requests |  req/s | deploys | unexpected | queued max",
        unit
    );
    eprintln!(
        "soak: -------|---------|---------|----------|------------|----------|--------|---------|------------|-----------"
    );
    let mut rows: Vec<(u64, Vec<&Sample>)> = Vec::new();
    for sample in &samples {
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
