//! Input hygiene for text a client sends, and escaping for anything a client wrote that a log
//! line shows.
//!
//! Incoming text keeps what a person meant (letters, punctuation, line breaks) and loses what
//! only a program would send: NUL and other control characters, zero-width and bidi-override
//! characters. A message of nothing but invisible characters becomes empty and is refused as
//! such. Log fields never carry raw client text: [`for_log`] escapes line breaks, control and
//! ANSI escape characters, so nobody can forge a log line.

/// Cleans one text field from a client: CR/LF become `\n`, tabs a space, other control
/// characters (C0, DEL, C1), zero-width and bidi controls are removed; the result is trimmed
/// of whitespace, including the ideographic space.
pub fn clean_input(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c if is_format_char(c) => {}
            c => out.push(c),
        }
    }
    out.trim().to_string()
}

/// Zero-width, bidi-control and other invisible formatting characters.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// A client string made safe for one log field: control characters, line and paragraph
/// separators and bidi controls are written as `\u{…}` escapes, and it is cut to 120
/// characters.
pub fn for_log(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 120 {
            out.push('…');
            break;
        }
        if c.is_control() || is_format_char(c) || matches!(c, '\u{2028}' | '\u{2029}') {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_text_is_empty_and_controls_are_gone() {
        assert_eq!(clean_input("\u{200b}\u{3000}\u{feff} \u{200d}"), "");
        assert_eq!(clean_input("你\0好\u{1b}[31m"), "你好[31m");
        assert_eq!(
            clean_input("第一行\r\n第二行\r第三行"),
            "第一行\n第二行\n第三行"
        );
        assert_eq!(clean_input("\u{202e}abc\u{85}"), "abc");
        assert_eq!(clean_input("  失业保险金怎么领？\t"), "失业保险金怎么领？");
    }

    #[test]
    fn log_fields_cannot_break_lines() {
        let forged = "web\n2026-01-01T00:00:00Z  INFO forged line\u{1b}[2J\u{2028}";
        let safe = for_log(forged);
        assert!(!safe.contains('\n') && !safe.contains('\u{1b}') && !safe.contains('\u{2028}'));
        assert!(safe.starts_with("web\\u{a}2026"));
        assert_eq!(for_log(&"好".repeat(500)).chars().count(), 121);
    }
}
