//! The dashboard: its page and endpoints over sockets, and the whole page in headless Chromium
//! (WebDriver), as a user would use it: open it with the token, deploy, watch the log, roll
//! back, delete, on a phone too. A screenshot of each step goes to
//! `target/e2e-artifacts/dashboard/`.

mod api;
mod views;
mod webdriver;

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::support::{Server, TOKEN, eventually, examples, module};
use webdriver::Browser;

/// Where the screenshots go: an artifact of the test run, not committed.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-artifacts/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the page lays out within the viewport's width (a table may scroll in its own box).
fn fits_width(browser: &Browser) -> bool {
    let script = "return document.documentElement.scrollWidth <= window.innerWidth";
    browser.script(script, json!([])) == json!(true)
}

#[test]
fn a_user_deploys_watches_rolls_back_and_deletes_in_a_real_browser() {
    let server = Server::start(&examples(), &[]);
    let browser = Browser::start(1280, 900);
    let shots = artifacts();
    let shot = |name: &str| browser.screenshot(&shots.join(format!("{name}.png")));
    let page = format!("http://{}/_wisp/ui/", server.addr);

    // Opened with the token in the fragment: the example functions, and the token gone from
    // the address bar.
    browser.goto(&format!("{page}#token={TOKEN}"));
    browser.wait_text("#functions tbody", |t| {
        ["date", "weather", "hello-c", "hostile"]
            .iter()
            .all(|name| t.contains(name))
    });
    assert!(!browser.url().contains(TOKEN), "{}", browser.url());
    shot("01-functions");

    // A file that is no module is refused with the reason; `date` keeps serving.
    browser.click("nav button[data-view=deploy]");
    let not_a_module = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/wisp.json")
        .canonicalize()
        .unwrap();
    browser.type_into("#deploy-file", not_a_module.to_str().unwrap());
    browser.type_into("#deploy-name", "date");
    browser.click("#deploy-form button[type=submit]");
    browser.click("#confirm-ok");
    let refused = browser.wait_text("#message", |t| t.starts_with("Error 400"));
    assert!(refused.contains("module"), "{refused}");
    assert_eq!(server.get("/api/date").status, 200);
    shot("02-bad-module-refused");

    // Deploy `hostile` as `probe` on /probe/... through the form, confirmed in the dialog.
    browser.type_into("#deploy-file", module("hostile").to_str().unwrap());
    browser.type_into("#deploy-name", "probe");
    browser.type_into("#deploy-route", "/probe/...");
    browser.click("#deploy-form button[type=submit]");
    browser.wait_text("#confirm-text", |t| t.contains("as probe on /probe/..."));
    shot("03-confirm-deploy");
    browser.click("#confirm-ok");
    browser.wait_text("#message", |t| t.contains("Deployed probe version 1"));
    let echo = server.get("/probe/echo");
    assert_eq!(echo.status, 200);
    assert!(echo.body.contains("method=GET"), "{}", echo.body);
    browser.wait_text("#functions tbody", |t| t.contains("probe"));
    shot("04-deployed");

    // A module dropped on the page (a drop event carrying the file, as a drag from the
    // desktop makes) deploys the same way.
    let wasm = std::fs::read(module("date")).unwrap();
    let drop = "const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0)); \
                const files = new DataTransfer(); \
                files.items.add(new File([bytes], 'date.wasm')); \
                document.querySelector('#drop').dispatchEvent( \
                    new DragEvent('drop', { dataTransfer: files, bubbles: true }))";
    browser.click("nav button[data-view=deploy]");
    browser.script(drop, json!([STANDARD.encode(&wasm)]));
    browser.wait_text("#drop-text", |t| t.starts_with("date.wasm"));
    browser.type_into("#deploy-name", "dropped");
    browser.type_into("#deploy-route", "/dropped");
    browser.click("#deploy-form button[type=submit]");
    browser.wait_text("#confirm-text", |t| t.contains("as dropped on /dropped"));
    browser.click("#confirm-ok");
    browser.wait_text("#message", |t| t.contains("Deployed dropped version 1"));
    let dropped = server.get("/dropped");
    assert_eq!(dropped.status, 200);
    assert!(dropped.body.contains("\"now\""), "{}", dropped.body);
    browser.click("#functions tr[data-name=probe]");

    // Following its log, a failing call shows up as a line.
    browser.wait_text("#detail-name", |t| t == "probe");
    browser.click("#follow");
    assert_eq!(server.get("/probe/trap").status, 500);
    let log = browser.wait_text("#log", |t| t.contains("wisp: stopped"));
    assert!(log.contains("unreachable"), "{log}");
    browser.script("document.querySelector('#log').scrollIntoView()", json!([]));
    shot("05-log-followed");

    // A second version from the API; the page lists both, and rolls back to the first.
    assert_eq!(
        server.deploy("probe", "date", "route=/probe/...").status,
        200
    );
    assert!(!server.get("/probe/echo").body.contains("method=GET"));
    browser.wait_text("#versions tbody", |t| t.contains("v2") && t.contains("v1"));
    browser.click("#versions tr[data-version='1'] button");
    browser.wait_text("#confirm-text", |t| t.contains("back to version 1"));
    browser.click("#confirm-ok");
    browser.wait_text("#message", |t| t.contains("probe serves version 1 again"));
    assert!(server.get("/probe/echo").body.contains("method=GET"));
    let versions = server.admin("GET", "/_wisp/functions/probe/versions", b"");
    assert!(versions.body.contains("\"active\": 1"), "{}", versions.body);
    shot("06-rolled-back");

    // The charts count the calls once their 10-second step closes.
    let requests = browser.wait_text("#max-requests", |t| t.starts_with("(max"));
    assert!(requests.contains("max"), "{requests}");
    let errors = browser.wait_text("#max-errors", |t| t.starts_with("(max"));
    assert!(errors.contains("max 1"), "{errors}");
    shot("07-charts");

    // Deleted from the page, after a confirmation.
    browser.click("#delete");
    browser.wait_text("#confirm-text", |t| t.contains("Delete probe?"));
    browser.click("#confirm-ok");
    browser.wait_text("#message", |t| t.contains("probe was deleted"));
    assert_eq!(server.get("/probe/echo").status, 404);

    // At phone width: the page fits; the token is still in this tab.
    browser.resize(390, 844);
    browser.goto(&page);
    browser.wait_text("#functions tbody", |t| t.contains("hello-c"));
    eventually(10, "the page to fit a phone's width", || {
        fits_width(&browser).then_some(())
    });
    shot("08-phone");
    browser.click("#functions tr[data-name=date]");
    browser.wait_text("#versions tbody", |t| t.contains("v1"));
    browser.script(
        "document.querySelector('#detail').scrollIntoView()",
        json!([]),
    );
    assert!(fits_width(&browser));
    shot("08-phone-function");
    browser.click("nav button[data-view=device]");
    browser.wait_text("#device", |t| t.contains("Key-value store"));
    assert!(fits_width(&browser));
    shot("09-phone-device");

    // A wrong token: a clear message and the form, not a blank page.
    browser.goto("about:blank");
    browser.goto(&format!("{page}#token=not-the-token"));
    let message = browser.wait_text("#message", |t| !t.is_empty());
    assert!(message.contains("refused this admin token"), "{message}");
    let form = browser.script("return !document.querySelector('#login').hidden", json!([]));
    assert_eq!(form, json!(true));
    shot("10-wrong-token");
}
