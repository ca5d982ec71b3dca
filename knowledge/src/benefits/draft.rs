//! Card drafts from a document (`leye cards draft DOC`): an authoring aid, never loaded.
//!
//! Each article (第N条, or the plan's numbered items) with a sentence that grants something
//! (补贴, 保险金, 待遇, 贷款, 免费, 优先…) becomes a draft: that sentence as `what`, the
//! clauses ending in "的" before it as conditions (quoted verbatim, the fact left for a person
//! to choose), the document's 文号 or title as source. A person completes the facts, checks
//! the wording, renames the file and moves it into the benefits folder; `leye cards check`
//! then ties every span to the document.

use std::sync::OnceLock;

use regex::Regex;

use crate::document::Document;

/// Words of a sentence that grants something.
const GRANTS: &[&str] = &[
    "补贴",
    "补助",
    "保险金",
    "待遇",
    "贷款",
    "贴息",
    "免费",
    "优先",
    "扶持",
    "津贴",
    "奖励",
    "救助",
];

/// One draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Suggested id.
    pub id: String,
    /// The article.
    pub article: String,
    /// The TOML text for review.
    pub toml: String,
}

fn article_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r"(?m)^\s*\**(第[一二三四五六七八九十百零]+条|[(（][一二三四五六七八九十]+[)）])",
        )
        .expect("static pattern")
    })
}

fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Drafts for every article of `doc` that grants something.
pub fn drafts(doc: &Document, stem: &str) -> Vec<Draft> {
    let text = doc.flat_text();
    let starts: Vec<(usize, String)> = article_re()
        .captures_iter(&text)
        .filter_map(|c| c.get(1).map(|m| (m.start(), m.as_str().to_string())))
        .collect();
    let mut out = Vec::new();
    for (i, (start, article)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |(s, _)| *s);
        let body = &text[*start..end];
        let sentences: Vec<&str> = body
            .split(['。', '；', '\n'])
            .map(str::trim)
            .filter(|s| s.chars().count() >= 6)
            .collect();
        let Some(grant) = sentences
            .iter()
            .find(|s| GRANTS.iter().any(|g| s.contains(g)))
        else {
            continue;
        };
        // The grant sentence without the article number that opens it.
        let grant = grant
            .trim_start_matches(['*', ' '])
            .trim_start_matches(article.as_str())
            .trim();
        let conditions: Vec<&str> = sentences
            .iter()
            .flat_map(|s| s.split(['，', ',']))
            .map(str::trim)
            .filter(|c| c.ends_with('的') && c.chars().count() >= 4)
            .take(4)
            .collect();
        let id = format!("{stem}-{}", out.len() + 1);
        let mut t = String::new();
        t.push_str(&format!(
            "# Draft from {} {article}: review every field, choose the facts, rename, then move\n# into the benefits folder and run `leye cards check`.\n",
            doc.metadata.title
        ));
        t.push_str(&format!(
            "id = {}\nname = \"（待填写）\"\nkind = \"benefit\"\nissuer = {}\n\n",
            q(&id),
            q(&doc.metadata.issuer)
        ));
        t.push_str(&format!(
            "[source]\ntitle = {}\ndoc_number = {}\narticles = [{}]\n",
            q(&doc.metadata.title),
            q(&doc.metadata.doc_number),
            q(article)
        ));
        for c in conditions {
            t.push_str(&format!(
                "\n[[who]]\nlabel = {}\n# fact = \"…\"   # one of `leye cards facts`\n# op = \"is\"\n# value = true\nquote = {}\n",
                q(c),
                q(c)
            ));
        }
        t.push_str(&format!(
            "\n[what]\ntext = {}\nquote = {}\n",
            q(grant),
            q(grant)
        ));
        out.push(Draft {
            id,
            article: article.clone(),
            toml: t,
        });
    }
    out
}
