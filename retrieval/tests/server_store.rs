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
fn a_server_that_does_not_answer_is_a_clear_error() {
    // Bind and drop a listener to find a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut cfg = ServerConfig::new(format!("http://127.0.0.1:{port}"));
    cfg.timeout = std::time::Duration::from_secs(2);
    let err = ServerStore::connect(&cfg).expect_err("nothing listens there");
    let msg = err.to_string();
    assert!(
        msg.contains("does not answer") && msg.contains(&port.to_string()),
        "{msg}"
    );
}

/// Runs only where a real Qdrant is reachable: `QDRANT_URL=http://localhost:6334 cargo test`.
#[test]
fn server_store_passes_the_suite_on_a_real_qdrant() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!("QDRANT_URL not set: the real-Qdrant run of the store suite is not done here");
        return;
    };
    let mut cfg = ServerConfig::new(url);
    cfg.api_key = std::env::var("QDRANT_API_KEY").ok();
    let store = ServerStore::connect(&cfg).expect("connect to QDRANT_URL");
    let name = format!("leye_suite_{}", std::process::id());
    suite(&store, &name);
    store
        .drop_collection(&name)
        .expect("drop the test collection");
}
