//! An event as an invocation: the WAGI contract, so that any function that reads a request can
//! read an event. The payload is the body (stdin); the request is a `POST` with no path;
//! `WISP_TRIGGER` and its companions say what happened (DESIGN.md, "The function contract").

use crate::deployed::Function;
use crate::engine::Invocation;
use crate::store::queues::{Body, Entry, Source};

/// The invocation that delivers `entry` of a queue fed by `source`.
pub fn delivery(function: &Function, source: &Source, entry: &Entry) -> Invocation {
    let attempt = entry.attempts + 1;
    let mut env = base(function, entry.payload.len());
    match (&entry.body, source) {
        (Body::Call { args, env }, _) => {
            return Invocation {
                args: args.clone(),
                env: env.clone(),
                stdin: entry.payload.clone(),
                ..Invocation::default()
            };
        }
        (Body::Change { key, deleted }, Source::Kv { store, .. }) => {
            env.push("WISP_TRIGGER=kv".into());
            env.push(format!("WISP_KV_STORE={store}"));
            match std::str::from_utf8(key) {
                Ok(text) if !text.contains('\0') => env.push(format!("WISP_KV_KEY={text}")),
                _ => {
                    env.push(format!("WISP_KV_KEY={}", percent_encode(key)));
                    env.push("WISP_KV_KEY_ENCODING=percent".into());
                }
            }
            let op = if *deleted { "delete" } else { "set" };
            env.push(format!("WISP_KV_OP={op}"));
        }
        (_, source) => {
            env.push("WISP_TRIGGER=topic".into());
            if let Source::Topic(topic) = source {
                env.push(format!("WISP_TOPIC={topic}"));
            }
        }
    }
    env.push(format!("WISP_MESSAGE_ID={}", entry.id));
    env.push(format!("WISP_ATTEMPT={attempt}"));
    finish(function, env, entry.payload.clone())
}

/// The invocation of a timer's tick.
pub fn tick(function: &Function, schedule: &str, scheduled_at: u64) -> Invocation {
    let mut env = base(function, 0);
    env.push("WISP_TRIGGER=timer".into());
    env.push(format!("WISP_TIMER={schedule}"));
    env.push(format!("WISP_SCHEDULED_AT={scheduled_at}"));
    finish(function, env, Vec::new())
}

/// The CGI variables every event has: a `POST` of the payload to the function's root.
fn base(function: &Function, len: usize) -> Vec<String> {
    let mut env = Vec::with_capacity(16 + function.env.len());
    env.push(concat!("SERVER_SOFTWARE=wisp/", env!("CARGO_PKG_VERSION")).into());
    env.push("GATEWAY_INTERFACE=CGI/1.1".into());
    env.push("SERVER_PROTOCOL=HTTP/1.1".into());
    env.push("REQUEST_METHOD=POST".into());
    env.push("SCRIPT_NAME=".into());
    env.push("PATH_INFO=".into());
    env.push("QUERY_STRING=".into());
    env.push(format!("CONTENT_LENGTH={len}"));
    env.push(format!("WISP_FUNCTION={}", function.name()));
    env
}

/// The function's own variables last: the guest sees the first of a name, so they cannot
/// override the event's.
fn finish(function: &Function, mut env: Vec<String>, stdin: Vec<u8>) -> Invocation {
    env.extend(function.env.iter().map(|(k, v)| format!("{k}={v}")));
    Invocation {
        args: vec!["/".into()],
        env,
        stdin,
        ..Invocation::default()
    }
}

/// Every byte as `%XX`: for keys an environment variable cannot carry as they are.
fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}
