//! Rules on client-supplied text: message content, names and client ids.
//!
//! Names (display names, room names) are shown as another user typed
//! them, so characters that change how the text around them looks without
//! being seen themselves are refused: bidi controls (an override can make
//! "evil" read as "live"), zero-width and other invisible format
//! characters (two names that look alike but differ) but where they build
//! an emoji, and control characters. Content may span lines (`\n`, and `\r` as sent by clients
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

/// A room or display name: trimmed, 1 to 64 characters, no control
/// characters, no invisible ones outside emoji sequences.
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
    let chars: Vec<char> = name.chars().collect();
    let hidden = (0..chars.len()).any(|at| is_invisible(chars[at]) && !joins_emoji(&chars, at));
    if hidden {
        return Err(Error::bad_request(format!(
            "{field} contains invisible or bidi control characters"
        )));
    }
    Ok(name.to_owned())
}

/// Whether the invisible character at `at` belongs to an emoji sequence,
/// the only place a name may hold one: a variation selector right after a
/// symbol ("❤️" is U+2764 U+FE0F), a zero-width joiner between two
/// symbols (a family's faces; the first may carry its selector), or the
/// tags of a subdivision flag (U+1F3F4, tags, then the cancel tag U+E007F).
/// After a letter, digit or space the same characters hide something, and
/// stay refused.
fn joins_emoji(chars: &[char], at: usize) -> bool {
    let before = at.checked_sub(1).and_then(|i| chars.get(i)).copied();
    let after = chars.get(at + 1).copied();
    match chars[at] {
        '\u{FE0E}' | '\u{FE0F}' => before.is_some_and(is_symbol),
        '\u{200D}' => {
            let joined = match before {
                Some('\u{FE0F}') => at >= 2 && is_symbol(chars[at - 2]),
                other => other.is_some_and(is_symbol),
            };
            joined && after.is_some_and(is_symbol)
        }
        '\u{E0020}'..='\u{E007F}' => {
            let first = chars[..at]
                .iter()
                .rposition(|c| !is_tag(*c))
                .map_or(0, |i| i + 1);
            let last = chars[at..]
                .iter()
                .position(|c| !is_tag(*c))
                .map_or(chars.len(), |i| at + i)
                - 1;
            let flag = first
                .checked_sub(1)
                .is_some_and(|i| chars[i] == '\u{1F3F4}');
            let cancelled =
                chars[last] == '\u{E007F}' && chars[first..last].iter().all(|c| *c != '\u{E007F}');
            flag && cancelled && last > first
        }
        _ => false,
    }
}

/// A tag character (U+E0020 to U+E007F).
fn is_tag(c: char) -> bool {
    matches!(c, '\u{E0020}'..='\u{E007F}')
}

/// A character an emoji sequence may build on: visible, neither a letter,
/// a digit nor space, and outside ASCII (whose punctuation has no emoji
/// form to select).
fn is_symbol(c: char) -> bool {
    !c.is_ascii()
        && !c.is_alphanumeric()
        && !c.is_whitespace()
        && !c.is_control()
        && !is_invisible(c)
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
            "\u{202E}evil",                         // right-to-left override
            "ad\u{2066}min\u{2069}",                // isolate
            "ad\u{200B}min",                        // zero-width space
            "ad\u{200D}min",                        // zero-width joiner
            "\u{FEFF}admin",                        // BOM
            "ad\u{00AD}min",                        // soft hyphen
            "\u{3164}",                             // Hangul filler alone
            "a\u{E0041}",                           // tag
            "a\u{7F}b",                             // DEL
            "a\u{85}b",                             // next line (C1)
            "admin\u{FE0F}",                        // a selector after a letter
            "1\u{FE0F}",                            // or a digit
            "ad\u{200D}\u{1F600}",                  // a joiner after a letter
            "\u{1F600}\u{200D}",                    // or at the end
            "\u{1F600}\u{200D}\u{200D}\u{1F600}",   // or after another
            "\u{1F3F4}\u{E0067}\u{E0062}",          // flag tags never cancelled
            "\u{1F3F4}\u{E007F}",                   // a cancel tag alone
            "a\u{E0067}\u{E007F}",                  // tags after a letter
            "\u{1F3F4}\u{E0067}\u{E007F}\u{E0067}", // tags after the cancel
        ] {
            let error = name("name", invisible).unwrap_err();
            assert_eq!(error.code(), ErrorCode::BadRequest, "{invisible:?}");
        }
    }

    #[test]
    fn names_keep_emoji_sequences() {
        for emoji in [
            "Anna \u{2764}\u{FE0F}",                              // red heart
            "\u{263A}\u{FE0E} text style",                        // text presentation
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467} family", // joined faces
            "\u{1F441}\u{FE0F}\u{200D}\u{1F5E8}\u{FE0F}",         // eye in speech bubble
            "\u{1F44D}\u{1F3FD}\u{200D}\u{2642}\u{FE0F}",         // skin tone, then a sign
            "Scots \u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}", // Scotland
        ] {
            assert_eq!(name("name", emoji).unwrap(), emoji, "{emoji:?}");
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
