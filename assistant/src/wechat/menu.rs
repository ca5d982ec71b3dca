//! The Official Account's menu from a TOML file (`leye wechat menu FILE.toml`), checked against
//! WeChat's rules before anything is sent:
//!
//! ```toml
//! [[button]]
//! name = "政策咨询"
//! type = "click"
//! key = "POLICY"
//!
//! [[button]]
//! name = "更多服务"
//! [[button.sub_button]]
//! name = "人社热线"
//! type = "click"
//! key = "HOTLINE"
//! [[button.sub_button]]
//! name = "网上办事"
//! type = "view"
//! url = "https://example.gov.cn/"
//! ```
//!
//! What a CLICK key answers is configured in `wechat.mp.menu_replies` (key → text).

use serde::{Deserialize, Serialize};

/// A menu file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Menu {
    /// Top-level buttons (1–3).
    pub button: Vec<Button>,
}

/// One button: a click (key), a link (url), or a group of sub-buttons.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    /// Label.
    pub name: String,
    /// click | view | miniprogram; absent for a group.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// CLICK key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Link (view, and the fallback of miniprogram).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Mini-program appid (miniprogram).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// Mini-program page (miniprogram).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagepath: Option<String>,
    /// Sub-buttons (1–5) of a group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_button: Vec<Button>,
}

impl Menu {
    /// Parses and checks a menu file; every problem is reported at once.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let menu: Menu = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let problems = menu.problems();
        if problems.is_empty() {
            Ok(menu)
        } else {
            Err(problems)
        }
    }

    /// WeChat's rules: 1–3 buttons, 1–5 sub-buttons, labels of at most 16 (top) / 60 (sub)
    /// bytes, a key of at most 128 bytes, an http(s) url of at most 1024 bytes.
    pub fn problems(&self) -> Vec<String> {
        let mut bad = Vec::new();
        if self.button.is_empty() || self.button.len() > 3 {
            bad.push(format!(
                "{} top-level buttons: WeChat allows 1 to 3",
                self.button.len()
            ));
        }
        for (i, b) in self.button.iter().enumerate() {
            let at = format!("button {}", i + 1);
            check(b, &at, 16, &mut bad);
            if b.sub_button.is_empty() {
                leaf(b, &at, &mut bad);
            } else {
                if b.kind.is_some() {
                    bad.push(format!(
                        "{at} ({}): a group of sub-buttons has no type",
                        b.name
                    ));
                }
                if b.sub_button.len() > 5 {
                    bad.push(format!("{at} ({}): at most 5 sub-buttons", b.name));
                }
                for (j, s) in b.sub_button.iter().enumerate() {
                    let at = format!("{at}.{}", j + 1);
                    check(s, &at, 60, &mut bad);
                    if !s.sub_button.is_empty() {
                        bad.push(format!(
                            "{at} ({}): sub-buttons cannot have sub-buttons",
                            s.name
                        ));
                    }
                    leaf(s, &at, &mut bad);
                }
            }
        }
        bad
    }

    /// CLICK keys of the menu.
    pub fn click_keys(&self) -> Vec<String> {
        self.button
            .iter()
            .flat_map(|b| std::iter::once(b).chain(b.sub_button.iter()))
            .filter(|b| b.kind.as_deref() == Some("click"))
            .filter_map(|b| b.key.clone())
            .collect()
    }

    /// The JSON body of `/cgi-bin/menu/create`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

fn check(b: &Button, at: &str, max_name: usize, bad: &mut Vec<String>) {
    if b.name.trim().is_empty() || b.name.len() > max_name {
        bad.push(format!(
            "{at} ({}): the label must be 1 to {max_name} bytes ({} Chinese characters)",
            b.name,
            max_name / 4
        ));
    }
}

fn leaf(b: &Button, at: &str, bad: &mut Vec<String>) {
    let url_ok = |u: &Option<String>| {
        u.as_deref().is_some_and(|u| {
            (u.starts_with("https://") || u.starts_with("http://")) && u.len() <= 1024
        })
    };
    match b.kind.as_deref() {
        Some("click") => {
            if b.key
                .as_deref()
                .is_none_or(|k| k.is_empty() || k.len() > 128)
            {
                bad.push(format!(
                    "{at} ({}): a click button needs a key of 1 to 128 bytes",
                    b.name
                ));
            }
        }
        Some("view") => {
            if !url_ok(&b.url) {
                bad.push(format!(
                    "{at} ({}): a view button needs an http(s) url",
                    b.name
                ));
            }
        }
        Some("miniprogram") => {
            if b.appid.is_none() || b.pagepath.is_none() || !url_ok(&b.url) {
                bad.push(format!(
                    "{at} ({}): a miniprogram button needs appid, pagepath and a fallback url",
                    b.name
                ));
            }
        }
        Some(other) => bad.push(format!(
            "{at} ({}): unknown type {other:?} (click, view, miniprogram)",
            b.name
        )),
        None => bad.push(format!("{at} ({}): needs a type or sub-buttons", b.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_menu_converts_and_a_bad_one_lists_every_problem() {
        let good = r#"
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
[[button.sub_button]]
name = "网上办事"
type = "view"
url = "https://example.gov.cn/"
"#;
        let m = Menu::parse(good).expect("valid");
        assert_eq!(m.click_keys(), ["POLICY", "HOTLINE"]);
        let j = m.to_json();
        assert_eq!(j["button"][1]["sub_button"][1]["type"], "view");
        assert!(j["button"][1].get("type").is_none());

        let bad = r#"
[[button]]
name = "这是一个太长的菜单名称"
type = "click"
[[button]]
name = "链接"
type = "view"
url = "ftp://x"
[[button]]
name = "a"
type = "shake"
[[button]]
name = "b"
type = "click"
key = "B"
"#;
        let problems = Menu::parse(bad).expect_err("invalid");
        assert!(
            problems.iter().any(|p| p.contains("1 to 3")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("label")), "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("needs a key")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("http(s) url")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("unknown type")),
            "{problems:?}"
        );
        assert!(Menu::parse("button = 3").is_err());
    }
}
