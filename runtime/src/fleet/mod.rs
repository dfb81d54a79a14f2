//! The fleet: devices that name the same Redis (`--redis`) and fleet (`--fleet`) share their
//! deploys. A deploy, rollback or delete made on any device is recorded in Redis and applied by
//! every device, in one order; each keeps its own registry and modules, so it restarts and
//! serves without Redis.
//!
//! # How it works
//!
//! Everything lives under `wisp:{FLEET}:` in Redis (the braces are literal, as in the
//! store's keys):
//!
//! - `registry`: the log, a Redis Stream. Each entry is one change: `op` (`deploy`, `rollback`,
//!   `delete`), `name`, `version`, `hash`, `size`, `config` (JSON), `origin` (the device), `at`
//!   (when the version was deployed, Unix seconds). The stream's order is the fleet's order.
//! - `versions`: per function, the last version number handed out. A deploy's number and its
//!   log entry come from one Lua script ([`changes`]), so no two deploys get one number and
//!   the numbers follow the log.
//! - `module:{sha256}`: module bytes, by content; `modules`: a sorted set of those hashes, by
//!   the time (ms) of the last entry that named them. A module that no entry left in the log names and that the
//!   snapshot does not serve is removed ([`changes::collect_modules`], by each device at start and
//!   every 10 minutes).
//! - `functions`: the snapshot: per function, the record the latest entry applied left active
//!   (or that it was deleted), kept by the devices as they apply. A device that was away longer
//!   than the log holds rebuilds from it.
//! - `devices`: one JSON value per device, rewritten by its heartbeat; `epoch`: a random value
//!   made once, so that a device told to use a new, empty Redis does not skip its log.
//!
//! A device records a change only after its own checks pass (the module compiles, the routes
//! are free), then waits for its own applier to apply the entry and answers from that. Its
//! applier is a thread that blocks on `XREAD` and applies entries strictly in order through
//! [`Deployed::apply_version`] and [`Deployed::remove_marked`], which commit the entry's id in
//! the registry with the change: after a crash, an outage or a restart the device goes on
//! right after the last entry it applied. An entry that cannot be applied on this device (a
//! module over its memory limit, a route conflict) is logged, skipped, and shown by `wisp
//! fleet`. A second thread writes the heartbeat. Neither ever runs on an executor thread; the
//! admin API calls in through `smol::unblock`.
//!
//! When Redis cannot be reached, functions keep serving from the local registry, changes are
//! refused with `503` (made on one device only, they would fork the fleet), and both threads
//! reconnect with a backoff of at most [`MAX_BACKOFF`], then catch up.

mod changes;
mod devices;
mod log;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::FunctionConfig;
use crate::deployed::{DeployError, Deployed, Function};
use crate::metrics::FleetFigures;

pub use devices::Device;
pub use log::StreamId;

/// Time to open a connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a Redis reply may take (a blocking `XREAD` waits [`log::BLOCK`] of it).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a deploy's module upload may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait between two attempts to reach Redis.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a change waits for this device to apply it before answering `504`.
const APPLY_WAIT: Duration = Duration::from_secs(10);
/// Entries the log keeps by default; `WISP_FLEET_LOG_LEN` changes it.
pub const DEFAULT_LOG_LEN: u64 = 10_000;

/// How a device joins a fleet.
#[derive(Debug, Clone)]
pub struct Options {
    /// `redis://[:password@]host:port/db`. Never printed whole: it may hold a password.
    pub redis: String,
    /// The fleet's name: devices of one Redis with different names never meet. Default
    /// `default`.
    pub fleet: String,
    /// This device's name in the fleet. Default: the host name.
    pub device: String,
    /// The log's length bound.
    pub log_len: u64,
}

/// Checks a fleet's or a device's name: they go into Redis keys and the listing.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{what} `{name}`: use 1 to 63 of a-z, A-Z, 0-9, -, _ and ."
        )),
    }
}

/// This machine's host name, the default device name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| check_name("", h).is_ok())
        .unwrap_or_else(|| "wisp".into())
}

/// The Redis keys of one fleet.
#[derive(Debug, Clone)]
struct Keys {
    log: String,
    versions: String,
    functions: String,
    modules: String,
    devices: String,
    epoch: String,
    prefix: String,
}

impl Keys {
    fn new(fleet: &str) -> Keys {
        // The braces are literal, as the store's keys have them: a Redis Cluster hash tag, so
        // that the keys a script touches are in one slot.
        let prefix = format!("wisp:{{{fleet}}}:");
        let key = |name: &str| format!("{prefix}{name}");
        Keys {
            log: key("registry"),
            versions: key("versions"),
            functions: key("functions"),
            modules: key("modules"),
            devices: key("devices"),
            epoch: key("epoch"),
            prefix,
        }
    }

