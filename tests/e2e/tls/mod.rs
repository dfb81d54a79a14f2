//! The device's own endpoints over TLS: `--listen-tls` with the device's certificate or the
//! operator's (reloaded on SIGHUP), the CLI pinning a device's certificate (`--fingerprint`, or
//! trust on first use in `known_devices`, and a loud refusal when it changes), the admin API
//! refusing its token over plain HTTP from another address, and TLS handshake timeouts.

mod helpers;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use helpers::{
    Device, Run, certificate_file, cli, connect_from, exchange, fingerprint_of, get,
    served_certificate, tls_client,
};

use crate::support::{Reply, TOKEN, TempDir, WISP, eventually, module};

fn known_devices(config: &Path) -> PathBuf {
    config.join("wisp/known_devices")
}

fn deploy_date(config: &Path, url: &str, extra: &[&str]) -> Run {
    let date = module("date");
    let args = [
        &[
            "deploy",
            "date",
            date.to_str().unwrap(),
            "--route",
            "/api/date",
        ],
        &["--method", "GET", "--server", url][..],
        extra,
    ]
    .concat();
    cli(config, &args)
}

#[test]
fn deploy_over_https_with_a_pinned_fingerprint() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let data = dir.0.join("data");
    let device = Device::start(&data, &["--listen-tls", "127.0.0.1:0"]);
    // The device's own pair, made at first start, printed beside the token's location.
    let cert = data.join("tls/cert.pem");
    let created = format!("wisp: created a TLS certificate in {}", cert.display());
    assert!(device.banner.contains(&created), "{:?}", device.banner);
    let der = certificate_file(&cert);
    assert_eq!(device.fingerprint(), fingerprint_of(&der));
    let mode = std::fs::metadata(data.join("tls/key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let config = TempDir::new();
    let print = device.fingerprint();
    let out = deploy_date(&config.0, &device.url(), &["--fingerprint", &print]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.starts_with("created date version 1"), "{out:?}");
    // Lowercase and without colons, as people copy it.
    let bare = print.replace(':', "").to_lowercase();
    let out = cli(
        &config.0,
        &["ls", "--server", &device.url(), "--fingerprint", &bare],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("/api/date"), "{out:?}");
    // The pin was kept, so the next call needs no --fingerprint.
    let known = std::fs::read_to_string(known_devices(&config.0)).unwrap();
    assert_eq!(known, format!("{} {print}\n", device.https()));
    let out = cli(
        &config.0,
        &["invoke", "/api/date", "--server", &device.url()],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("\"now\""), "{out:?}");

    // A function and the health check over HTTPS, to a client that trusts that one certificate.
    let connect = || TcpStream::connect(device.https()).unwrap();
    let reply = exchange(connect(), Some(&der), &get("/api/date", false));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("\"now\""), "{reply:?}");
    assert_eq!(
        exchange(connect(), Some(&der), &get("/healthz", false)).body,
        "ok\n"
    );
    // A function sees that its request came over TLS.
    let hostile = std::fs::read(module("hostile")).unwrap();
    let deploy = format!(
        "PUT /_wisp/functions/hostile?route=/hostile/... HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        hostile.len()
    );
    let mut tls = tls_client(connect(), Some(der.clone()));
    tls.write_all(deploy.as_bytes()).unwrap();
    tls.write_all(&hostile).unwrap();
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).unwrap();
    assert_eq!(Reply::parse(&String::from_utf8_lossy(&raw)).status, 201);
    let echo = exchange(connect(), Some(&der), &get("/hostile/echo", false));
    assert!(echo.body.lines().any(|l| l == "HTTPS=on"), "{}", echo.body);
    let url = "X_FULL_URL=https://device/hostile/echo";
    assert!(echo.body.lines().any(|l| l == url), "{}", echo.body);
    let plain = exchange(
        TcpStream::connect(device.http).unwrap(),
        None,
        &get("/hostile/echo", false),
    );
    assert!(!plain.body.contains("HTTPS="), "{}", plain.body);
}

