//! What the store's and the queues' suites share: `on_both!`, which makes each suite function
//! a `#[test]` on the embedded store (`on_embedded::NAME`) and on Redis (`on_redis::NAME`,
//! against a `redis-server` of its own), and a fresh embedded store in a folder of its own.

use super::Embedded;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_embedded {
            use std::sync::Arc;
            $(
                #[test]
                fn $name() {
                    let (dir, db) = crate::store::test_support::temp_db();
                    super::$name(Arc::new(db));
                    std::fs::remove_dir_all(dir).unwrap();
                }
            )*
        }
        mod on_redis {
            use std::sync::Arc;

            use crate::store::redis::test_server::TestServer;
            $(
                #[test]
                fn $name() {
                    let server = TestServer::start();
                    super::$name(Arc::new(server.store("test")));
                }
            )*
        }
    };
}

/// An embedded store in a fresh folder of its own; the caller removes the folder.
pub(super) fn temp_db() -> (std::path::PathBuf, Embedded) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("wisp-store-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = Embedded::open(&dir.join("kv.redb"), 1 << 20).unwrap();
    (dir, db)
}
