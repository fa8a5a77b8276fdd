//! The content type of a file, from its first bytes, and whether a browser
//! may show it inline.
//!
//! The client's claimed type is never used: the server decides what it
//! serves from what the bytes are. Only types that cannot run script on our
//! origin are ever shown inline (raster images, audio, video, PDF); anything
//! else, HTML and SVG above all, is sent as an attachment, with
//! `X-Content-Type-Options: nosniff` so that the browser does not guess.

/// How many leading bytes the sniffer looks at.
pub const HEAD_BYTES: usize = 1024;

/// Signatures of binary formats: (offset, magic bytes, content type).
const MAGIC: &[(usize, &[u8], &str)] = &[
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (4, b"ftyp", "video/mp4"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"\x1f\x8b", "application/gzip"),
];

/// The content type of a file that starts with `head`.
pub fn content_type(head: &[u8]) -> &'static str {
    if head.len() >= 12 && &head[..4] == b"RIFF" {
        match &head[8..12] {
            b"WEBP" => return "image/webp",
            b"WAVE" => return "audio/wav",
            _ => {}
        }
    }
    if let Some((_, _, kind)) = MAGIC
        .iter()
        .find(|(offset, magic, _)| head.get(*offset..offset + magic.len()) == Some(*magic))
    {
        return kind;
    }
    if head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0 {
        return "audio/mpeg";
    }
    if looks_like_text(head) {
        let start = String::from_utf8_lossy(head)
            .trim_start()
            .to_ascii_lowercase();
        if start.contains("<svg") {
            return "image/svg+xml";
        }
        const HTML: &[&str] = &[
            "<!doctype html",
            "<html",
            "<head",
            "<body",
            "<script",
            "<iframe",
            "<div",
            "<a ",
            "<img",
            "<style",
            "<title",
            "<p>",
            "<!--",
        ];
        if HTML.iter().any(|tag| start.starts_with(tag)) {
            return "text/html";
        }
        if start.starts_with("<?xml") {
            return "application/xml";
        }
        return "text/plain; charset=utf-8";
    }
    "application/octet-stream"
}

/// Whether `head` reads as text: UTF-8 (a character cut at the end of the
/// head allowed) without control characters other than whitespace.
fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        // A multi-byte character cut off by the head's end is still text.
        Err(error) if error.error_len().is_none() => {
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\x0c'))
}

/// Whether a file of this type may be shown inline: raster images, audio,
/// video and PDF. Never SVG or HTML, which can carry script.
pub fn is_inline(content_type: &str) -> bool {
    const INLINE: &[&str] = &[
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "application/pdf",
    ];
    INLINE.contains(&content_type)
        || content_type.starts_with("audio/")
        || content_type.starts_with("video/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_formats_by_signature() {
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(content_type(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(content_type(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(content_type(b"RIFF\0\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(content_type(b"\0\0\0\x18ftypmp42"), "video/mp4");
        assert_eq!(content_type(&[0, 1, 2, 3, 255]), "application/octet-stream");
        assert_eq!(content_type(b""), "text/plain; charset=utf-8");
    }

    #[test]
    fn markup_is_recognised_however_it_is_named() {
        assert_eq!(content_type(b"  <!DOCTYPE html><p>hi"), "text/html");
        assert_eq!(content_type(b"<script>alert(1)</script>"), "text/html");
        assert_eq!(
            content_type(b"<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\">"),
            "image/svg+xml"
        );
        assert_eq!(
            content_type("héllo\n".as_bytes()),
            "text/plain; charset=utf-8"
        );
        // A character cut in two by the end of the head.
        assert_eq!(
            content_type(&"é".as_bytes()[..1]),
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn only_harmless_types_are_inline() {
        for inline in [
            "image/png",
            "image/jpeg",
            "audio/ogg",
            "video/mp4",
            "application/pdf",
        ] {
            assert!(is_inline(inline), "{inline}");
        }
        for attachment in [
            "image/svg+xml",
            "text/html",
            "application/xml",
            "text/plain; charset=utf-8",
            "application/octet-stream",
        ] {
            assert!(!is_inline(attachment), "{attachment}");
        }
    }
}