    fn module(&self, hash: &str) -> String {
        format!("{}module:{hash}", self.prefix)
    }
}

/// Whether Redis answers, as this device's threads last saw it.
#[derive(Default)]
struct Link {
    connected: AtomicBool,
    /// The last error, and when the link went down.
    down: Mutex<Option<(String, Instant)>>,
    reconnects: AtomicU64,
}

impl Link {
    fn up(&self) {
        if !self.connected.swap(true, Relaxed) {
            let was = lock(&self.down).take();
            if let Some((_, since)) = was {
                self.reconnects.fetch_add(1, Relaxed);
                let away = since.elapsed().as_secs_f64();
                eprintln!("wisp: fleet: Redis is back after {away:.1} s");
            }
        }
    }

    fn down(&self, why: &str) {
        let mut down = lock(&self.down);
        if self.connected.swap(false, Relaxed) || down.is_none() {
            eprintln!("wisp: fleet: Redis cannot be reached: {why}; serving on, retrying");
            *down = Some((why.to_string(), Instant::now()));
        }
    }
}

/// What one entry did on this device, kept for the device that made the change.
pub enum Outcome {
    Served(Arc<Function>, bool),
    Removed,
    Failed(DeployError),
}

/// What the threads share.
struct Shared {
    client: redis::Client,
    /// `redis://host:port/db`, without a password.
    shown: String,
    keys: Keys,
    fleet: String,
    device: String,
    /// `http://ip:port` where this device serves.
    address: String,
    /// Random, per process: tells two devices started under one name apart.
    instance: String,
    log_len: u64,
    deployed: Arc<Deployed>,
    link: Link,
    applier: log::Applier,
    /// Module bytes a change made here hands to this device's applier, by hash.
    staged: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    stop: AtomicBool,
    /// Wakes sleeping threads: at a stop, or for a heartbeat after an entry.
    wake: (Mutex<bool>, Condvar),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn connect(&self, reply_timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(reply_timeout))?;
        con.set_write_timeout(Some(reply_timeout))?;
        Ok(con)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Sleeps for `time`, or until a stop or a [`Shared::nudge`]; true if nudged.
    fn sleep(&self, time: Duration) -> bool {
        let (flag, cond) = &self.wake;
        let guard = lock(flag);
        let (mut guard, _) = cond
            .wait_timeout_while(guard, time, |nudged| !*nudged && !self.stopped())
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *guard)
    }

    /// Wakes the heartbeat now.
    fn nudge(&self) {
        *lock(&self.wake.0) = true;
        self.wake.1.notify_all();
    }

    /// The registry key of the last entry applied here.
    fn mark_key(&self) -> String {
        format!("fleet:{}", self.fleet)
    }

    /// The error a change gets when Redis cannot be reached.
    fn away(&self, e: &redis::RedisError) -> DeployError {
        self.link.down(&e.to_string());
        DeployError::FleetAway(format!(
            "the fleet's Redis ({}) cannot be reached ({e}): deploys, rollbacks and deletes are \
             refused until it is back, so that the devices do not diverge; functions keep \
             serving",
            self.shown
        ))
    }
}

/// Exponential backoff between attempts to reach Redis: 100 ms, doubling, at most
/// [`MAX_BACKOFF`].
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }

    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        now
    }
}

