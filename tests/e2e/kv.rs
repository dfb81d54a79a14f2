//! The key-value store from real modules: each operation, isolation, caps, hostile pointers,
//! and acknowledged writes surviving `kill -9`.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::support::{Server, TempDir};

fn kv(server: &Server, function: &str, query: &str) -> String {
    let reply = server.get(&format!("/{function}/kv?{query}"));
    assert_eq!(reply.status, 200, "{query}: {reply:?}");
    reply.body.trim_end().to_string()
}

fn with_kv_functions(data: &TempDir) -> Server {
    let server = Server::serve(&data.0, &[]);
    for name in ["alpha", "beta"] {
        let config = format!("route=/{name}/...&store=default&shared_store=orders");
        assert_eq!(server.deploy(name, "hostile", &config).status, 201);
    }
    server
}

#[test]
fn every_operation_from_a_real_module() {
    let data = TempDir::new();
    let server = with_kv_functions(&data);
    let k = |q: &str| kv(&server, "alpha", q);
    assert_eq!(k("op=get&key=a"), "missing");
    assert_eq!(k("op=exists&key=a"), "false");
    assert!(k("op=set&key=a&value=hello%20there").starts_with("ok"));
    assert_eq!(k("op=get&key=a"), "ok hello there");
    assert_eq!(k("op=exists&key=a"), "true");
    assert_eq!(k("op=incr&key=n"), "count=1");
    assert_eq!(k("op=incr&key=n"), "count=2");
    assert_eq!(k("op=get&key=n"), "ok 2");
    // Swap only from the expected value; absence is a value too.
    assert_eq!(k("op=cas&key=a&expected=nope&value=x"), "false");
    assert_eq!(k("op=cas&key=a&expected=hello%20there&value=x"), "true");
    assert_eq!(k("op=get&key=a"), "ok x");
    assert_eq!(k("op=cas&key=fresh&value=new"), "true");
    assert_eq!(k("op=cas&key=fresh&value=again"), "false");
    assert_eq!(k("op=cas&key=fresh&expected=new"), "true");
    assert_eq!(k("op=get&key=fresh"), "missing");
    for i in 0..30 {
        assert!(k(&format!("op=set&key=item-{i:02}&value={i}")).starts_with("ok"));
    }
    let listed = k("op=list&prefix=item-");
    assert_eq!(listed.lines().count(), 30, "{listed}");
    assert_eq!(listed.lines().next(), Some("item-00"));
    assert!(k("op=delete&key=a").contains("true"));
    assert!(k("op=delete&key=a").contains("false"));
    // The operator sees the same keys through the admin API.
    let reply = server.admin("GET", "/_wisp/kv/default/alpha/n", b"");
    assert_eq!(reply.body, "2");
}

#[test]
fn functions_cannot_reach_each_others_keys() {
    let data = TempDir::new();
    let server = with_kv_functions(&data);
    assert!(kv(&server, "alpha", "op=set&key=secret&value=a-only").starts_with("ok"));
    assert_eq!(kv(&server, "beta", "op=get&key=secret"), "missing");
    // A key spelled like another namespace stays in the caller's.
    assert!(kv(&server, "beta", "op=set&key=%00alpha%00secret&value=forged").starts_with("ok"));
    assert_eq!(kv(&server, "alpha", "op=get&key=secret"), "ok a-only");
    assert_eq!(kv(&server, "beta", "op=list&prefix="), "\0alpha\0secret");
    // A shared store is one namespace for the functions that share it.
    assert!(kv(&server, "alpha", "op=set&store=orders&key=o1&value=paid").starts_with("ok"));
    assert_eq!(kv(&server, "beta", "op=get&store=orders&key=o1"), "ok paid");
    // A store that is not granted is not there.
    assert!(kv(&server, "alpha", "op=get&store=elsewhere&key=x").starts_with("error -2"));
    let reply = server.get("/alpha/kv-no-store");
    assert!(reply.body.contains("code=-2"), "{}", reply.body);
}

#[test]
fn sizes_are_capped_and_hostile_pointers_are_refused() {
    let data = TempDir::new();
    let server = with_kv_functions(&data);
    let big = server.get("/alpha/kv-big");
    assert!(
        big.body.contains("value=-4") && big.body.contains("key=-3"),
        "{}",
        big.body
    );
    let bad = server.get("/alpha/kv-bad-pointers");
    assert_eq!(bad.status, 200);
    let lines: Vec<&str> = bad.body.lines().collect();
    assert!(lines.len() >= 4, "{}", bad.body);
    for line in lines {
        assert!(
            line.ends_with("=-5"),
            "every bad pointer is BAD_POINTER: {line}"
        );
    }
    // The server and the function are fine after all that.
    assert!(kv(&server, "alpha", "op=set&key=after&value=fine").starts_with("ok"));
}

/// POSTs increments to the counter until the server goes; counts the acknowledged ones.
fn increment_until_killed(addr: std::net::SocketAddr, acked: Arc<AtomicU64>) {
    loop {
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return;
        };
        let request = "POST /api/counter/hits HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        let mut out = String::new();
        if stream.read_to_string(&mut out).is_err() || !out.starts_with("HTTP/1.1 200") {
            return;
        }
        acked.fetch_add(1, Ordering::SeqCst);
    }
}

fn count(server: &Server) -> u64 {
    let reply = server.get("/api/counter/hits");
    assert_eq!(reply.status, 200, "{reply:?}");
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    json["count"].as_u64().unwrap()
}

#[test]
fn kill_9_never_loses_an_acknowledged_increment() {
    let data = TempDir::new();
    let acked = Arc::new(AtomicU64::new(0));
    let clients = 8;
    for round in 0..6u64 {
        let server = Server::serve(&data.0, &[]);
        if round == 0 {
            let config = "route=/api/counter/...&method=GET&method=POST";
            assert_eq!(server.deploy("counter", "counter", config).status, 201);
        } else {
            let (found, acknowledged) = (count(&server), acked.load(Ordering::SeqCst));
            assert!(
                found >= acknowledged,
                "round {round}: {found} < {acknowledged} acknowledged"
            );
            // At most one unacknowledged increment per client per kill.
            assert!(
                found <= acknowledged + clients * round,
                "{found} vs {acknowledged}"
            );
        }
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                let (addr, acked) = (server.addr, acked.clone());
                std::thread::spawn(move || increment_until_killed(addr, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200 + 60 * round));
        server.kill9();
        workers.into_iter().for_each(|w| w.join().unwrap());
    }
    let server = Server::serve(&data.0, &[]);
    let (found, acknowledged) = (count(&server), acked.load(Ordering::SeqCst));
    eprintln!("{acknowledged} increments acknowledged across 6 kills; {found} stored");
    assert!(found >= acknowledged && acknowledged > 50);
}
