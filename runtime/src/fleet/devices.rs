//! The fleet's devices: each writes a heartbeat to `wisp:{FLEET}:devices` every [`BEAT`] and
//! after each batch of entries it applied; `GET /_wisp/fleet` lists them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Connection, RedisResult};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::changes;
use super::log::Skip;
use super::{REPLY_TIMEOUT, Shared};

/// Time between two heartbeats.
pub const BEAT: Duration = Duration::from_secs(2);
/// A device not heard of for this long is shown as away.
const AWAY_AFTER: u64 = 10;
/// Time between two collections of the modules Redis no longer needs to keep.
const COLLECT_EVERY: Duration = Duration::from_secs(600);

/// What a device says of itself in its heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub name: String,
    /// Where it serves: `http://ip:port`.
    pub address: String,
    /// The Wisp version it runs.
    pub version: String,
    /// Random per process: two processes heartbeating under one name differ here.
    #[serde(default)]
    pub instance: String,
    /// The functions it serves, and their versions.
    #[serde(default)]
    pub functions: BTreeMap<String, u32>,
    /// Unix seconds, by Redis's clock (the devices' clocks may disagree).
    #[serde(default)]
    pub last_seen: u64,
    /// The last log entry it applied.
    #[serde(default)]
    pub applied: Option<String>,
    /// Recent entries it could not apply.
    #[serde(default)]
    pub skipped: Vec<Skip>,
    /// It stopped (SIGTERM) rather than went silent.
    #[serde(default)]
    pub stopped: bool,
}

/// This device, as its heartbeat says it.
fn this(shared: &Shared, last_seen: u64, stopped: bool) -> Device {
    Device {
        name: shared.device.clone(),
        address: shared.address.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        instance: shared.instance.clone(),
        functions: shared
            .deployed
            .functions()
            .iter()
            .map(|f| (f.name().to_string(), f.version))
            .collect(),
        last_seen,
        applied: shared.applier.position().map(|p| p.to_string()),
        skipped: shared.applier.skips(),
        stopped,
    }
}

/// Redis's clock, in Unix seconds.
fn redis_time(con: &mut Connection) -> RedisResult<u64> {
    let (seconds, _micros): (u64, u64) = redis::cmd("TIME").query(con)?;
    Ok(seconds)
}

/// The heartbeat thread: a beat every [`BEAT`] or when nudged, and a last one at the stop;
/// at start and every [`COLLECT_EVERY`], the modules no one needs go from Redis.
pub fn run(shared: &Shared) {
    let mut con = None;
    let mut warned: Option<Instant> = None;
    let mut collected: Option<Instant> = None;
    loop {
        let stopping = shared.stopped();
        let mut result = beat(shared, &mut con, stopping, &mut warned);
        if let (Ok(()), Some(c)) = (&result, con.as_mut())
            && collected.is_none_or(|at| at.elapsed() >= COLLECT_EVERY)
        {
            result = changes::collect_modules(shared, c).map(drop);
            collected = Some(Instant::now());
        }
        if let Err(e) = result {
            con = None;
            if !stopping {
                shared.link.down(&e.to_string());
            }
        }
        if stopping {
            return;
        }
        shared.sleep(BEAT);
    }
}

fn beat(
    shared: &Shared,
    con: &mut Option<Connection>,
    stopped: bool,
    warned: &mut Option<Instant>,
) -> RedisResult<()> {
    if con.is_none() {
        *con = Some(shared.connect(REPLY_TIMEOUT)?);
    }
    let con = con.as_mut().expect("connected");
    let now = redis_time(con)?;
    let before: Option<String> = redis::cmd("HGET")
        .arg(&shared.keys.devices)
        .arg(&shared.device)
        .query(con)?;
    let other = before
        .and_then(|json| serde_json::from_str::<Device>(&json).ok())
        .filter(|d| d.instance != shared.instance && !d.stopped)
        .filter(|d| now.saturating_sub(d.last_seen) < AWAY_AFTER);
    if let Some(other) = other
        && warned.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
    {
        eprintln!(
            "wisp: fleet: warning: another device ({}) is in the fleet as `{}` too; give each a \
             name of its own with --device",
            other.address, shared.device
        );
        *warned = Some(Instant::now());
    }
    let json = serde_json::to_string(&this(shared, now, stopped)).expect("devices serialize");
    redis::cmd("HSET")
        .arg(&shared.keys.devices)
        .arg(&shared.device)
        .arg(json)
        .exec(con)
}

/// `{"fleet", "device", "connected", "devices": [...]}`, the devices sorted by name, each with
/// its `state` (`up`, `away` when not heard of for 10 s, `stopped`) and `seen_ago` in seconds.
/// Without Redis, only this device, and the error.
pub fn list(shared: &Shared) -> Value {
    let read = shared.connect(REPLY_TIMEOUT).and_then(|mut con| {
        let now = redis_time(&mut con)?;
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(&shared.keys.devices)
            .query(&mut con)?;
        Ok((now, all))
    });
    let (connected, now, devices, error) = match read {
        Ok((now, all)) => {
            let devices = all
                .iter()
                .filter_map(|(_, json)| serde_json::from_str::<Device>(json).ok())
                .collect();
            (true, now, devices, None)
        }
        Err(e) => {
            shared.link.down(&e.to_string());
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            (
                false,
                now,
                vec![this(shared, now, false)],
                Some(e.to_string()),
            )
        }
    };
    let mut devices: Vec<Device> = devices;
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    let list: Vec<Value> = devices
        .iter()
        .map(|d| {
            let ago = now.saturating_sub(d.last_seen);
            let state = match (d.stopped, ago > AWAY_AFTER) {
                (true, _) => "stopped",
                (false, true) => "away",
                (false, false) => "up",
            };
            let mut value = serde_json::to_value(d).expect("devices serialize");
            value["state"] = json!(state);
            value["seen_ago"] = json!(ago);
            value["this"] = json!(d.name == shared.device);
            value
        })
        .collect();
    let mut out = json!({
        "fleet": shared.fleet,
        "device": shared.device,
        "connected": connected,
        "devices": list,
    });
    if let Some(error) = error {
        out["error"] = json!(format!("the fleet's Redis ({}): {error}", shared.shown));
    }
    out
}
