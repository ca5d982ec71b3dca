//! The store suite on `EdgeStore`, plus persistence across reopening. The indexer tests with
//! the real embedder live in the `tests` crate.

mod support;

use retrieval::edge::EdgeStore;
use retrieval::store::{Filter, Mode, VectorStore};
use support::suite::{search, suite, unit};

const C: &str = "suite";

#[test]
fn edge_store_passes_the_suite_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = EdgeStore::open(dir.path()).expect("open");
        suite(&store, C);
    }
    // Reopen: the data is still there.
    let store = EdgeStore::open(dir.path()).expect("reopen");
    assert_eq!(store.count(C, &Filter::default()).expect("count"), 3);
    let hits = store
        .search(C, &search(unit(4), &[], Filter::default(), Mode::Dense))
        .expect("search after reopen");
    assert_eq!(hits[0].id, 4);
}

#[test]
fn a_second_opener_is_told_the_store_is_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EdgeStore::open(dir.path()).expect("open");
    store.ensure_collection(C, &[]).expect("collection");
    let err = EdgeStore::open(dir.path())
        .err()
        .expect("a second opener is refused while the first holds the store");
    assert!(matches!(err, retrieval::Error::InUse(_)), "{err:?}");
    assert!(err.to_string().contains("leye serve"), "{err}");
    drop(store);
    EdgeStore::open(dir.path()).expect("free again once the first is gone");
}
