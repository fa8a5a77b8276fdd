//! What the files crate counts, in the process-wide Prometheus registry.

use std::sync::LazyLock;

use prometheus::{IntCounter, IntCounterVec, register_int_counter, register_int_counter_vec};

const REGISTERED: &str = "metric names are valid and registered once";

/// Uploads, by outcome: `stored`, `too_large`, `cut_off`, `failed`.
pub static UPLOADS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_file_uploads_total",
        "File uploads, by outcome (stored, too_large, cut_off, failed)",
        &["outcome"]
    )
    .expect(REGISTERED)
});

/// Bytes of stored uploads.
pub static UPLOADED_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("chat_file_uploaded_bytes_total", "Bytes of stored uploads")
        .expect(REGISTERED)
});

/// Downloads started (whole or ranged).
pub static DOWNLOADS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("chat_file_downloads_total", "File downloads started").expect(REGISTERED)
});

/// Thumbnails tried, by outcome: `made`, `refused` (over the pixel limit
/// or undecodable), `failed` (storage).
pub static THUMBNAILS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_file_thumbnails_total",
        "Image thumbnails tried on upload, by outcome (made, refused, failed)",
        &["outcome"]
    )
    .expect(REGISTERED)
});

/// Files whose bytes and metadata the sweep removed.
pub static SWEPT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_files_swept_total",
        "Files removed by the sweep after no message carried them for the grace period"
    )
    .expect(REGISTERED)
});

/// Registers these metrics with their outcomes at zero.
pub fn register() {
    for outcome in ["stored", "too_large", "cut_off", "failed"] {
        UPLOADS.with_label_values(&[outcome]);
    }
    for outcome in ["made", "refused", "failed"] {
        THUMBNAILS.with_label_values(&[outcome]);
    }
    LazyLock::force(&UPLOADED_BYTES);
    LazyLock::force(&DOWNLOADS);
    LazyLock::force(&SWEPT);
}
