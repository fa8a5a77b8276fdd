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

/// The `outcome` values of [`UPLOADS`], named once for the counting site
/// and for [`register`].
pub mod upload_outcome {
    /// Stored whole.
    pub const STORED: &str = "stored";
    /// Refused when it passed the size limit.
    pub const TOO_LARGE: &str = "too_large";
    /// The client's body ended early or broke off.
    pub const CUT_OFF: &str = "cut_off";
    /// The object store failed.
    pub const FAILED: &str = "failed";
    /// Every outcome, registered at zero at start.
    pub const ALL: [&str; 4] = [STORED, TOO_LARGE, CUT_OFF, FAILED];
}

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

/// The `outcome` values of [`THUMBNAILS`], named once for the counting
/// site and for [`register`].
pub mod thumbnail_outcome {
    /// Made and stored.
    pub const MADE: &str = "made";
    /// Over the pixel limit or undecodable: the file has no thumbnail.
    pub const REFUSED: &str = "refused";
    /// The object store failed.
    pub const FAILED: &str = "failed";
    /// Every outcome, registered at zero at start.
    pub const ALL: [&str; 3] = [MADE, REFUSED, FAILED];
}

/// Files whose bytes and metadata the sweep removed.
pub static SWEPT: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chat_files_swept_total",
        "Files removed by the sweep after no message carried them for the grace period"
    )
    .expect(REGISTERED)
});

/// Uploads whose objects were removed because no file's metadata names
/// them, by kind: `unfinished` (half-written by a process that died),
/// `unrecorded` (stored by an upload that ended before its metadata was
/// written). A file's bytes and thumbnail go together and count once;
/// gateways sweeping at once may each count a file they both removed.
pub static LEFTOVERS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chat_file_leftovers_removed_total",
        "Uploads whose objects were removed because no file's metadata names them, by kind (unfinished, unrecorded)",
        &["kind"]
    )
    .expect(REGISTERED)
});

/// The `kind` values of [`LEFTOVERS`], named once for the counting sites
/// and for [`register`].
pub mod leftover {
    /// Half-written by an upload whose process died (a directory only).
    pub const UNFINISHED: &str = "unfinished";
    /// Stored by an upload that ended before its metadata was written: by
    /// the upload itself when it could tell, or later by the sweep.
    pub const UNRECORDED: &str = "unrecorded";
    /// Every kind, registered at zero at start.
    pub const ALL: [&str; 2] = [UNFINISHED, UNRECORDED];
}

/// Registers these metrics with their outcomes at zero.
pub fn register() {
    for outcome in upload_outcome::ALL {
        UPLOADS.with_label_values(&[outcome]);
    }
    for outcome in thumbnail_outcome::ALL {
        THUMBNAILS.with_label_values(&[outcome]);
    }
    for kind in leftover::ALL {
        LEFTOVERS.with_label_values(&[kind]);
    }
    LazyLock::force(&UPLOADED_BYTES);
    LazyLock::force(&DOWNLOADS);
    LazyLock::force(&SWEPT);
}
