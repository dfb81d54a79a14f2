//! The dashboard's other views in a real browser: topics with their dead letters (replayed
//! from the page), the key-value store, the device, and the fleet a device is in.

use serde_json::json;

use super::{artifacts, webdriver::Browser};
use crate::redis_server::Redis;
use crate::support::{Server, TOKEN, TempDir, eventually, function};

#[test]
fn topics_dead_letters_keys_and_the_device_in_a_real_browser() {
    // `hostile` fails every delivery (no misdeed named `jobs`): one attempt, then a dead letter.
    let functions = [
        function("counter", "counter", &["/api/counter/..."], ""),
        function(
            "hostile",
            "hostile",
            &[],
            r#""topics": [{"topic": "jobs", "max_attempts": 1}]"#,
        ),
    ];
    let server = Server::start(&functions, &[]);
    for _ in 0..3 {
        let reply = server.request("POST", "/api/counter/visits", &[], b"");
        assert_eq!(reply.status, 200);
    }
    assert_eq!(
        server.admin("POST", "/_wisp/topics/jobs", b"job 1").status,
        202
    );
    let dead = r#"wisp_dead_lettered_total{function="hostile",source="topic:jobs"}"#;
    eventually(20, "a dead letter", || {
        (server.metric(dead)? == 1.0).then_some(())
    });

    let browser = Browser::start(1280, 900);
    let shots = artifacts();
    let shot = |name: &str| browser.screenshot(&shots.join(format!("{name}.png")));
    browser.goto(&format!("http://{}/_wisp/ui/#token={TOKEN}", server.addr));
    browser.wait_text("#functions tbody", |t| t.contains("counter"));

    // The topic, its subscriber and the dead letter; replayed from the page, it is delivered
    // (and fails, and is buried) again.
    browser.click("nav button[data-view=topics]");
    let row = browser.wait_text("#topics tbody", |t| t.contains("jobs"));
    assert!(row.contains("hostile"), "{row}");
    shot("11-topics");
    browser.click("#topics tbody button");
    browser.wait_text("#confirm-text", |t| {
        t.contains("dead letter(s) of hostile on jobs")
    });
    browser.click("#confirm-ok");
    browser.wait_text("#message", |t| t.contains("queued again"));
    eventually(20, "the replayed letter buried again", || {
        (server.metric(dead)? == 2.0).then_some(())
    });

    // The counter's key in its namespace, and its value.
    browser.click("nav button[data-view=keys]");
    browser.wait_text("#keys-namespace", |t| t.contains("counter"));
    browser.script(
        "const s = document.querySelector('#keys-namespace'); s.value = 'counter'; \
         s.dispatchEvent(new Event('change'))",
        json!([]),
    );
    browser.click("#keys-form button[type=submit]");
    browser.wait_text("#keys", |t| t.contains("visits"));
    browser.click("#keys button");
    let value = browser.wait_text("#key-value", |t| t.contains("visits"));
    assert!(value.contains('3'), "{value}");
    shot("12-keys");

    // The device.
    browser.click("nav button[data-view=device]");
    let device = browser.wait_text("#device", |t| t.contains("Key-value store"));
    assert!(device.contains("embedded"), "{device}");
    assert!(device.contains("not in a fleet"), "{device}");
    shot("13-device");
}

#[test]
fn a_device_in_a_fleet_shows_the_fleet_and_its_devices() {
    let redis = Redis::start();
    let data = [TempDir::new(), TempDir::new()];
    let device = |data: &TempDir, name: &str| {
        Server::serve(&data.0, &["--redis", &redis.url(), "--device", name])
    };
    let (a, _b) = (device(&data[0], "a"), device(&data[1], "b"));
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{}/_wisp/ui/#token={TOKEN}", a.addr));
    browser.wait_text("#device-line", |t| t.contains("fleet default"));
    browser.click("nav button[data-view=device]");
    let device = browser.wait_text("#device", |t| t.contains("Fleet"));
    assert!(device.contains("default, as a (connected)"), "{device}");
    assert!(device.contains("redis"), "{device}");
    let devices = browser.wait_text("#devices tbody", |t| t.contains("b\t"));
    assert!(devices.contains("a (this one)"), "{devices}");
    assert!(devices.contains("up"), "{devices}");
    browser.screenshot(&artifacts().join("14-fleet.png"));
}
