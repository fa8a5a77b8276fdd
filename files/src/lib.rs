//! Uploaded files: their bytes in object storage, streamed both ways.
//!
//! The bytes of a file live in an object store (the `object_store` crate):
//! a directory inside the data directory when the server runs alone, an
//! S3-compatible bucket in a cluster (gateways keep no file on their disk).
//! Metadata and access rules are not here: they are the store's and the
//! chat logic's (`chat_router::files`). Modules:
//! - [`storage`]: where the bytes go, from the configuration; credentials
//!   are never printed.
//! - [`objects`]: [`Objects`], streaming uploads (size limit enforced while
//!   streaming, nothing left behind by a failed one) and ranged downloads
//!   (from a directory chunk by chunk, holding no open file between
//!   chunks; what is written there is flushed to disk).
//! - [`directory`]: what a directory needs beyond `object_store`: flushing
//!   to disk, and the half-written files of uploads whose process died.
//! - [`in_progress`]: the uploads this process is storing, which the sweep
//!   leaves alone, and the guard that removes an upload's objects if it
//!   ends before its metadata is written.
//! - [`listing`]: a pass over every stored object, a page at a time.
//! - [`sniff`]: the content type, from the bytes, and whether a browser may
//!   show it inline.
//! - [`names`]: safe file names and `Content-Disposition`.
//! - [`range`]: the `Range` header.
//! - [`thumbnail`]: small previews of images, made in a bounded pool,
//!   safe against decompression bombs.
//! - [`sweep`]: removing files that no message carries any more, and
//!   objects that no file's metadata names.
//! - [`metrics`]: what this crate counts.

pub mod directory;
pub mod error;
pub mod in_progress;
pub mod listing;
pub mod metrics;
pub mod names;
pub mod objects;
pub mod range;
pub mod sniff;
pub mod storage;
pub mod sweep;
pub mod thumbnail;

pub use error::FilesError;
pub use objects::{Backing, Objects, Stored};
pub use storage::{S3Settings, Storage};
pub use thumbnail::Thumbnails;

/// Result of a files operation.
pub type Result<T, E = FilesError> = std::result::Result<T, E>;
