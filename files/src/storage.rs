//! Where the bytes of files are kept: a directory (embedded mode) or an
//! S3-compatible bucket (a cluster), opened as an `object_store`.
//!
//! S3 credentials come from the settings or, when absent there, from the
//! standard `AWS_*` environment variables (and the other sources the
//! `object_store` crate reads, such as instance metadata). They are never
//! printed: [`S3Settings`]'s `Debug` redacts the secret.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use serde::{Deserialize, Serialize};

use crate::objects::Backing;
use crate::{FilesError, Objects, Result};

/// Where files are stored.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Under this directory (created if missing).
    Directory(PathBuf),
    /// In an S3-compatible bucket.
    S3(S3Settings),
}

/// An S3-compatible bucket. Empty fields fall back to the `AWS_*`
/// environment variables.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// The bucket; files are stored in a cluster when it is set.
    pub bucket: String,
    /// The region (`AWS_REGION` when empty; `us-east-1` for most
    /// S3-compatible servers).
    pub region: String,
    /// The endpoint of an S3-compatible service (MinIO, Ceph, R2, ...);
    /// empty for AWS itself.
    pub endpoint: String,
    /// Access key id (`AWS_ACCESS_KEY_ID` when empty).
    pub access_key_id: String,
    /// Secret access key (`AWS_SECRET_ACCESS_KEY` when empty). Never
    /// logged or printed.
    pub secret_access_key: String,
    /// Whether a plain-HTTP endpoint is allowed (test servers only).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl Storage {
    /// Opens the object store, to be read and written the way that suits
    /// it ([`Backing`]). A directory is created here; a bucket is not
    /// contacted until the first request.
    pub fn open(&self) -> Result<Objects> {
        match self {
            Storage::Directory(dir) => {
                let root = crate::directory::prepare(dir, &crate::objects::FOLDERS)
                    .and_then(|()| dir.canonicalize())
                    .map_err(|error| {
                        FilesError::Config(format!("cannot create {}: {error}", dir.display()))
                    })?;
                let store = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|error| FilesError::Config(error.to_string()))?;
                Ok(Objects::new(Arc::new(store), Backing::Directory(root)))
            }
            Storage::S3(settings) => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(&settings.bucket);
                if !settings.region.is_empty() {
                    builder = builder.with_region(&settings.region);
                }
                if !settings.endpoint.is_empty() {
                    // Path-style addressing: what S3-compatible servers
                    // expect of an explicit endpoint.
                    builder = builder
                        .with_endpoint(&settings.endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if !settings.access_key_id.is_empty() {
                    builder = builder.with_access_key_id(&settings.access_key_id);
                }
                if !settings.secret_access_key.is_empty() {
                    builder = builder.with_secret_access_key(&settings.secret_access_key);
                }
                let store = builder
                    .with_allow_http(settings.allow_http)
                    .build()
                    .map_err(|error| FilesError::Config(error.to_string()))?;
                Ok(Objects::new(Arc::new(store), Backing::Bucket))
            }
        }
    }

    /// A description for the logs, without credentials.
    pub fn describe(&self) -> String {
        match self {
            Storage::Directory(dir) => format!("directory {}", dir.display()),
            Storage::S3(settings) if settings.endpoint.is_empty() => {
                format!("S3 bucket {}", settings.bucket)
            }
            Storage::S3(settings) => {
                format!("S3 bucket {} at {}", settings.bucket, settings.endpoint)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_never_printed() {
        let settings = S3Settings {
            bucket: "b".into(),
            secret_access_key: "hunter2-very-secret".into(),
            ..S3Settings::default()
        };
        let shown = format!("{settings:?} {}", Storage::S3(settings.clone()).describe());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
