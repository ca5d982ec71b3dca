//! The store suite on `ServerStore`: through the test gRPC server (qdrant-client's generated
//! server traits backed by `EdgeStore`), and against a real Qdrant when `QDRANT_URL` is set.

mod support;

use std::sync::Arc;

use retrieval::edge::EdgeStore;
use retrieval::server::{ServerConfig, ServerStore};
use retrieval::store::{Filter, Mode, VectorStore};
use support::suite::{search, suite, unit};

#[test]
fn server_store_passes_the_suite_through_the_test_grpc_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = Arc::new(EdgeStore::open(dir.path()).expect("open"));
    let server = support::qdrant_grpc::start(backing.clone());

    let store = ServerStore::connect(&ServerConfig::new(&server.url)).expect("connect");
    suite(&store, "suite");

    // The writes went over gRPC into the backing store, not into some client-side cache.
    assert_eq!(
        backing.count("suite", &Filter::default()).expect("count"),
        3
    );
    // A second client sees the same data.
    let again = ServerStore::connect(&ServerConfig::new(&server.url)).expect("reconnect");
    let hits = again
        .search(
            "suite",
            &search(unit(4), &[], Filter::default(), Mode::Dense),
        )
        .expect("search");
    assert_eq!(hits[0].id, 4);
    assert_eq!(hits[0].payload["city"], "烟台市");
}

#[test]
fn a_store_dropped_inside_async_code_does_not_panic() {
    // `leye ask`, server shutdown and error paths drop the knowledge base (and with it this
    // store's own runtime) on a runtime worker, where tokio forbids blocking.
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = Arc::new(EdgeStore::open(dir.path()).expect("open"));
    let server = support::qdrant_grpc::start(backing.clone());
    let store = ServerStore::connect(&ServerConfig::new(&server.url)).expect("connect");
    suite(&store, "dropped");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dropped =
        rt.block_on(async move { tokio::spawn(async move { drop(store) }).await.is_ok() });
    assert!(dropped, "dropping the store on a runtime worker panicked");
    assert_eq!(
        backing.count("dropped", &Filter::default()).expect("count"),
        3
    );
}

#[test]
fn a_server_that_does_not_answer_is_a_clear_error() {
    // Bind and drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut cfg = ServerConfig::new(format!("http://127.0.0.1:{port}"));
    cfg.timeout = std::time::Duration::from_secs(2);
    let err = ServerStore::connect(&cfg).expect_err("nothing listens there");
    // The whole chain: the store's error says what failed, its source how.
    let mut msg = err.to_string();
    let mut cur = std::error::Error::source(&err);
    while let Some(c) = cur {
        msg.push_str(&format!(": {c}"));
        cur = c.source();
    }
    assert!(
        msg.contains("does not answer") && msg.contains(&port.to_string()),
        "{msg}"
    );
}

/// Runs only where a real Qdrant is reachable (none is installable on our CI machines):
/// `QDRANT_URL=http://localhost:6334 cargo test -- --ignored`.
#[test]
#[ignore = "needs QDRANT_URL (a real Qdrant server)"]
fn server_store_passes_the_suite_on_a_real_qdrant() {
    let url = std::env::var("QDRANT_URL").expect("QDRANT_URL: the real Qdrant to test against");
    let mut cfg = ServerConfig::new(url);
    cfg.api_key = std::env::var("QDRANT_API_KEY").ok();
    let store = ServerStore::connect(&cfg).expect("connect to QDRANT_URL");
    let name = format!("leye_suite_{}", std::process::id());
    suite(&store, &name);
    store
        .drop_collection(&name)
        .expect("drop the test collection");
}
