//! A fleet's shared state and events: three `wisp serve` processes on loopback with their
//! key-value store and queues in one real `redis-server` (`--redis`, `appendfsync always`).
//! Counters that every device increments, a topic message handled once across the fleet, a
//! device killed while it holds a message, Redis going away and coming back, timers once per
//! tick. `fleet_benchmark` (ignored) prints the figures.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::redis_server::Redis;
use crate::support::{Reply, Server, TempDir, eventually};

/// The visibility timeout the devices run with: a dead device's messages move after it.
const VISIBILITY: &str = "2";

/// A device of the fleet in `redis`, with its data in `data`.
fn device(redis: &Redis, data: &TempDir, name: &str) -> Server {
    Server::serve(
        &data.0,
        &[
            "--redis",
            &redis.url(),
            "--device",
            name,
            "--visibility-timeout",
            VISIBILITY,
        ],
    )
}

fn fleet(redis: &Redis, data: &[TempDir]) -> Vec<Server> {
    ["a", "b", "c"]
        .iter()
        .zip(data)
        .map(|(name, data)| device(redis, data, name))
        .collect()
}

fn json(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {reply:?}"))
}

/// Deploys `module` as `name` with its JSON configuration on `on`, and waits until every one
/// of `devices` serves it.
fn deploy_everywhere(on: &Server, devices: &[&Server], name: &str, module: &str, config: &str) {
    let reply = on.deploy_json(name, module, config);
    assert!(matches!(reply.status, 200 | 201), "{reply:?}");
    let version = json(&reply)["version"].as_u64().unwrap();
    for (i, device) in devices.iter().enumerate() {
        eventually(10, &format!("{name} v{version} on device {i}"), || {
            let reply = device.admin("GET", &format!("/_wisp/functions/{name}"), b"");
            (reply.status == 200 && json(&reply)["version"] == version).then_some(())
        });
    }
}

/// A metric's value summed over `devices` (0 where it is not shown).
fn fleet_metric(devices: &[&Server], series: &str) -> f64 {
    devices
        .iter()
        .map(|d| d.metric(series).unwrap_or(0.0))
        .sum()
}

/// The `default` store's counter `name` of `counter`, as `server` reads it.
fn count(server: &Server, name: &str) -> u64 {
    let reply = server.get(&format!("/api/counter/{name}"));
    assert_eq!(reply.status, 200, "{reply:?}");
    json(&reply)["count"].as_u64().unwrap()
}

/// The lines the `events` function deployed as `name` recorded that have `field=value`.
fn recorded_with(server: &Server, name: &str, field: &str) -> Vec<String> {
    server
        .recorded(name)
        .into_iter()
        .filter(|line| line.contains(field))
        .collect()
}