#[test]
fn trust_on_first_use_then_a_changed_certificate_is_refused() {
    let config = TempDir::new();
    let first = TempDir::new();
    let device = Device::start(&first.0, &["--listen-tls", "127.0.0.1:0"]);
    let (url, addr, old) = (device.url(), device.https(), device.fingerprint());
    // With nowhere to keep a pin, first use would be every use: refused.
    let out = std::process::Command::new(WISP)
        .args(["ls", "--server", &url])
        .env_remove("HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("WISP_FINGERPRINT")
        .env("WISP_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("cannot pin the certificate"), "{said}");

    let out = cli(&config.0, &["ls", "--server", &url]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stderr.contains("trusting its certificate on first use"),
        "{out:?}"
    );
    assert!(out.stderr.contains(&old), "{out:?}");
    let known = known_devices(&config.0);
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("{addr} {old}\n")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&known).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The second call trusts the pin, silently.
    let out = cli(&config.0, &["ls", "--server", &url]);
    assert_eq!((out.code, out.stderr.as_str()), (Some(0), ""), "{out:?}");

    // The same address, another device (a new data folder, so a new certificate).
    drop(device);
    let second = TempDir::new();
    let tls = format!("{addr}");
    let device = Device::start(&second.0, &["--listen-tls", &tls]);
    let new = device.fingerprint();
    assert_ne!(new, old);
    let out = deploy_date(&config.0, &url, &[]);
    assert_eq!(out.code, Some(2), "{out:?}");
    let warning = format!("wisp: WARNING: THE CERTIFICATE OF DEVICE {addr} HAS CHANGED!");
    assert!(out.stderr.starts_with(&warning), "{}", out.stderr);
    let line = format!("line 1 of {}", known.display());
    for part in [&old, &new, &line] {
        assert!(
            out.stderr.contains(part.as_str()),
            "{part} in {}",
            out.stderr
        );
    }
    // Nothing went through: no deploy, and the pin is unchanged.
    let der = certificate_file(&second.0.join("tls/cert.pem"));
    let connect = || TcpStream::connect(addr).unwrap();
    let listed = exchange(connect(), Some(&der), &get("/_wisp/functions", true));
    assert_eq!(listed.status, 200);
    assert!(!listed.body.contains("date"), "{}", listed.body);
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("{addr} {old}\n")
    );

    // The operator checks the new fingerprint and gives it: the pin is replaced.
    let out = deploy_date(&config.0, &url, &["--fingerprint", &new]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("replaced the pin on line 1"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("{addr} {new}\n")
    );
    let out = cli(&config.0, &["ls", "--server", &url]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

/// A self-signed pair made here, as an operator's would be made elsewhere.
fn operator_pair(name: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn sighup_reloads_the_operators_certificate() {
    let dir = TempDir::new();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    let install = |pair: &(String, String)| {
        std::fs::write(&cert, &pair.0).unwrap();
        std::fs::write(&key, &pair.1).unwrap();
    };
    let (a, b) = (operator_pair("a.example"), operator_pair("b.example"));
    install(&a);
    let data = dir.0.join("data");
    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let device = Device::start(
        &data,
        &[
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            cert_arg,
            "--tls-key",
            key_arg,
        ],
    );
    let a_der = certificate_file(&cert);
    assert!(
        device
            .banner
            .contains(&format!("wisp: TLS certificate in {cert_arg}"))
    );
    assert_eq!(device.fingerprint(), fingerprint_of(&a_der));
    assert!(
        !data.join("tls").exists(),
        "the operator's pair is used, none made"
    );
    assert_eq!(served_certificate(device.https()), a_der);
    let config = TempDir::new();
    let out = cli(&config.0, &["ls", "--server", &device.url()]);
    assert_eq!(out.code, Some(0), "{out:?}");

    // A new pair and SIGHUP: new connections get it.
    install(&b);
    let b_der = certificate_file(&cert);
    device.signal("-HUP");
    eventually(10, "the new certificate", || {
        (served_certificate(device.https()) == b_der).then_some(())
    });
    let said = format!("SHA256 fingerprint {}", fingerprint_of(&b_der));
    eventually(5, "the reload's line", || {
        device.stderr.lock().unwrap().contains(&said).then_some(())
    });
    // The CLI pinned the old one: refused, loudly.
    let out = cli(&config.0, &["ls", "--server", &device.url()]);
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("HAS CHANGED"), "{out:?}");

    // A pair that does not load is refused, said why, and the last good one keeps serving.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    device.signal("-HUP");
    eventually(10, "the refusal's line", || {
        device
            .stderr
            .lock()
            .unwrap()
            .contains("still serving")
            .then_some(())
    });
    assert!(device.stderr.lock().unwrap().contains(cert_arg));
    assert_eq!(served_certificate(device.https()), b_der);
    let reply = exchange(
        TcpStream::connect(device.https()).unwrap(),
        Some(&b_der),
        &get("/healthz", false),
    );
    assert_eq!(reply.status, 200);
}

#[test]
fn the_admin_token_over_plain_http_is_taken_only_from_this_machine() {
    let local: IpAddr = "127.0.0.1".parse().unwrap();
    let afar: IpAddr = "127.0.0.2".parse().unwrap();
    let dir = TempDir::new();
    let listen = ["--listen", "127.0.0.2:0", "--listen-tls", "127.0.0.2:0"];
    let device = Device::start(&dir.0.join("data"), &listen);
    let plain = |from| connect_from(from, device.http);

    // From 127.0.0.1: the token is taken over plain HTTP.
    let date = std::fs::read(module("date")).unwrap();
    let mut stream = plain(local);
    let head = format!(
        "PUT /_wisp/functions/date?route=/api/date HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        date.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&date).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert_eq!(Reply::parse(&raw).status, 201, "{raw}");
    assert_eq!(
        exchange(plain(local), None, &get("/_wisp/functions", true)).status,
        200
    );

    // From 127.0.0.2: refused with the right token, with a wrong one, with none; 403, saying
    // what to do, and nothing that invites the client to send its token.
    for token in [true, false] {
        let reply = exchange(plain(afar), None, &get("/_wisp/functions", token));
        assert_eq!(reply.status, 403, "{reply:?}");
        assert!(reply.body.contains("https://"), "{}", reply.body);
        assert!(reply.body.contains("--insecure-admin"), "{}", reply.body);
        assert_eq!(reply.header("www-authenticate"), None);
    }
    // The rest is served as before.
    assert_eq!(
        exchange(plain(afar), None, &get("/healthz", false)).body,
        "ok\n"
    );
    let reply = exchange(plain(afar), None, &get("/api/date", false));
    assert_eq!(reply.status, 200, "{reply:?}");
    // Over HTTPS from 127.0.0.2, the token is taken.
    let der = certificate_file(&dir.0.join("data/tls/cert.pem"));
    let tls = connect_from(afar, device.https());
    let reply = exchange(tls, Some(&der), &get("/_wisp/functions", true));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("date"), "{}", reply.body);
    drop(device);

    // --insecure-admin: taken from 127.0.0.2 over plain HTTP too.
    let device = Device::start(
        &dir.0.join("data"),
        &["--listen", "127.0.0.2:0", "--insecure-admin"],
    );
    let reply = exchange(
        connect_from(afar, device.http),
        None,
        &get("/_wisp/functions", true),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = exchange(
        connect_from(afar, device.http),
        None,
        &get("/_wisp/functions", false),
    );
    assert_eq!(reply.status, 401, "{reply:?}");
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_dropped() {
    let dir = TempDir::new();
    let args = [
        "--listen-tls",
        "127.0.0.1:0",
        "--head-timeout-ms",
        "600",
        "--max-connections",
        "4",
    ];
    let device = Device::start(&dir.0.join("data"), &args);
    let der = certificate_file(&dir.0.join("data/tls/cert.pem"));
    let opened = Instant::now();
    // One says nothing, one starts a ClientHello and stops.
    let mut silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(device.https()).unwrap())
        .collect();
    silent[1]
        .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        .unwrap();
    // Meanwhile others are served, over TLS and plain HTTP.
    for _ in 0..3 {
        let reply = exchange(
            TcpStream::connect(device.https()).unwrap(),
            Some(&der),
            &get("/healthz", false),
        );
        assert_eq!(reply.status, 200);
    }
    assert_eq!(
        exchange(
            TcpStream::connect(device.http).unwrap(),
            None,
            &get("/healthz", false)
        )
        .status,
        200
    );
    // The silent ones are closed once the handshake timeout has passed, and not before.
    for stream in &mut silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0; 64];
        // A closed connection reads as the end, or as a reset.
        let _ = stream.read(&mut buf);
        let waited = opened.elapsed();
        assert!(
            waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
            "closed after {waited:?}"
        );
    }
    // Their slots are free again: four at once are served.
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, der) = (device.https(), der.clone());
            std::thread::spawn(move || {
                exchange(
                    TcpStream::connect(addr).unwrap(),
                    Some(&der),
                    &get("/healthz", false),
                )
                .status
            })
        })
        .collect();
    for client in clients {
        assert_eq!(client.join().unwrap(), 200);
    }
}
