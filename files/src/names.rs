//! File names: made safe when a file is uploaded, and offered back in a
//! `Content-Disposition` header that no name can break out of.

/// Longest stored name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// The name to keep for an upload named `raw` by the client: its last path
/// component, without control characters or bidirectional-text controls
/// (U+202E makes `evil\u{202E}fdp.exe` show as `evilexe.pdf`), without
/// leading dots and spaces (no hidden files on a downloader's disk) or
/// trailing spaces, at most [`MAX_NAME_CHARS`]; `file` when nothing is left.
pub fn safe_name(raw: Option<&str>) -> String {
    let raw = raw.unwrap_or_default();
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// The formatting characters that reorder text when shown: marks,
/// embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The `Content-Disposition` value for `name`: `inline` or `attachment`,
/// with an ASCII fallback `filename` (anything outside safe printable ASCII
/// replaced by `_`) and the exact name as RFC 8187 `filename*`.
pub fn content_disposition(name: &str, inline: bool) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%' | ';') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        percent_encode(name)
    )
}

/// RFC 8187 `value-chars`: attr-chars as they are, every other byte as %XX.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        let attr_char = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        if attr_char {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(safe_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(safe_name(Some("C:\\Users\\me\\report.pdf")), "report.pdf");
        assert_eq!(safe_name(Some("a\r\nb.txt")), "ab.txt");
        assert_eq!(safe_name(Some("..")), "file");
        assert_eq!(safe_name(Some(".hidden")), "hidden");
        assert_eq!(safe_name(Some(". .hidden")), "hidden");
        assert_eq!(safe_name(Some("a/. \t. .txt ")), "txt");
        assert_eq!(safe_name(Some("x.tar.gz")), "x.tar.gz");
        assert_eq!(safe_name(Some("evil\u{202E}fdp.exe")), "evilfdp.exe");
        assert_eq!(safe_name(Some("\u{2067}a\u{200F}b\u{2069}")), "ab");
        assert_eq!(safe_name(None), "file");
        assert_eq!(
            safe_name(Some(&"x".repeat(1000))).chars().count(),
            MAX_NAME_CHARS
        );
    }

    #[test]
    fn dispositions_cannot_be_broken_out_of() {
        assert_eq!(
            content_disposition("a \"b\"; c.html", false),
            "attachment; filename=\"a _b__ c.html\"; filename*=UTF-8''a%20%22b%22%3B%20c.html"
        );
        assert_eq!(
            content_disposition("café.png", true),
            "inline; filename=\"caf_.png\"; filename*=UTF-8''caf%C3%A9.png"
        );
    }
}