/// A device's membership of a fleet: its applier and heartbeat threads, stopped when dropped.
pub struct Fleet {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Fleet {
    /// Joins the fleet as `options` say, for the functions of `deployed`, served at `listen`.
    /// Starts at once, whether or not Redis answers.
    pub fn start(
        options: &Options,
        deployed: Arc<Deployed>,
        listen: SocketAddr,
    ) -> Result<Fleet, String> {
        check_name("fleet", &options.fleet)?;
        check_name("device", &options.device)?;
        // The store's URL parser: redis-rs's brings the `url` crate (0.24 MB, measured).
        let info = crate::store::redis::address::connection_info(&options.redis)
            .map_err(|e| format!("--redis: {e}"))?;
        let client = redis::Client::open(info).map_err(|e| format!("--redis: {e}"))?;
        let info = client.get_connection_info();
        let shown = format!("redis://{}/{}", info.addr(), info.redis_settings().db());
        let address = advertised(listen, info.addr());
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| format!("no randomness: {e}"))?;
        let shared = Arc::new(Shared {
            client,
            shown,
            keys: Keys::new(&options.fleet),
            fleet: options.fleet.clone(),
            device: options.device.clone(),
            address,
            instance: random.iter().map(|b| format!("{b:02x}")).collect(),
            log_len: options.log_len.max(1),
            deployed,
            link: Link::default(),
            applier: log::Applier::default(),
            staged: Mutex::default(),
            stop: AtomicBool::new(false),
            wake: (Mutex::new(false), Condvar::new()),
        });
        println!(
            "wisp: fleet {} as device {} through {}",
            shared.fleet, shared.device, shared.shown
        );
        let spawn = |name: &str, run: fn(&Shared)| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run(&shared))
                .map_err(|e| format!("cannot start the fleet's {name} thread: {e}"))
        };
        let threads = vec![
            spawn("wisp-fleet-log", log::run)?,
            spawn("wisp-fleet-beat", devices::run)?,
        ];
        Ok(Fleet {
            shared,
            threads: Mutex::new(threads),
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.fleet
    }

    pub fn connected(&self) -> bool {
        self.shared.link.connected.load(Relaxed)
    }

    /// Why Redis cannot be reached, and for how long, when it cannot.
    pub fn trouble(&self) -> Option<(String, Duration)> {
        let down = lock(&self.shared.link.down);
        down.as_ref()
            .map(|(why, since)| (why.clone(), since.elapsed()))
    }

    /// Waits, at most `timeout`, until this device has applied every entry the log held when
    /// called. False if it could not (Redis away, or too slow).
    pub fn catch_up(&self, timeout: Duration) -> bool {
        log::catch_up(&self.shared, timeout)
    }

    /// Deploys `wasm` with `config` as a new version on every device. Blocks: call it off the
    /// executor.
    pub fn deploy(
        &self,
        config: FunctionConfig,
        wasm: Vec<u8>,
    ) -> Result<(Arc<Function>, bool), DeployError> {
        served(changes::deploy(&self.shared, config, wasm)?)
    }

    /// Serves `version` of `name` again on every device. Blocks.
    pub fn rollback(&self, name: &str, version: u32) -> Result<Arc<Function>, DeployError> {
        served(changes::rollback(&self.shared, name, version)?).map(|(f, _)| f)
    }

    /// Deletes `name` on every device. Blocks.
    pub fn remove(&self, name: &str) -> Result<(), DeployError> {
        match changes::remove(&self.shared, name)? {
            Outcome::Removed => Ok(()),
            Outcome::Failed(e) => Err(e),
            Outcome::Served(..) => unreachable!("a delete serves nothing"),
        }
    }

    /// The devices of the fleet, as `GET /_wisp/fleet` shows them. Blocks.
    pub fn devices(&self) -> serde_json::Value {
        devices::list(&self.shared)
    }

    /// The figures the metrics show.
    pub fn figures(&self) -> FleetFigures {
        let s = &self.shared;
        FleetFigures {
            fleet: s.fleet.clone(),
            device: s.device.clone(),
            connected: self.connected(),
            applied: s.applier.applied.load(Relaxed),
            skipped: s.applier.skipped.load(Relaxed),
            reconnects: s.link.reconnects.load(Relaxed),
        }
    }
}

fn served(outcome: Outcome) -> Result<(Arc<Function>, bool), DeployError> {
    match outcome {
        Outcome::Served(function, created) => Ok((function, created)),
        Outcome::Failed(e) => Err(e),
        Outcome::Removed => unreachable!("a deploy removes nothing"),
    }
}

impl Fleet {
    /// Stops the threads (within [`log::BLOCK`], or a connection timeout), after a last
    /// heartbeat that says this device stopped.
    pub fn stop(&self) {
        self.shared.stop.store(true, Relaxed);
        self.shared.nudge();
        for thread in lock(&self.threads).drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where other devices and people reach this one: the listening address, or, when it listens
/// on every interface, the address of the interface that leads to Redis (no packet is sent).
fn advertised(listen: SocketAddr, redis: &redis::ConnectionAddr) -> String {
    let mut addr = listen;
    if listen.ip().is_unspecified()
        && let redis::ConnectionAddr::Tcp(host, port) = redis
        && let Ok(socket) = UdpSocket::bind((listen.ip(), 0))
        && socket.connect((host.as_str(), *port)).is_ok()
        && let Ok(local) = socket.local_addr()
    {
        addr.set_ip(local.ip());
    }
    format!("http://{addr}")
}
