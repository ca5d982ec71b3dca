//! The XML WeChat posts and the XML we answer with.
//!
//! WeChat's messages are one `<xml>` element with flat children (text or CDATA). The parser
//! reads exactly that and refuses everything else a hostile body could try: a DOCTYPE (so no
//! entity can be declared, let alone expanded), unknown entity references, deep nesting, too
//! many fields, a field longer than the limit, text outside the root. Nested elements (some
//! event types carry them) are skipped.

use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Fields of one message at most.
const MAX_FIELDS: usize = 64;
/// Nesting depth at most (`<xml>` is 1).
const MAX_DEPTH: usize = 4;
/// Characters of one field at most (a text message is at most 2048 bytes).
const MAX_FIELD_BYTES: usize = 16 * 1024;

/// Why a body is not a WeChat message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed, or not one `<xml>` root.
    #[error("not a WeChat XML message: {0}")]
    Malformed(String),
    /// A DOCTYPE or entity declaration: refused outright.
    #[error("DOCTYPE and entity declarations are not accepted")]
    Doctype,
    /// Too deep, too many fields, or a field too long.
    #[error("the message exceeds the XML limits")]
    TooLarge,
}

/// A parsed message: its top-level fields by element name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    /// A field's text, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A field's text, trimmed, or "" when absent.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).map(str::trim).unwrap_or("")
    }
}

/// Parses a WeChat message body.
pub fn parse(body: &str) -> Result<Fields, XmlError> {
    let mut reader = Reader::from_str(body);
    reader.config_mut().trim_text(false);
    reader.config_mut().expand_empty_elements = true;
    let mut fields = HashMap::new();
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut current: Option<(String, String)> = None;
    let bad = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(XmlError::TooLarge);
                }
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                match depth {
                    1 => {
                        if seen_root || name != "xml" {
                            return Err(XmlError::Malformed("the root must be one <xml>".into()));
                        }
                        seen_root = true;
                    }
                    2 => {
                        if fields.len() >= MAX_FIELDS {
                            return Err(XmlError::TooLarge);
                        }
                        current = Some((name, String::new()));
                    }
                    // Nested elements of an event: not read.
                    _ => {}
                }
            }
            Event::End(_) => {
                if depth == 2 {
                    if let Some((name, value)) = current.take() {
                        fields.insert(name, value);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| bad(&e))?;
                match depth {
                    2 => push(&mut current, &text)?,
                    0 if !text.trim().is_empty() => {
                        return Err(XmlError::Malformed("text outside <xml>".into()))
                    }
                    _ => {}
                }
            }
            Event::CData(c) => {
                if depth == 2 {
                    let raw = c.into_inner();
                    let text = std::str::from_utf8(&raw).map_err(|e| bad(&e))?;
                    push(&mut current, text)?;
                }
            }
            Event::Empty(_) => {}
            Event::Eof => break,
        }
    }
    if !seen_root || depth != 0 {
        return Err(XmlError::Malformed("incomplete document".into()));
    }
    Ok(Fields(fields))
}

fn push(current: &mut Option<(String, String)>, text: &str) -> Result<(), XmlError> {
    if let Some((_, v)) = current {
        if v.len() + text.len() > MAX_FIELD_BYTES {
            return Err(XmlError::TooLarge);
        }
        v.push_str(text);
    }
    Ok(())
}

/// Text as CDATA content: a `]]>` inside is split so it cannot close the section.
pub fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// A passive text reply (`MsgType` text) from `from` (our account) to `to` (the user).
pub fn text_reply(to: &str, from: &str, create_time: i64, content: &str) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime><MsgType>{}</MsgType><Content>{}</Content></xml>",
        cdata(to),
        cdata(from),
        cdata("text"),
        cdata(content)
    )
}

/// The envelope of an encrypted reply.
pub fn encrypted_reply(encrypt: &str, signature: &str, timestamp: &str, nonce: &str) -> String {
    format!(
        "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{}</TimeStamp><Nonce>{}</Nonce></xml>",
        cdata(encrypt),
        cdata(signature),
        escape(timestamp),
        cdata(nonce)
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_text_message() {
        let f = parse("<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[失业金怎么领 & <b>]]></Content><MsgId>42</MsgId></xml>").expect("parse");
        assert_eq!(f.text("MsgType"), "text");
        assert_eq!(f.text("Content"), "失业金怎么领 & <b>");
        assert_eq!(f.text("MsgId"), "42");
    }

    #[test]
    fn refuses_hostile_documents() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><xml><Content>&lol2;</Content></xml>"#;
        assert_eq!(parse(bomb), Err(XmlError::Doctype));
        assert!(matches!(
            parse("<xml><Content>&foo;</Content></xml>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(parse("<xml><a>"), Err(XmlError::Malformed(_))));
        assert!(matches!(parse("<root/>"), Err(XmlError::Malformed(_))));
        assert!(matches!(parse("not xml"), Err(XmlError::Malformed(_))));
        assert!(matches!(parse(""), Err(XmlError::Malformed(_))));
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(10), "</a>".repeat(10));
        assert_eq!(parse(&deep), Err(XmlError::TooLarge));
        let many: String = (0..100).map(|i| format!("<f{i}>x</f{i}>")).collect();
        assert_eq!(
            parse(&format!("<xml>{many}</xml>")),
            Err(XmlError::TooLarge)
        );
        let long = format!("<xml><Content>{}</Content></xml>", "x".repeat(20_000));
        assert_eq!(parse(&long), Err(XmlError::TooLarge));
    }

    #[test]
    fn cdata_cannot_be_closed_from_inside() {
        let reply = text_reply("o1", "gh", 1, "a]]><MsgType>news</MsgType>");
        let f = parse(&reply).expect("parse");
        assert_eq!(f.text("Content"), "a]]><MsgType>news</MsgType>");
        assert_eq!(f.text("MsgType"), "text");
    }
}
