use super::*;

fn temp() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wisp-registry-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config(name: &str, route: &str) -> FunctionConfig {
    serde_json::from_str(&format!(r#"{{"name":"{name}","routes":["{route}"]}}"#)).unwrap()
}

#[test]
fn versions_are_recorded_and_survive_reopening() {
    let dir = temp();
    {
        let registry = Registry::open(&dir).unwrap();
        let (record, created) = registry
            .add_version(config("a", "/a"), b"\0asm v1", hash(b"\0asm v1"))
            .unwrap();
        assert!(created);
        assert_eq!(record.active, 1);
        let (record, created) = registry
            .add_version(config("a", "/a2"), b"\0asm v2", hash(b"\0asm v2"))
            .unwrap();
        assert!(!created);
        assert_eq!(record.active, 2);
        assert_eq!(record.active().config.routes, vec!["/a2".to_string()]);
    }
    let registry = Registry::open(&dir).unwrap();
    let record = registry.get("a").unwrap().unwrap();
    assert_eq!(record.versions.len(), 2);
    assert_eq!(registry.module(&record.active().hash).unwrap(), b"\0asm v2");
    assert_eq!(registry.set_active("a", 1).unwrap().unwrap().active, 1);
    assert!(registry.set_active("a", 9).unwrap().is_none());
    assert!(registry.set_active("b", 1).unwrap().is_none());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn old_versions_and_their_files_go() {
    let dir = temp();
    let registry = Registry::open(&dir).unwrap();
    for i in 0..KEEP_VERSIONS + 5 {
        let wasm = format!("\0asm {i}");
        registry
            .add_version(config("a", "/a"), wasm.as_bytes(), hash(wasm.as_bytes()))
            .unwrap();
    }
    let record = registry.get("a").unwrap().unwrap();
    assert_eq!(record.versions.len(), KEEP_VERSIONS);
    assert_eq!(record.versions[0].version, 6);
    let files = std::fs::read_dir(dir.join("modules")).unwrap().count();
    assert_eq!(files, KEEP_VERSIONS);
    assert!(registry.remove("a").unwrap());
    assert!(!registry.remove("a").unwrap());
    assert_eq!(std::fs::read_dir(dir.join("modules")).unwrap().count(), 0);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_rolled_back_version_ages_out_like_any_other() {
    let dir = temp();
    let registry = Registry::open(&dir).unwrap();
    registry
        .add_version(config("a", "/a"), b"\0asm first", hash(b"\0asm first"))
        .unwrap();
    registry
        .add_version(config("a", "/a"), b"\0asm second", hash(b"\0asm second"))
        .unwrap();
    let record = registry.set_active("a", 1).unwrap().unwrap();
    assert_eq!(
        registry.module(&record.active().hash).unwrap(),
        b"\0asm first"
    );
    for i in 0..KEEP_VERSIONS {
        let wasm = format!("\0asm {i}");
        registry
            .add_version(config("a", "/a"), wasm.as_bytes(), hash(wasm.as_bytes()))
            .unwrap();
    }
    assert!(registry.set_active("a", 1).unwrap().is_none());
    assert_eq!(
        registry.get("a").unwrap().unwrap().active,
        KEEP_VERSIONS as u32 + 2
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn version(name: &str, number: u32, wasm: &[u8]) -> VersionRecord {
    VersionRecord {
        version: number,
        hash: hash(wasm),
        size: wasm.len() as u64,
        deployed_at: 1_800_000_000,
        config: config(name, "/a"),
    }
}

#[test]
fn numbered_versions_go_in_order_with_their_mark() {
    let dir = temp();
    let registry = Registry::open(&dir).unwrap();
    let mark = |value| {
        Some(Mark {
            key: "fleet",
            value,
        })
    };
    let (record, created) = registry
        .put_version(version("a", 3, b"\0asm 3"), Some(b"\0asm 3"), mark("1-0"))
        .unwrap();
    assert!(created);
    assert_eq!(record.active, 3);
    registry
        .put_version(version("a", 7, b"\0asm 7"), Some(b"\0asm 7"), mark("2-0"))
        .unwrap();
    // A version that comes again (a rollback, a replay) takes its number's place.
    let (record, created) = registry
        .put_version(version("a", 3, b"\0asm 3"), None, mark("3-0"))
        .unwrap();
    assert!(!created);
    assert_eq!(record.active, 3);
    let numbers: Vec<u32> = record.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [3, 7]);
    assert_eq!(registry.mark("fleet").unwrap().as_deref(), Some("3-0"));
    // A module that is not stored cannot be named without its bytes.
    assert!(
        registry
            .put_version(version("a", 8, b"\0asm 8"), None, mark("4-0"))
            .is_err()
    );
    assert_eq!(registry.mark("fleet").unwrap().as_deref(), Some("3-0"));
    assert!(registry.remove_marked("a", mark("5-0")).unwrap());
    assert!(!registry.remove_marked("a", mark("6-0")).unwrap());
    assert_eq!(registry.mark("fleet").unwrap().as_deref(), Some("6-0"));
    registry
        .set_mark(Mark {
            key: "fleet",
            value: "7-0",
        })
        .unwrap();
    drop(registry);
    let registry = Registry::open(&dir).unwrap();
    assert_eq!(registry.mark("fleet").unwrap().as_deref(), Some("7-0"));
    assert!(registry.mark("other").unwrap().is_none());
    std::fs::remove_dir_all(dir).unwrap();
}
