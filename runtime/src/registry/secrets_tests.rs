use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::secrets::{SecretStore, check_name, check_value};
use super::*;

fn temp() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wisp-secrets-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn pairs(secrets: &Secrets) -> Vec<(String, String)> {
    secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn names_follow_the_environment_rule_and_leave_the_hosts_alone() {
    for good in [
        "API_KEY",
        "_x",
        "a1",
        "Db_Password",
        &"K".repeat(MAX_SECRET_NAME),
    ] {
        assert!(check_name(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "1X",
        "A-B",
        "A B",
        "A=B",
        "é",
        "../x",
        &"K".repeat(MAX_SECRET_NAME + 1),
    ] {
        let e = check_name(bad).unwrap_err().to_string();
        assert!(e.contains("A-Z, a-z, 0-9 and _"), "{bad}: {e}");
    }
    for host in [
        "WISP_FUNCTION",
        "WISP_ANYTHING",
        "HTTP_PROXY",
        "PATH_INFO",
        "QUERY_STRING",
        "X_FULL_URL",
        "CONTENT_LENGTH",
        "REMOTE_USER",
        "HTTPS",
    ] {
        let e = check_name(host).unwrap_err().to_string();
        assert!(e.contains("is the host's"), "{host}: {e}");
    }
    // The environment is case-sensitive, and so is the rule.
    assert!(check_name("wisp_mine").is_ok());
}

#[test]
fn values_are_text_under_the_cap_and_never_repeated_in_errors() {
    assert_eq!(check_value(b"").unwrap(), "");
    assert_eq!(check_value("π=3".as_bytes()).unwrap(), "π=3");
    assert!(check_value(&vec![b'v'; MAX_SECRET_BYTES]).is_ok());
    let big = vec![b'v'; MAX_SECRET_BYTES + 1];
    let e = check_value(&big).unwrap_err().to_string();
    assert!(
        e.contains(&format!("{} bytes", MAX_SECRET_BYTES + 1)),
        "{e}"
    );
    assert!(!e.contains("vvv"), "{e}");
    for bad in [&b"hunter2\0"[..], b"hunter2\xff"] {
        let e = check_value(bad).unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[test]
fn debug_shows_names_only() {
    let dir = temp();
    let store = SecretStore::open(dir.join("secrets")).unwrap();
    store.set("f", "API_KEY", b"hunter2").unwrap();
    let shown = format!("{:?}", store.get("f"));
    assert_eq!(shown, r#"{"API_KEY"}"#);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn set_delete_and_reopen_keep_files_private() {
    let dir = temp();
    let folder = dir.join("secrets");
    // A folder someone else made, open to all, is closed at open.
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    {
        let store = SecretStore::open(folder.clone()).unwrap();
        assert_eq!(mode(&folder), 0o700);
        assert!(store.get("f").is_empty());
        store.set("f", "B", b"two").unwrap();
        store.set("f", "A", b"one").unwrap();
        store.set("f", "A", b"uno").unwrap();
        store.set("g", "C", b"three").unwrap();
        assert_eq!(mode(&folder.join("f.json")), 0o600);
        assert!(store.delete("g", "C").unwrap());
        assert!(!store.delete("g", "C").unwrap());
        assert!(!store.delete("nobody", "C").unwrap());
        // The last secret gone, the file goes too.
        assert!(!folder.join("g.json").exists());
        // A write a crash cut short.
        std::fs::write(folder.join(".f.tmp"), b"{\"A\": \"half").unwrap();
    }
    std::fs::set_permissions(
        folder.join("f.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let store = SecretStore::open(folder.clone()).unwrap();
    assert_eq!(
        pairs(&store.get("f")),
        [("A".into(), "uno".into()), ("B".into(), "two".into())]
    );
    assert!(!folder.join(".f.tmp").exists());
    assert_eq!(mode(&folder.join("f.json")), 0o600);
    store.retain(&HashSet::new()).unwrap();
    assert!(store.get("f").is_empty());
    assert!(!folder.join("f.json").exists());
    // A file no function's name could give is forgotten like any other.
    std::fs::write(folder.join("Not a Function.json"), b"{}").unwrap();
    let store = SecretStore::open(folder.clone()).unwrap();
    store.retain(&HashSet::new()).unwrap();
    assert!(!folder.join("Not a Function.json").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_function_has_a_bounded_number() {
    let dir = temp();
    let store = SecretStore::open(dir.join("secrets")).unwrap();
    for i in 0..MAX_SECRETS {
        store.set("f", &format!("S{i}"), b"v").unwrap();
    }
    let e = store.set("f", "ONE_MORE", b"v").unwrap_err();
    assert!(matches!(e, SecretError::TooMany(_)), "{e}");
    // Changing one it has is no new one.
    store.set("f", "S0", b"w").unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_corrupt_file_is_named_without_its_content() {
    let dir = temp();
    let folder = dir.join("secrets");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("f.json"), b"\"hunter2\"").unwrap();
    let e = SecretStore::open(folder.clone()).err().unwrap().to_string();
    assert!(e.contains("f.json"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    std::fs::write(folder.join("f.json"), br#"{"WISP_FUNCTION": "hunter2"}"#).unwrap();
    let e = SecretStore::open(folder).err().unwrap().to_string();
    assert!(e.contains("the host's") && !e.contains("hunter2"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

fn config(name: &str) -> crate::config::FunctionConfig {
    serde_json::from_str(&format!(r#"{{"name":"{name}","routes":["/{name}"]}}"#)).unwrap()
}

#[test]
fn the_registry_keeps_secrets_of_its_functions_only() {
    let dir = temp();
    {
        let registry = Registry::open(&dir).unwrap();
        let e = registry.set_secret("a", "K", b"v").unwrap_err();
        assert!(matches!(e, SecretError::NoFunction(_)), "{e}");
        registry
            .add_version(config("a"), b"\0asm a", hash(b"\0asm a"))
            .unwrap();
        registry
            .add_version(config("b"), b"\0asm b", hash(b"\0asm b"))
            .unwrap();
        registry.set_secret("a", "K", b"for a").unwrap();
        registry.set_secret("b", "K", b"for b").unwrap();
        let e = registry.delete_secret("a", "NOPE").unwrap_err();
        assert!(matches!(e, SecretError::NoSecret { .. }), "{e}");
        // Versions never hold them.
        let record = serde_json::to_string(&registry.get("a").unwrap()).unwrap();
        assert!(!record.contains("for a"), "{record}");
        assert!(registry.remove("a").unwrap());
        assert!(registry.secrets("a").is_empty());
        // As a crash between b's delete and its secrets' would leave them.
        std::fs::copy(dir.join("secrets/b.json"), dir.join("b.json")).unwrap();
        assert!(registry.remove("b").unwrap());
        std::fs::rename(dir.join("b.json"), dir.join("secrets/b.json")).unwrap();
    }
    let registry = Registry::open(&dir).unwrap();
    assert!(registry.secrets("b").is_empty());
    assert!(!dir.join("secrets/b.json").exists());
    // A new function of the same name starts with none.
    registry
        .add_version(config("b"), b"\0asm b", hash(b"\0asm b"))
        .unwrap();
    assert!(registry.secrets("b").is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}