#[test]
fn every_device_counts_in_one_store_and_a_message_is_handled_once() {
    let redis = Redis::start();
    let data: Vec<TempDir> = (0..3).map(|_| TempDir::new()).collect();
    let devices = fleet(&redis, &data);
    let all: Vec<&Server> = devices.iter().collect();

    // Concurrent increments through all three sum exactly.
    let counter = r#"{"routes": ["/api/counter/..."], "methods": ["GET", "POST"]}"#;
    deploy_everywhere(&devices[0], &all, "counter", "counter", counter);
    let addrs: Vec<SocketAddr> = devices.iter().map(|d| d.addr).collect();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let addr = addrs[t % 3];
            std::thread::spawn(move || {
                let mut client = KeepAlive::new(addr);
                for _ in 0..100 {
                    assert_eq!(client.call("POST", "/api/counter/hits", b""), 200);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    for device in &devices {
        assert_eq!(count(device, "hits"), 600);
    }

    // checkout on any device publishes; payment runs once per order across the fleet.
    let shared = r#""shared_stores": ["orders"], "stores": []"#;
    let checkout = format!(
        r#"{{"routes": ["/api/checkout", "/api/orders/..."], "publish": ["orders"], {shared}}}"#
    );
    deploy_everywhere(&devices[1], &all, "checkout", "checkout", &checkout);
    let payment = format!(r#"{{"topics": ["orders"], {shared}}}"#);
    deploy_everywhere(&devices[2], &all, "payment", "payment", &payment);
    let orders: Vec<String> = (0..12)
        .map(|i| {
            let body = format!(r#"{{"item": "book {i}", "amount": {}}}"#, i + 1);
            let placed = devices[i % 3].request("POST", "/api/checkout", &[], body.as_bytes());
            assert_eq!(placed.status, 202, "{placed:?}");
            json(&placed)["id"].as_str().unwrap().to_string()
        })
        .collect();
    for (i, id) in orders.iter().enumerate() {
        // Read on another device than the one it was placed on.
        let reader = &devices[(i + 1) % 3];
        eventually(10, &format!("order {id} to be paid"), || {
            let order = json(&reader.get(&format!("/api/orders/{id}")));
            (order["status"] == "paid").then_some(())
        });
    }
    let delivered = "wisp_deliveries_total{function=\"payment\",source=\"topic:orders\"}";
    eventually(5, "every delivery to be counted", || {
        (fleet_metric(&all, delivered) == orders.len() as f64).then_some(())
    });
    // Once in total, not once per device: a moment later, still one delivery per order.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fleet_metric(&all, delivered), orders.len() as f64);
    let retried = "wisp_delivery_retries_total{function=\"payment\",source=\"topic:orders\"}";
    assert_eq!(fleet_metric(&all, retried), 0.0);
    // Every device sees the same queue, empty now.
    for device in &devices {
        let depth = "wisp_queue_depth{function=\"payment\",source=\"topic:orders\"}";
        eventually(5, "the depth every device shows", || {
            (device.metric(depth) == Some(0.0)).then_some(())
        });
    }
    // An asynchronous call accepted on one device has its result on every device.
    let accepted = devices[0].request(
        "POST",
        "/api/counter/async",
        &[("Prefer", "respond-async")],
        b"",
    );
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let location = accepted.header("location").unwrap().to_string();
    for device in &devices {
        let result = eventually(10, "the call's result", || {
            let reply = device.get(&location);
            (reply.status == 200).then_some(reply)
        });
        assert_eq!(json(&result)["count"], 1);
    }
}

#[test]
fn a_message_held_by_a_device_killed_with_sigkill_is_delivered_by_another() {
    let redis = Redis::start();
    let data: Vec<TempDir> = (0..3).map(|_| TempDir::new()).collect();
    let mut devices: Vec<Option<Server>> = fleet(&redis, &data).into_iter().map(Some).collect();
    let slow = r#"{"routes": ["/slow/..."], "topics": ["jobs"], "env": {"SLEEP_MS": "1500"}}"#;
    {
        let all: Vec<&Server> = devices.iter().flatten().collect();
        deploy_everywhere(all[0], &all, "slow", "events", slow);
        let sent = all[0].admin("POST", "/_wisp/topics/jobs", b"hello");
        assert_eq!(sent.status, 202, "{sent:?}");
    }
    // The device delivering it.
    let in_flight = "wisp_queue_in_flight{function=\"slow\",source=\"topic:jobs\"}";
    let holder = eventually(5, "a device to take the message", || {
        devices
            .iter()
            .position(|d| d.as_ref().unwrap().metric(in_flight) == Some(1.0))
    });
    devices[holder].take().unwrap().kill9();
    let killed = Instant::now();
    let others: Vec<&Server> = devices.iter().flatten().collect();
    // Another device takes it over once the holder has been silent for the visibility
    // timeout, and delivers it (after the subscriber's 1.5 s).
    let lines = eventually(20, "another device to deliver the message", || {
        let lines = recorded_with(others[0], "slow", "trigger=topic");
        (!lines.is_empty()).then_some(lines)
    });
    let took = killed.elapsed();
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("payload=hello"), "{lines:?}");
    // Its first delivery never finished: it is still attempt 1.
    assert!(lines[0].contains("attempt=1"), "{lines:?}");
    let delivered = "wisp_deliveries_total{function=\"slow\",source=\"topic:jobs\"}";
    eventually(5, "the delivery to be counted", || {
        (fleet_metric(&others, delivered) == 1.0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(recorded_with(others[1], "slow", "trigger=topic").len(), 1);
    assert_eq!(fleet_metric(&others, delivered), 1.0);
}

#[test]
fn without_redis_http_serves_and_the_fleet_recovers_without_losing_what_it_acknowledged() {
    let mut redis = Redis::start();
    let data: Vec<TempDir> = (0..3).map(|_| TempDir::new()).collect();
    let mut devices = fleet(&redis, &data);
    {
        let all: Vec<&Server> = devices.iter().collect();
        let counter = r#"{"routes": ["/api/counter/..."], "methods": ["GET", "POST"]}"#;
        deploy_everywhere(&devices[0], &all, "counter", "counter", counter);
        deploy_everywhere(
            &devices[0],
            &all,
            "date",
            "date",
            r#"{"routes": ["/api/date"]}"#,
        );
        let sub = r#"{"routes": ["/sub/..."], "topics": [{"topic": "jobs", "concurrency": 4}]}"#;
        deploy_everywhere(&devices[1], &all, "sub", "events", sub);
    }
    // Increments and published messages through every device, before, during and after the
    // outage; each counts what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let tried = Arc::new(AtomicU64::new(0));
    let addrs: Vec<SocketAddr> = devices.iter().map(|d| d.addr).collect();
    let incrementers: Vec<_> = (0..3)
        .map(|t| {
            let (stop, acked, tried, addr) = (stop.clone(), acked.clone(), tried.clone(), addrs[t]);
            std::thread::spawn(move || {
                let mut client = None;
                while !stop.load(Relaxed) {
                    // A device that went away (restarted on another port) answers nothing.
                    if client.is_none() {
                        client = KeepAlive::connect(addr);
                    }
                    let Some(c) = client.as_mut() else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    tried.fetch_add(1, Relaxed);
                    match c.call("POST", "/api/counter/hits", b"") {
                        200 => drop(acked.fetch_add(1, Relaxed)),
                        0 => client = None,
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();
    let mut published: Vec<String> = Vec::new();
    let publish = |devices: &[Server], i: usize, published: &mut Vec<String>| {
        let payload = format!("m{i}");
        let reply =
            devices[i % devices.len()].admin("POST", "/_wisp/topics/jobs", payload.as_bytes());
        match reply.status {
            202 => published.push(payload),
            503 => assert!(reply.header("retry-after").is_some(), "{reply:?}"),
            _ => panic!("{reply:?}"),
        }
    };
    for i in 0..20 {
        publish(&devices, i, &mut published);
        std::thread::sleep(Duration::from_millis(25));
    }

    redis.kill();
    let outage = Instant::now();
    // HTTP that needs no shared state serves on; the store says it is away.
    for device in &devices {
        assert_eq!(device.get("/api/date").status, 200);
        let reply = device.admin("GET", "/_wisp/kv/default/counter/hits", b"");
        assert_eq!(reply.status, 503, "{reply:?}");
        assert!(reply.header("retry-after").is_some());
        let reply = device.admin("POST", "/_wisp/topics/jobs", b"lost");
        assert_eq!(reply.status, 503, "{reply:?}");
    }
    let counted = devices[0].get("/api/counter/hits");
    assert_ne!(counted.status, 200, "{counted:?}");
    // A device starts while Redis is away, and serves from its own registry.
    let c = devices.pop().unwrap();
    assert!(c.terminate().success());
    devices.push(device(&redis, &data[2], "c"));
    assert_eq!(devices[2].get("/api/date").status, 200);
    for i in 20..30 {
        publish(&devices, i, &mut published);
    }
    while outage.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }

    redis.restart();
    // The restarted device has new addresses: its incrementer keeps the old one, and stops
    // getting answers, which is fine; the other two go on.
    for device in &devices {
        eventually(15, "the device to reach Redis again", || {
            (device.get("/api/counter/hits").status == 200).then_some(())
        });
    }
    for i in 30..50 {
        publish(&devices, i, &mut published);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Relaxed);
    incrementers.into_iter().for_each(|t| t.join().unwrap());

    // Every acknowledged increment is there; those not acknowledged may or may not be.
    let (acked, tried) = (acked.load(Relaxed), tried.load(Relaxed));
    let counted = count(&devices[0], "hits");
    assert!(
        acked > 0 && counted >= acked && counted <= tried,
        "{acked} {counted} {tried}"
    );
    // Every acknowledged message is delivered (at least once).
    assert!(published.len() >= 40, "{}", published.len());
    let delivered = eventually(30, "every acknowledged message to be delivered", || {
        let lines = recorded_with(&devices[1], "sub", "trigger=topic");
        let seen: HashMap<String, usize> = lines
            .iter()
            .filter_map(|l| l.split(" payload=").nth(1))
            .fold(HashMap::new(), |mut seen, p| {
                *seen.entry(p.to_string()).or_default() += 1;
                seen
            });
        published
            .iter()
            .all(|p| seen.contains_key(p))
            .then_some(seen)
    });
    assert!(!delivered.contains_key("lost"));
}

#[test]
fn a_fleet_timer_runs_once_per_tick_and_a_device_timer_on_every_device() {
    let redis = Redis::start();
    let data: Vec<TempDir> = (0..3).map(|_| TempDir::new()).collect();
    let devices = fleet(&redis, &data);
    let all: Vec<&Server> = devices.iter().collect();
    let once = r#"{"routes": ["/once/..."], "timers": ["every 1s"]}"#;
    deploy_everywhere(&devices[0], &all, "once", "events", once);
    let each =
        r#"{"routes": ["/each/..."], "timers": [{"schedule": "every 1s", "scope": "device"}]}"#;
    deploy_everywhere(&devices[0], &all, "each", "events", each);
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(5500));
    let ticks = |name: &str| -> BTreeMap<u64, usize> {
        let mut ticks = BTreeMap::new();
        for line in recorded_with(&devices[2], name, "trigger=timer") {
            let at = line.split(" at=").nth(1).unwrap().trim().parse().unwrap();
            *ticks.entry(at).or_default() += 1;
        }
        ticks
    };
    let once = ticks("once");
    assert!(once.len() >= 4, "{once:?} after {:?}", started.elapsed());
    assert!(once.values().all(|&n| n == 1), "{once:?}");
    // Every tick, none skipped, 1 s apart.
    let at: Vec<u64> = once.keys().copied().collect();
    assert!(at.windows(2).all(|w| w[1] - w[0] == 1000), "{at:?}");
    let each = ticks("each");
    // The first and last ticks may have reached some devices only.
    let inner: Vec<usize> = each.values().copied().skip(1).collect();
    assert!(inner.len() >= 3, "{each:?}");
    assert!(inner[..inner.len() - 1].iter().all(|&n| n == 3), "{each:?}");
}

/// One HTTP/1.1 connection kept open for many requests.
struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive::connect(addr).expect("connect")
    }

    fn connect(addr: SocketAddr) -> Option<KeepAlive> {
        let stream = TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        stream.set_nodelay(true).ok()?;
        Some(KeepAlive {
            reader: BufReader::new(stream),
        })
    }

    /// Sends a request and reads its response; its status, or 0 if the connection broke.
    fn call(&mut self, method: &str, path: &str, body: &[u8]) -> u16 {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.reader.get_mut();
        if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body).is_err() {
            return 0;
        }
        let mut line = String::new();
        if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
            return 0;
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        loop {
            line.clear();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return 0;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if self.reader.read_exact(&mut body).is_err() {
            return 0;
        }
        status
    }
}

/// Requests per second from `clients` keep-alive connections to `addr`, each making
/// `per_client` requests `method path` (the path names one of 8 counters).
fn rate(addr: SocketAddr, clients: usize, per_client: usize, method: &'static str) -> f64 {
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            std::thread::spawn(move || {
                let mut client = KeepAlive::new(addr);
                let path = format!("/api/counter/n{}", t % 8);
                for _ in 0..per_client {
                    assert_eq!(client.call(method, &path, b""), 200);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    (clients * per_client) as f64 / started.elapsed().as_secs_f64()
}

/// Key-value operations per second through the `counter` function, on a device alone and on
/// a device of a fleet, with 1 and 32 clients; topic messages per second through one
/// subscriber on three devices. The fleet's rows run with Redis's `appendfsync always` (every
/// write on disk before Redis answers: what the tests and the README ask for), then
/// `everysec`. `cargo test --release --test e2e fleet_benchmark -- --ignored --nocapture`.
/// Figures only, nothing asserted.
#[test]
#[ignore]
fn fleet_benchmark() {
    let redis = Redis::start();
    let data: Vec<TempDir> = (0..4).map(|_| TempDir::new()).collect();
    let alone = Server::serve(&data[3].0, &[]);
    let devices = fleet(&redis, &data[..3]);
    let all: Vec<&Server> = devices.iter().collect();
    let counter = r#"{"routes": ["/api/counter/..."], "methods": ["GET", "POST"]}"#;
    assert_eq!(alone.deploy_json("counter", "counter", counter).status, 201);
    deploy_everywhere(&devices[0], &all, "counter", "counter", counter);
    let per_client = |clients| if clients == 1 { 3000 } else { 300 };
    for clients in [1, 32] {
        for (method, what) in [("POST", "increments"), ("GET", "reads")] {
            let rate = rate(alone.addr, clients, per_client(clients), method);
            println!(
                "bench: counter {what:>10}, device alone, {clients:>2} clients: {rate:>8.0}/s"
            );
        }
    }
    for fsync in ["always", "everysec"] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendfsync")
            .arg(fsync)
            .query(&mut redis.connection())
            .unwrap();
        for clients in [1, 32] {
            for (method, what) in [("POST", "increments"), ("GET", "reads")] {
                let rate = rate(devices[0].addr, clients, per_client(clients), method);
                println!(
                    "bench: counter {what:>10}, fleet ({fsync:>8}), {clients:>2} clients: \
                     {rate:>8.0}/s"
                );
            }
        }
        // One subscriber on three devices; the messages are `quiet` (not recorded), so that
        // the figure is the queue's.
        for concurrency in [1, 8] {
            let name = format!("sub{concurrency}-{fsync}");
            let topic = format!("jobs{concurrency}-{fsync}");
            let config = format!(
                r#"{{"routes": ["/{name}/..."], "publish": ["{topic}"], "topics": [{{"topic": "{topic}", "concurrency": {concurrency}}}]}}"#
            );
            deploy_everywhere(&devices[0], &all, &name, "events", &config);
            let total = 2000;
            let delivered =
                format!("wisp_deliveries_total{{function=\"{name}\",source=\"topic:{topic}\"}}");
            let started = Instant::now();
            for batch in 0..total / 250 {
                let path = format!("/{name}/publish?topic={topic}&n=250&payload=quiet");
                let reply = devices[batch % 3].request("POST", &path, &[], b"");
                assert!(reply.body.starts_with("published=250 code=0"), "{reply:?}");
            }
            let published = started.elapsed();
            eventually(120, "every message to be delivered", || {
                (fleet_metric(&all, &delivered) as usize >= total).then_some(())
            });
            let took = started.elapsed();
            let shares: Vec<String> = devices
                .iter()
                .map(|d| format!("{}", d.metric(&delivered).unwrap_or(0.0)))
                .collect();
            println!(
                "bench: topic, concurrency {concurrency}, 3 devices ({fsync}): {total} messages \
                 published in {:.0} ms, delivered at {:.0}/s (per device: {})",
                published.as_secs_f64() * 1e3,
                total as f64 / took.as_secs_f64(),
                shares.join(", ")
            );
        }
    }
}
