//! Benefit cards (政策申领): one TOML file per benefit or service in `knowledge/data/benefits/`.
//!
//! A card says **who** qualifies (conditions over a citizen's [`rules::Facts`]), **what** is
//! granted, the **materials** and **where** to apply, and every one of these carries the
//! verbatim span of its source document it comes from ([`check`] finds each span in the
//! document after [`check::normalise`]). The [`rules`] engine evaluates cards against what is
//! known of a citizen: qualified, possibly (facts missing, listed), or not qualified (the
//! failing condition, cited). No language model takes part in a decision.
//!
//! ```toml
//! id = "unemployment-insurance-benefit"
//! name = "失业保险金"
//! kind = "benefit"                     # benefit | subsidy | service
//! issuer = "全国人民代表大会常务委员会"
//!
//! [source]
//! title = "中华人民共和国社会保险法"
//! doc_number = ""                      # 文号; empty when the document has none (then the title matches)
//! articles = ["第四十五条"]
//!
//! [[who]]
//! label = "失业前已缴纳失业保险费满一年"
//! fact = "months_insured"
//! op = "min"
//! value = 12
//! quote = "失业前用人单位和本人已经缴纳失业保险费满一年的"
//!
//! [what]
//! text = "按月领取失业保险金"
//! quote = "……"
//!
//! [[where]]
//! text = "到公共就业服务机构办理失业登记"
//! quote = "……"
//! doc = "鲁人社发〔2025〕9号"            # a span may come from another document
//! ```

pub mod check;
pub mod draft;
pub mod rules;

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A benefit or service card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// Stable id (the file name without `.toml`).
    pub id: String,
    /// What citizens call it.
    pub name: String,
    /// Other names citizens use for it ("失业金"); only unambiguous ones.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// benefit | subsidy | service.
    pub kind: Kind,
    /// Who grants it.
    pub issuer: String,
    /// The source document.
    pub source: Source,
    /// Conditions, all of which must hold.
    #[serde(default)]
    pub who: Vec<Condition>,
    /// What is granted.
    pub what: Span,
    /// What to bring.
    #[serde(default)]
    pub materials: Vec<Span>,
    /// Where and how to apply.
    #[serde(default, rename = "where")]
    pub where_: Vec<Span>,
    /// First day it applies (`YYYY-MM-DD`), when stated.
    #[serde(default)]
    pub valid_from: Option<String>,
    /// Last day it applies, when stated.
    #[serde(default)]
    pub valid_to: Option<String>,
}

/// Kinds of cards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Money or insurance paid to the citizen.
    Benefit,
    /// A subsidy (often to an employer or for training).
    Subsidy,
    /// A service (guidance, training, placement, a place to go).
    Service,
}

/// The document a card comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Title.
    pub title: String,
    /// 文号; empty when the document has none.
    #[serde(default)]
    pub doc_number: String,
    /// Articles (第N条, or the plan's （N） items).
    #[serde(default)]
    pub articles: Vec<String>,
}

impl Source {
    /// How a document is matched: its 文号, else its title.
    pub fn key(&self) -> &str {
        if self.doc_number.is_empty() {
            &self.title
        } else {
            &self.doc_number
        }
    }
}

/// A statement with the verbatim span it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// The statement in plain words for the citizen.
    pub text: String,
    /// The verbatim span of the source (checked after [`check::normalise`]).
    pub quote: String,
    /// The document of the span when it is not the card's source (文号 or title).
    #[serde(default)]
    pub doc: Option<String>,
}

/// One condition on a citizen: a fact compared with a value, or any of several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The condition in plain words ("年满16周岁").
    pub label: String,
    /// The fact (see [`rules::FACTS`]); absent when `any` is given.
    #[serde(default)]
    pub fact: Option<String>,
    /// How it is compared.
    #[serde(default)]
    pub op: Option<rules::Op>,
    /// The value compared with.
    #[serde(default)]
    pub value: Option<rules::Value>,
    /// Alternatives: the condition holds when one of them does.
    #[serde(default)]
    pub any: Vec<Test>,
    /// The verbatim span of the source.
    pub quote: String,
    /// The document of the span when it is not the card's source.
    #[serde(default)]
    pub doc: Option<String>,
}

/// One comparison inside `any`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    /// The fact.
    pub fact: String,
    /// How it is compared.
    pub op: rules::Op,
    /// The value compared with.
    #[serde(default)]
    pub value: Option<rules::Value>,
}

/// Why cards could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a valid card.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Card {
    /// Parses one card; `file` names it in errors. Checks what the types cannot: the id
    /// matches the file name, every condition is well formed and names a known fact.
    pub fn parse(text: &str, file: &str) -> Result<Self, CardError> {
        let invalid = |message: String| CardError::Invalid {
            path: file.to_string(),
            message,
        };
        let card: Card = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let stem = Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("");
        if !stem.is_empty() && stem != card.id {
            return Err(invalid(format!(
                "id {:?} must equal the file name {stem:?}",
                card.id
            )));
        }
        for c in &card.who {
            rules::validate(c).map_err(|m| invalid(format!("condition {:?}: {m}", c.label)))?;
        }
        if card.what.quote.trim().is_empty() {
            return Err(invalid("what.quote is empty".into()));
        }
        Ok(card)
    }

    /// Every span of the card with the field it belongs to: (field, quote, document key).
    pub fn spans(&self) -> Vec<(String, &str, &str)> {
        let src = self.source.key();
        let mut out = Vec::new();
        for (i, c) in self.who.iter().enumerate() {
            out.push((
                format!("who[{i}] ({})", c.label),
                c.quote.as_str(),
                c.doc.as_deref().unwrap_or(src),
            ));
        }
        out.push((
            "what".into(),
            self.what.quote.as_str(),
            self.what.doc.as_deref().unwrap_or(src),
        ));
        for (name, list) in [("materials", &self.materials), ("where", &self.where_)] {
            for (i, s) in list.iter().enumerate() {
                out.push((
                    format!("{name}[{i}]"),
                    s.quote.as_str(),
                    s.doc.as_deref().unwrap_or(src),
                ));
            }
        }
        out
    }
}

/// Loads every `*.toml` card of a folder, sorted by id; ids must be unique.
pub fn load_dir(dir: &Path) -> Result<Vec<Card>, CardError> {
    let io = |e: std::io::Error| CardError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut cards = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(&f).map_err(|e| CardError::Io {
            path: name.clone(),
            source: e,
        })?;
        cards.push(Card::parse(&text, &name)?);
    }
    cards.sort_by(|a, b| a.id.cmp(&b.id));
    for w in cards.windows(2) {
        if w[0].id == w[1].id {
            return Err(CardError::Invalid {
                path: dir.display().to_string(),
                message: format!("two cards with id {:?}", w[0].id),
            });
        }
    }
    Ok(cards)
}

/// The bundled cards' folder.
pub fn bundled_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("benefits")
}
