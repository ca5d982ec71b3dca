//! `leye wechat menu` as an operator runs it: the real binary against a small local stand-in
//! for WeChat's token and menu endpoints.

use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

fn leye(home: &std::path::Path, api: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leye"))
        .args(args)
        .env("LEYE_HOME", home)
        .env_remove("LEYE_CONFIG")
        .env("LEYE_WECHAT__API_BASE", api)
        .env("LEYE_WECHAT__MP__ENABLED", "true")
        .env("LEYE_WECHAT__MP__APPID", "wxmenuapp")
        .env("LEYE_WECHAT__MP__SECRET", "menu-secret-value")
        .env("LEYE_WECHAT__MP__TOKEN", "tokentoken")
        .current_dir(home)
        .stdin(Stdio::null())
        .output()
        .expect("run leye")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const MENU: &str = r#"
[[button]]
name = "政策咨询"
type = "click"
key = "POLICY"

[[button]]
name = "更多服务"
[[button.sub_button]]
name = "人社热线"
type = "click"
key = "HOTLINE"
"#;

#[test]
fn the_menu_is_checked_then_created_with_a_fresh_access_token() {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let s = seen.clone();
    let api = rt.block_on(async move {
        let app = Router::new()
            .route(
                "/cgi-bin/stable_token",
                post(|Json(b): Json<Value>| async move {
                    assert_eq!(b["appid"], "wxmenuapp");
                    Json(json!({"access_token": "tok-1", "expires_in": 7200}))
                }),
            )
            .route(
                "/cgi-bin/menu/create",
                post(
                    move |axum::extract::Query(q): axum::extract::Query<Value>,
                          Json(b): Json<Value>| {
                        let s = s.clone();
                        async move {
                            assert_eq!(q["access_token"], "tok-1");
                            s.lock().expect("lock").push(b);
                            Json(json!({"errcode": 0, "errmsg": "ok"}))
                        }
                    },
                ),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });
        format!("http://{addr}")
    });
    let home = tempfile::tempdir().expect("tempdir");
    let file = home.path().join("menu.toml");
    std::fs::write(&file, MENU).expect("write");
    let path = file.to_str().expect("path");

    let dry = leye(home.path(), &api, &["wechat", "menu", path, "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let printed: Value = serde_json::from_slice(&dry.stdout).expect("JSON on stdout");
    assert_eq!(printed["button"][0]["key"], "POLICY");
    let warnings = String::from_utf8_lossy(&dry.stderr);
    assert!(
        warnings.contains("POLICY") && warnings.contains("HOTLINE"),
        "keys without a reply are named: {warnings}"
    );
    assert!(
        seen.lock().expect("lock").is_empty(),
        "a dry run sends nothing"
    );

    let out = leye(home.path(), &api, &["wechat", "menu", path]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !text(&out).contains("menu-secret-value"),
        "the secret is never printed"
    );
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["button"][1]["sub_button"][0]["name"], "人社热线");

    std::fs::write(&file, "[[button]]\nname = \"坏\"\ntype = \"click\"\n").expect("write");
    let bad = leye(home.path(), &api, &["wechat", "menu", path]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("needs a key"), "{}", text(&bad));
    assert_eq!(
        seen.lock().expect("lock").len(),
        1,
        "nothing sent for a bad file"
    );
}
