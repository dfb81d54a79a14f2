//! The dashboard: one static page at `/_wisp/ui/`, built into the binary. It holds no data and
//! needs no token to load; the user gives the admin token to the page (a form, or
//! `#token=...` in the URL, which browsers never send), and the page's script calls the admin
//! API with it like any other client.

use crate::http::{Request, Response};

const PREFIX: &str = "/_wisp/ui";

const JS: &str = "text/javascript; charset=utf-8";

/// Path, media type and text of each file of the page: the script is ES modules, one per
/// part of the page.
const FILES: [(&str, &str, &str); 7] = [
    ("/", "text/html; charset=utf-8", include_str!("index.html")),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("style.css"),
    ),
    ("/app.js", JS, include_str!("app.js")),
    ("/api.js", JS, include_str!("api.js")),
    ("/dom.js", JS, include_str!("dom.js")),
    ("/functions.js", JS, include_str!("functions.js")),
    ("/views.js", JS, include_str!("views.js")),
];

/// Only the page's own files, and calls back to this device: no inline script, no other site,
/// no framing (the page can delete functions).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self' data:; form-action 'none'; \
                      frame-ancestors 'none'; base-uri 'none'";

pub fn is_ui_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/_wisp/ui/")
}

/// Answers a request for a file of the page.
pub fn serve(request: &Request) -> Response {
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return Response::text(405, "the dashboard's files are read with GET\n")
            .header("Allow", "GET, HEAD");
    }
    let Some(file) = request.path.strip_prefix(PREFIX) else {
        return Response::text(404, "no such file\n");
    };
    if file.is_empty() {
        return Response::new(308).header("Location", "/_wisp/ui/");
    }
    let file = if file == "/index.html" { "/" } else { file };
    match FILES.iter().find(|(path, _, _)| *path == file) {
        Some((_, media_type, text)) => Response::new(200)
            .header("Content-Type", *media_type)
            .header("Cache-Control", "no-cache")
            .header("Content-Security-Policy", POLICY)
            .header("X-Content-Type-Options", "nosniff")
            .header("Referrer-Policy", "no-referrer")
            .body(text.as_bytes().to_vec()),
        None => Response::text(404, format!("no file {} in the dashboard\n", request.path)),
    }
}

/// The size of the page, all files, in bytes.
pub fn size() -> usize {
    FILES.iter().map(|(_, _, text)| text.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_stays_small_and_loads_nothing_from_elsewhere() {
        assert!(size() < 100 * 1024, "the dashboard is {} bytes", size());
        for (path, _, text) in FILES {
            // A namespace, not an address: nothing is fetched from it.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://"), "{path} names another site");
            assert!(!text.contains("https://"), "{path} names another site");
        }
    }
}
