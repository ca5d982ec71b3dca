//! The behaviour every `VectorStore` must have, run against each implementation: upsert,
//! filters, fusion modes, delete, count, scroll, bad input. Vectors are synthetic (no model).

use retrieval::store::{Condition, FieldType, Filter, Mode, Point, Search, Sparse, VectorStore};
use serde_json::json;

pub fn unit(seed: u64) -> Vec<f32> {
    // A deterministic pseudo-random unit vector.
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut v: Vec<f32> = (0..retrieval::DENSE_DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= n);
    v
}

fn point(id: u64, city: &str, day: i64, words: &[u32]) -> Point {
    let payload =
        json!({"city": city, "expires_day": day, "tags": ["a", city], "id": format!("p{id}")});
    Point {
        id,
        dense: unit(id),
        sparse: Sparse {
            indices: words.to_vec(),
            values: vec![1.0; words.len()],
        },
        payload: payload.as_object().cloned().unwrap_or_default(),
    }
}

pub fn search(dense: Vec<f32>, words: &[u32], filter: Filter, mode: Mode) -> Search {
    Search {
        dense,
        sparse: Sparse {
            indices: words.to_vec(),
            values: vec![1.0; words.len()],
        },
        filter,
        limit: 5,
        mode,
        prefetch: 20,
    }
}

/// The behaviour every store must have; run against each implementation.
pub fn suite(store: &dyn VectorStore, c: &str) {
    store
        .ensure_collection(
            c,
            &[
                ("city", FieldType::Keyword),
                ("expires_day", FieldType::Integer),
                ("tags", FieldType::Keyword),
            ],
        )
        .expect("create");
    store
        .ensure_collection(c, &[("city", FieldType::Keyword)])
        .expect("creating twice is fine");
    let points = vec![
        point(1, "济南市", 100, &[1, 2]),
        point(2, "青岛市", 200, &[2, 3]),
        point(3, "青岛市", 50, &[3, 4]),
        point(4, "烟台市", 300, &[9]),
    ];
    store.upsert(c, points).expect("upsert");
    assert_eq!(store.count(c, &Filter::default()).expect("count"), 4);

    // Dense: the query equal to point 2's vector ranks it first.
    let hits = store
        .search(c, &search(unit(2), &[], Filter::default(), Mode::Dense))
        .expect("dense");
    assert_eq!(hits[0].id, 2);
    assert!(
        (hits[0].score - 1.0).abs() < 1e-3,
        "cosine of identical vectors"
    );
    assert_eq!(hits[0].payload["city"], "青岛市");

    // Sparse: only points sharing a word are returned.
    let hits = store
        .search(c, &search(unit(99), &[9], Filter::default(), Mode::Sparse))
        .expect("sparse");
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![4]);

    // Hybrid: a point strong on both sides wins.
    let hits = store
        .search(
            c,
            &search(unit(3), &[3, 4], Filter::default(), Mode::Hybrid),
        )
        .expect("hybrid");
    assert_eq!(hits[0].id, 3);

    // Filters: never a wrong city, never out of range, in every mode.
    let qingdao = Filter::default().and(Condition::AnyOf {
        key: "city".into(),
        values: vec!["青岛市".into()],
    });
    for mode in [Mode::Dense, Mode::Sparse, Mode::Hybrid] {
        let hits = store
            .search(c, &search(unit(1), &[1, 2, 3, 9], qingdao.clone(), mode))
            .expect("filtered");
        assert!(!hits.is_empty(), "{mode:?}");
        assert!(
            hits.iter().all(|h| h.payload["city"] == "青岛市"),
            "{mode:?}: {hits:?}"
        );
    }
    let valid = qingdao.clone().and(Condition::Range {
        key: "expires_day".into(),
        gte: Some(100.0),
        lte: None,
    });
    let hits = store
        .search(c, &search(unit(3), &[3], valid.clone(), Mode::Hybrid))
        .expect("range");
    assert_eq!(
        hits.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![2],
        "point 3 expired (day 50)"
    );
    let array_field = Filter::default().and(Condition::AnyOf {
        key: "tags".into(),
        values: vec!["烟台市".into(), "济南市".into()],
    });
    let mut ids: Vec<u64> = store
        .scroll(c, &array_field, 10)
        .expect("scroll")
        .iter()
        .map(|h| h.id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 4], "any-of matches array payloads");
    assert_eq!(store.count(c, &valid).expect("count"), 1);

    // Upsert replaces; delete by filter removes.
    store
        .upsert(c, vec![point(2, "威海市", 200, &[2])])
        .expect("replace");
    assert_eq!(store.count(c, &qingdao).expect("count"), 1);
    store.delete(c, &qingdao).expect("delete");
    assert_eq!(store.count(c, &Filter::default()).expect("count"), 3);
    assert!(
        store.delete(c, &Filter::default()).is_err(),
        "an empty delete filter is refused"
    );

    // Bad input is an error, not a panic.
    let mut bad = point(7, "济南市", 1, &[]);
    bad.dense.truncate(10);
    assert!(store.upsert(c, vec![bad]).is_err());
    assert!(store
        .search(
            "missing",
            &search(unit(1), &[], Filter::default(), Mode::Dense)
        )
        .is_err());
    store.flush().expect("flush");
}
