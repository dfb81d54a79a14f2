//! What the dashboard shows beside the functions:
//!
//! - `GET /_wisp/device`: version, board profile, uptime, memory, workers, the store, and the
//!   fleet when the device is in one;
//! - `GET /_wisp/history` and `GET /_wisp/functions/NAME/history`: each function's last 15
//!   minutes in 10-second steps (requests, 5xx errors, p50 and p99 latency, fuel), the steps
//!   without a call left out.

use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::{Admin, error, json_response, query_value};
use crate::deployed::Function;
use crate::history::{STEP, STEPS};
use crate::http::{Request, Response};

/// What the server was started as.
#[derive(Debug, Clone)]
pub struct Device {
    /// The board profile applied, if any.
    pub board: Option<String>,
    pub workers: usize,
    /// `embedded` or `redis`.
    pub store: &'static str,
    pub started: SystemTime,
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The value of `field` (in kB) in a `/proc` file of `Name:   123 kB` lines, in bytes.
fn proc_kib(file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text.lines().find(|l| l.split(':').next() == Some(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn device(admin: &Admin) -> Response {
    let d = &admin.device;
    let http = &admin.http_stats;
    let fleet = admin.fleet.as_ref().map(|fleet| {
        let f = fleet.figures();
        json!({ "name": f.fleet, "device": f.device, "connected": f.connected })
    });
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "board": d.board,
        "started_at": unix_ms(d.started),
        "uptime_s": d.started.elapsed().map_or(0, |e| e.as_secs()),
        "memory": {
            "rss_bytes": proc_kib("/proc/self/status", "VmRSS"),
            "total_bytes": proc_kib("/proc/meminfo", "MemTotal"),
            "available_bytes": proc_kib("/proc/meminfo", "MemAvailable"),
        },
        "workers": d.workers,
        "functions": admin.deployed().functions().len(),
        "store": d.store,
        "open_connections": http.open_connections.load(Relaxed),
        "requests": http.requests.load(Relaxed),
        "fleet": fleet,
    });
    json_response(200, &body)
}

/// One function's history, or every function's: the last `?steps=N` steps (1 to 90, all by
/// default).
pub fn history(admin: &Admin, name: Option<&str>, request: &Request) -> Response {
    let steps = match query_value(request, "steps").map(str::parse::<u64>) {
        None => STEPS as u64,
        Some(Ok(n)) if (1..=STEPS as u64).contains(&n) => n,
        Some(_) => return error(400, format!("steps is 1 to {STEPS}")),
    };
    let now = unix_ms(SystemTime::now()) / 1000;
    let step = STEP.as_secs();
    let since = (now / step).saturating_sub(steps) * step;
    let samples = |f: &Function| json!(f.stats.history.samples(since));
    let mut body = json!({ "step_s": step, "steps": steps, "now": now });
    match name {
        Some(name) => {
            let Some(f) = admin.deployed().get(name) else {
                return error(404, format!("no function `{name}`"));
            };
            body["name"] = json!(name);
            body["samples"] = samples(&f);
        }
        None => {
            let functions = admin.deployed().functions();
            let all = functions.iter().map(|f| (f.name().to_string(), samples(f)));
            body["functions"] = Value::Object(all.collect::<Map<_, _>>());
        }
    }
    json_response(200, &body)
}
