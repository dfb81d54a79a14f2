//! Key-value watchers, and what survives `kill -9`: a message published and not yet handled,
//! a watched write whose watcher has not run, an asynchronous call accepted and not yet run.

use serde_json::Value;

use crate::support::{Server, TempDir, eventually};

fn deploy(server: &Server, name: &str, extra: &str) {
    let config = format!(r#"{{"routes": ["/{name}/..."], {extra}}}"#);
    let reply = server.deploy_json(name, "events", &config);
    assert_eq!(reply.status, 201, "{reply:?}");
}

#[test]
fn writes_under_a_watched_prefix_invoke_the_watcher_but_not_its_own() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let shared = r#""shared_stores": ["board"]"#;
    deploy(
        &server,
        "watcher",
        &format!(r#"{shared}, "watch": [{{"store": "board", "prefix": "pin/"}}]"#),
    );
    deploy(&server, "writer", shared);
    let set = |who: &str, key: &str, value: &str| {
        let path = format!("/{who}/set?store=board&key={key}&value={value}");
        let reply = server.request("POST", &path, &[], b"");
        assert_eq!(reply.body, "code=0", "{reply:?}");
    };
    set("writer", "pin/1", "up");
    set("writer", "other/1", "ignored");
    set("watcher", "pin/2", "mine");
    let deleted = server.request("POST", "/writer/delete?store=board&key=pin/1", &[], b"");
    assert_eq!(deleted.body, "code=0");
    // The operator's writes count too.
    assert_eq!(
        server
            .admin("PUT", "/_wisp/kv/board/_shared/pin%2F3", b"op")
            .status,
        204
    );
    let lines = eventually(5, "three changes", || {
        let lines = server.recorded("watcher");
        (lines.len() >= 3).then_some(lines)
    });
    assert_eq!(
        lines,
        [
            "trigger=kv store=board key=pin/1 op=set value=up",
            "trigger=kv store=board key=pin/1 op=delete value=",
            "trigger=kv store=board key=pin/3 op=set value=op",
        ]
    );
    let logs = server
        .admin("GET", "/_wisp/functions/watcher/logs", b"")
        .body;
    assert!(
        logs.contains("wisp: delivered kv:board:pin/ message"),
        "{logs}"
    );
    // A watch needs a store the function is granted.
    let refused = server.deploy_json(
        "nosy",
        "events",
        r#"{"routes": ["/nosy"], "watch": [{"store": "board", "prefix": ""}]}"#,
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.body.contains("which it is not granted"),
        "{refused:?}"
    );
}

#[test]
fn a_full_watcher_queue_refuses_the_write() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &["--max-queue-depth", "3"]);
    let shared = r#""shared_stores": ["s"]"#;
    deploy(
        &server,
        "watcher",
        &format!(r#"{shared}, "env": {{"SLEEP_MS": "60000"}}, "watch": [{{"store": "s"}}]"#),
    );
    deploy(&server, "writer", shared);
    let codes: Vec<String> = (0..5)
        .map(|i| {
            let path = format!("/writer/set?store=s&key=k{i}&value=v");
            server.request("POST", &path, &[], b"").body
        })
        .collect();
    assert_eq!(codes, ["code=0", "code=0", "code=0", "code=-9", "code=-9"]);
    // The refused write did not happen.
    assert_eq!(server.kv_get("s", "_shared", "k3"), None);
    let full = server.admin("PUT", "/_wisp/kv/s/_shared/k9", b"v");
    assert_eq!((full.status, full.header("retry-after")), (503, Some("1")));
}

/// Restarts a killed server on the same data folder.
fn restart(server: Server, data: &TempDir) -> Server {
    server.kill9();
    Server::serve(&data.0, &[])
}

#[test]
fn a_message_published_before_kill_9_is_delivered_after_restart() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    deploy(&server, "sub", r#""topics": ["t"]"#);
    // Acknowledged when on disk; the subscriber sleeps through its first delivery.
    let sent = server.admin("POST", "/_wisp/topics/t", b"sleep=1500 payload-1");
    assert_eq!(sent.status, 202, "{sent:?}");
    let id: Value = serde_json::from_str(&sent.body).unwrap();
    let id = id["id"].as_str().unwrap().to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.recorded("sub"), Vec::<String>::new());
    let server = restart(server, &data);
    let lines = eventually(10, "the redelivery", || {
        let lines = server.recorded("sub");
        (!lines.is_empty()).then_some(lines)
    });
    assert!(
        lines[0].contains(&format!("id={id} attempt=1")),
        "{lines:?}"
    );
    let ok = eventually(5, "its success", || {
        server.kv_get("default", "sub", &format!("ok%2F{id}"))
    });
    assert_eq!(ok, "1");
}

#[test]
fn a_watched_write_before_kill_9_reaches_its_watcher_after_restart() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    let config = r#""shared_stores": ["s"], "env": {"SLEEP_MS": "1500"}, "watch": [{"store": "s", "prefix": "w/"}]"#;
    deploy(&server, "watcher", config);
    assert_eq!(
        server
            .admin("PUT", "/_wisp/kv/s/_shared/w%2F1", b"v1")
            .status,
        204
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(server.recorded("watcher"), Vec::<String>::new());
    let server = restart(server, &data);
    let ok = eventually(10, "the watcher's run", || {
        server.kv_get("default", "watcher", "ok%2Fw%2F1")
    });
    assert_eq!(ok, "1");
    assert_eq!(
        server.recorded("watcher"),
        ["trigger=kv store=s key=w/1 op=set value=v1"]
    );
}

#[test]
fn an_async_call_accepted_before_kill_9_runs_after_restart() {
    let data = TempDir::new();
    let server = Server::serve(&data.0, &[]);
    // Fuel for seconds of spinning: the deadline, not the fuel, bounds it.
    let reply = server.deploy("slow", "hostile", "route=/slow/...&fuel=1000000000000");
    assert_eq!(reply.status, 201, "{reply:?}");
    // Busy on its first call: the second waits in the queue when the server dies.
    let prefer = [("Prefer", "respond-async")];
    let first = server.request("GET", "/slow/spin?ms=1500", &prefer, b"");
    let second = server.request("POST", "/slow/echo", &prefer, b"kept");
    assert_eq!((first.status, second.status), (202, 202));
    let location = second.header("location").unwrap().to_string();
    let server = restart(server, &data);
    let done = eventually(10, "the call's result", || {
        let reply = server.get(&location);
        (reply.status == 200).then_some(reply)
    });
    assert_eq!(done.header("wisp-async-state"), Some("done"));
    assert!(done.body.contains("method=POST"), "{}", done.body);
    assert!(done.body.ends_with("body:\nkept"), "{}", done.body);
}
