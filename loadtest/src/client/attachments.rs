//! How a message's attached files are shown: one indented line per file
//! with its name, a readable size and where to download it.

use chat_protocol::File;

/// The line shown for one attached file (paths are on the server).
pub fn attachment_line(file: &File) -> String {
    let preview = file
        .thumbnail_url
        .as_deref()
        .map(|url| format!(", preview {url}"))
        .unwrap_or_default();
    format!(
        "    + {} ({}, {}) /api/v1/files/{}{preview}",
        file.name,
        size(file.size),
        file.content_type,
        file.id
    )
}

/// `size` bytes as people read them: B, KiB, MiB or GiB.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::Id;

    fn file(size: u64, thumbnail_url: Option<&str>) -> File {
        File {
            id: Id(42),
            name: "photo.png".into(),
            size,
            content_type: "image/png".into(),
            created_at: 0,
            thumbnail_url: thumbnail_url.map(str::to_owned),
        }
    }

    #[test]
    fn shows_name_size_type_and_links() {
        assert_eq!(
            attachment_line(&file(1536, None)),
            "    + photo.png (1.5 KiB, image/png) /api/v1/files/42"
        );
        assert_eq!(
            attachment_line(&file(3 * 1024 * 1024, Some("/api/v1/files/42/thumbnail"))),
            "    + photo.png (3.0 MiB, image/png) /api/v1/files/42, \
             preview /api/v1/files/42/thumbnail"
        );
        assert_eq!(size(12), "12 B");
        assert_eq!(size(5 * 1024 * 1024 * 1024 * 1024), "5120.0 GiB");
    }
}
