//! The one error type of the files crate.

/// Why storing or reading a file's bytes failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The upload went past the bytes it was allowed.
    #[error("the file is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    /// The client's body broke off or was malformed; nothing was kept.
    #[error("the upload was cut off: {0}")]
    CutOff(String),
    /// No bytes are stored under this file's key.
    #[error("no such file in object storage")]
    NotFound,
    /// Object storage failed or is unreachable.
    #[error("object storage failed: {0}")]
    Storage(String),
    /// An image gets no thumbnail: too many pixels, or not decodable.
    #[error("no thumbnail: {0}")]
    Image(String),
    /// The storage settings are unusable.
    #[error("invalid file storage settings: {0}")]
    Config(String),
}

impl From<object_store::Error> for FilesError {
    fn from(error: object_store::Error) -> FilesError {
        match error {
            object_store::Error::NotFound { .. } => FilesError::NotFound,
            other => FilesError::Storage(other.to_string()),
        }
    }
}
