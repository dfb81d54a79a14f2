use super::*;

fn route(pattern: &str, methods: &[&str], target: u32) -> Route<u32> {
    Route {
        pattern: pattern.into(),
        methods: methods.iter().map(|m| m.to_string()).collect(),
        cors: None,
        target,
    }
}

fn table() -> RouteTable<u32> {
    RouteTable::new(vec![
        route("/api/date", &["GET"], 1),
        route("/api/...", &[], 2),
        route("/api/deep/...", &["POST"], 3),
        route("/...", &["GET"], 4),
    ])
    .unwrap()
}

fn target(t: &RouteTable<u32>, method: &str, path: &str) -> Option<(u32, String, String)> {
    match t.lookup(method, path) {
        Lookup::Found(m) => Some((
            m.route.target,
            path[..m.split].into(),
            path[m.split..].into(),
        )),
        _ => None,
    }
}

#[test]
fn exact_beats_prefix_and_longest_prefix_wins() {
    let t = table();
    assert_eq!(
        target(&t, "GET", "/api/date"),
        Some((1, "/api/date".into(), "".into()))
    );
    assert_eq!(
        target(&t, "PUT", "/api/other/x"),
        Some((2, "/api".into(), "/other/x".into()))
    );
    assert_eq!(
        target(&t, "POST", "/api"),
        Some((2, "/api".into(), "".into()))
    );
    assert_eq!(
        target(&t, "POST", "/api/deep/x"),
        Some((3, "/api/deep".into(), "/x".into()))
    );
    assert_eq!(
        target(&t, "GET", "/elsewhere"),
        Some((4, "".into(), "/elsewhere".into()))
    );
}

#[test]
fn prefix_matches_whole_segments_only() {
    let t = RouteTable::new(vec![route("/api/...", &[], 1)]).unwrap();
    assert!(target(&t, "GET", "/apix").is_none());
    assert!(target(&t, "GET", "/api/").is_some());
}

#[test]
fn method_lists_give_405_with_allow() {
    let t = table();
    match t.lookup("DELETE", "/api/date") {
        Lookup::MethodNotAllowed(_, allow) => assert_eq!(allow, "GET, HEAD"),
        other => panic!("expected 405, got {other:?}"),
    }
    assert!(target(&t, "HEAD", "/api/date").is_some());
}

#[test]
fn unknown_path_is_not_found() {
    let t = RouteTable::new(vec![route("/api/date", &["GET"], 1)]).unwrap();
    assert!(matches!(t.lookup("GET", "/api/dates"), Lookup::NotFound));
    assert!(matches!(t.lookup("GET", "/"), Lookup::NotFound));
}

#[test]
fn bad_and_duplicate_patterns_are_refused() {
    for bad in ["api", "/a b", "/a?x", "/a/.../b", "/a..."] {
        assert!(RouteTable::new(vec![route(bad, &[], 1)]).is_err(), "{bad}");
    }
    let dup = RouteTable::new(vec![route("/a", &[], 1), route("/a", &[], 2)]);
    assert_eq!(dup.unwrap_err(), RouteError::Duplicate("/a".into()));
}

#[test]
fn cors_origins_and_preflight() {
    let any = Cors {
        origins: vec!["*".into()],
        methods: vec![],
        headers: vec![],
        max_age: None,
    };
    assert_eq!(any.allow_origin(None), Some(("*".into(), false)));
    let one = Cors {
        origins: vec!["https://a.example".into()],
        methods: vec!["GET".into()],
        headers: vec![],
        max_age: Some(60),
    };
    assert_eq!(one.allow_origin(Some("https://b.example")), None);
    let h = one.preflight_headers(Some("https://a.example"), &[], Some("x-token"));
    assert!(h.contains(&(
        "Access-Control-Allow-Origin".into(),
        "https://a.example".into()
    )));
    assert!(h.contains(&("Vary".into(), "Origin".into())));
    assert!(h.contains(&("Access-Control-Allow-Methods".into(), "GET".into())));
    assert!(h.contains(&("Access-Control-Allow-Headers".into(), "x-token".into())));
    assert!(h.contains(&("Access-Control-Max-Age".into(), "60".into())));
}

#[test]
fn a_function_that_sets_its_own_allow_origin_keeps_it() {
    let any = Cors {
        origins: vec!["*".into()],
        methods: vec![],
        headers: vec![],
        max_age: None,
    };
    let mut headers = vec![(
        "access-control-allow-origin".to_string(),
        "https://a.example".to_string(),
    )];
    any.response_headers(Some("https://b.example"), &mut headers);
    assert_eq!(headers.len(), 1, "{headers:?}");
    let mut headers = Vec::new();
    any.response_headers(Some("https://b.example"), &mut headers);
    assert_eq!(
        headers,
        vec![("Access-Control-Allow-Origin".to_string(), "*".to_string())]
    );
}
