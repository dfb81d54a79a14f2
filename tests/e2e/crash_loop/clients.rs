//! The clients of one cycle, each on its own thread until the `kill -9`: incrementers,
//! writers, publishers and a deployer, each checking its answers as they come, and the names
//! and values they use (which the checks after the restart rebuild).

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use super::server::{Outcome, Wisp, call};
use super::{Cycle, FLIP, Loop, SINK, TOPIC};
use crate::support::{Reply, module};

/// Clients of each kind.
const INCREMENTERS: usize = 2;
const WRITERS: usize = 2;
const PUBLISHERS: usize = 2;

/// How long the clients run before the kill, at random in this range (ms).
const RUN_MS: (u64, u64) = (50, 500);

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
pub(super) struct Client {
    /// The requests acknowledged, by index, with what their answers said.
    pub(super) acked: Vec<(u64, String)>,
    /// The requests sent without an acknowledgement: in flight at the kill, or refused.
    pub(super) doubt: Vec<u64>,
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

pub(super) fn json(reply: &Reply) -> Option<Value> {
    serde_json::from_str(&reply.body).ok()
}

impl Loop {
    /// Deploys the three functions on the first start; `flip`'s version and tag.
    pub(super) fn set_up(&mut self, wisp: &Wisp) -> (u64, String) {
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
    pub(super) fn clients_until_killed(
        &mut self,
        cycle: usize,
        mut wisp: Wisp,
        flip: (u64, String),
    ) -> Cycle {
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
}

fn flip_config(tag: &str) -> String {
    format!(r#"{{"routes": ["/{FLIP}/..."], "env": {{"DEPLOY": "{tag}"}}}}"#)
}

pub(super) fn write_key(cycle: usize, k: usize, i: u64) -> String {
    format!("w-{cycle:05}-{k}-{i:06}")
}

pub(super) fn write_value(key: &str) -> String {
    format!("value of {key}")
}

pub(super) fn payload(cycle: usize, k: usize, i: u64) -> String {
    format!("p-{cycle}-{k}-{i}")
}

pub(super) fn deploy_tag(cycle: usize, i: u64) -> String {
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
