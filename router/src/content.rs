//! Rules on client-supplied text: message content, names and client ids.
//!
//! Names (display names, room names) are shown as another user typed
//! them, so characters that change how the text around them looks without
//! being seen themselves are refused: bidi controls (an override can make
//! "evil" read as "live"), zero-width and other invisible format
//! characters (two names that look alike but differ), and control
//! characters. Content may span lines (`\n`, and `\r` as sent by clients
//! whose platform ends lines with `\r\n`) and keep tabs, stored as sent;
//! other control characters (NUL, escape sequences that would drive a
//! terminal client, DEL, C1 controls) are refused, and so is content with
//! nothing visible in it.

use chat_protocol::limits::{CLIENT_ID_MAX, MAX_CONTENT_CHARS, NAME_MAX_CHARS};

use crate::{Error, Result};

/// Message content as stored: trimmed, 1 to 4000 Unicode characters, not
/// all of them invisible (a message of zero-width spaces would show as an
/// empty bubble; invisible characters among visible ones, as in emoji
/// sequences joined by U+200D, are kept).
pub fn message_content(raw: &str) -> Result<String> {
    let content = raw.trim();
    if content.is_empty() {
        return Err(Error::bad_request("content is empty"));
    }
    if content
        .chars()
        .all(|c| c.is_whitespace() || is_invisible(c))
    {
        return Err(Error::bad_request(
            "content has nothing visible (only invisible characters and spaces)",
        ));
    }
    if content
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Error::bad_request(
            "content contains control characters other than line breaks and tab",
        ));
    }
    let chars = content.chars().count();
    if chars > MAX_CONTENT_CHARS {
        return Err(Error::TooLarge(format!(
            "content has {chars} characters, at most {MAX_CONTENT_CHARS} are allowed"
        )));
    }
    Ok(content.to_owned())
}

/// A room or display name: trimmed, 1 to 64 characters, no control characters.
pub fn name(field: &str, raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::bad_request(format!("{field} is empty")));
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(Error::bad_request(format!(
            "{field} is longer than {NAME_MAX_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::bad_request(format!(
            "{field} contains control characters"
        )));
    }
    if name.chars().any(is_invisible) {
        return Err(Error::bad_request(format!(
            "{field} contains invisible or bidi control characters"
        )));
    }
    Ok(name.to_owned())
}

/// Bidi controls, zero-width and other invisible format characters
/// (Unicode's format characters, Cf, and the fillers that render as
/// nothing).
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                    // soft hyphen
            | '\u{034F}'              // combining grapheme joiner
            | '\u{061C}'              // Arabic letter mark
            | '\u{115F}' | '\u{1160}' // Hangul fillers
            | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian selectors and separator
            | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, isolates
            | '\u{3164}'              // Hangul filler
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}'              // zero-width no-break space (BOM)
            | '\u{FFA0}'              // halfwidth Hangul filler
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
            | '\u{1D173}'..='\u{1D17A}' // musical format characters
            | '\u{E0000}'..='\u{E007F}' // tags
            | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
    )
}

/// A client-chosen idempotency key: 1 to 64 characters.
pub fn client_id(raw: Option<&str>) -> Result<Option<String>> {
    match raw {
        None => Ok(None),
        Some(id) if id.is_empty() || id.chars().count() > CLIENT_ID_MAX => Err(Error::bad_request(
            format!("client_id must be 1 to {CLIENT_ID_MAX} characters"),
        )),
        Some(id) => Ok(Some(id.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::ErrorCode;

    #[test]
    fn content_is_trimmed_and_bounded_in_characters() {
        assert_eq!(message_content("  hi \n").unwrap(), "hi");
        assert_eq!(
            message_content(" \t\n").unwrap_err().code(),
            ErrorCode::BadRequest
        );
        // 4000 multi-byte characters are fine (12000 bytes), 4001 are not.
        assert!(message_content(&"€".repeat(4000)).is_ok());
        assert_eq!(
            message_content(&"€".repeat(4001)).unwrap_err().code(),
            ErrorCode::TooLarge
        );
        // Trimming happens before counting.
        assert!(message_content(&format!("  {}  ", "a".repeat(4000))).is_ok());
    }

    #[test]
    fn content_must_show_something() {
        for invisible in [
            "\u{200B}",
            "\u{200B} \u{2060}\n\u{FEFF}",
            "\u{202E}\u{3164}",
        ] {
            assert_eq!(
                message_content(invisible).unwrap_err().code(),
                ErrorCode::BadRequest,
                "{invisible:?}"
            );
        }
        // Invisible characters among visible ones stay: a family emoji is
        // four faces joined by U+200D.
        let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
        assert_eq!(message_content(family).unwrap(), family);
        assert_eq!(message_content("a\u{200B}b").unwrap(), "a\u{200B}b");
    }

    #[test]
    fn names() {
        assert_eq!(name("name", " general ").unwrap(), "general");
        assert!(name("name", "").is_err());
        assert!(name("name", &"n".repeat(65)).is_err());
        assert!(name("name", "a\u{0}b").is_err());
        assert!(name("name", "Zoë 👋").is_ok(), "letters and emoji are fine");
        for invisible in [
            "\u{202E}evil",          // right-to-left override
            "ad\u{2066}min\u{2069}", // isolate
            "ad\u{200B}min",         // zero-width space
            "ad\u{200D}min",         // zero-width joiner
            "\u{FEFF}admin",         // BOM
            "ad\u{00AD}min",         // soft hyphen
            "\u{3164}",              // Hangul filler alone
            "a\u{E0041}",            // tag
            "a\u{7F}b",              // DEL
            "a\u{85}b",              // next line (C1)
        ] {
            let error = name("name", invisible).unwrap_err();
            assert_eq!(error.code(), ErrorCode::BadRequest, "{invisible:?}");
        }
    }

    #[test]
    fn content_keeps_line_breaks_and_tabs_and_refuses_other_controls() {
        assert_eq!(message_content("a\n\tb").unwrap(), "a\n\tb");
        assert_eq!(message_content("a\r\nb\rc").unwrap(), "a\r\nb\rc");
        for control in [
            "a\u{0}b",
            "a\u{1B}[31mb",
            "a\u{7F}b",
            "a\u{9B}b",
            "a\u{85}b",
        ] {
            assert_eq!(
                message_content(control).unwrap_err().code(),
                ErrorCode::BadRequest,
                "{control:?}"
            );
        }
    }

    #[test]
    fn client_ids() {
        assert_eq!(client_id(None).unwrap(), None);
        assert_eq!(client_id(Some("k1")).unwrap().as_deref(), Some("k1"));
        assert!(client_id(Some("")).is_err());
        assert!(client_id(Some(&"k".repeat(65))).is_err());
    }
}
