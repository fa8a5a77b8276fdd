//! Thumbnails: a small PNG preview of an uploaded image, made once on upload.
//!
//! Decoding images is CPU- and memory-hungry and images come from anyone,
//! so: only PNG, JPEG, GIF and WebP are tried; at most [`Thumbnails`]'s
//! worker count decode at once (on the blocking pool, off the async
//! workers); the image's dimensions are read from its header first and
//! anything over [`MAX_PIXELS`] is refused before a pixel is decoded (a
//! "decompression bomb": a few KB of PNG that would decode to gigabytes),
//! and the decoder's own allocation limit backs that up. A file that gets
//! no thumbnail is still a file: it is stored and served, without
//! `thumbnail_url`.

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use chat_protocol::Id;
use futures_util::TryStreamExt;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use tokio::sync::Semaphore;

use crate::metrics::{self, thumbnail_outcome};
use crate::{FilesError, Objects, Result};

/// Largest image (width × height) a thumbnail is made of: 24 megapixels,
/// a large camera photo. Its RGBA pixels take ~96 MiB while decoding.
pub const MAX_PIXELS: u64 = 24_000_000;
/// Most bytes the decoder may allocate (backs up [`MAX_PIXELS`]).
const MAX_DECODER_ALLOC: u64 = 128 * 1024 * 1024;
/// Largest source file read for a thumbnail (it is read whole).
pub const MAX_SOURCE_BYTES: u64 = 32 * 1024 * 1024;
/// The thumbnail fits in a square of this many pixels a side.
pub const EDGE: u32 = 256;

/// Makes thumbnails, a bounded number at a time.
#[derive(Clone, Debug)]
pub struct Thumbnails {
    workers: Arc<Semaphore>,
}

impl Thumbnails {
    /// At most `workers` images are decoded at once; more wait their turn.
    pub fn new(workers: usize) -> Thumbnails {
        Thumbnails {
            workers: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    /// Whether a thumbnail is tried for files of `content_type` (sniffed).
    pub fn applies_to(content_type: &str) -> bool {
        source_format(content_type).is_some()
    }

    /// Makes and stores the thumbnail of file `id` (already stored, of
    /// `size` bytes and sniffed `content_type`). Answers whether one was
    /// stored; an image refused or undecodable gets none, which is logged
    /// and counted, not an error.
    pub async fn make(&self, objects: &Objects, id: Id, content_type: &str, size: u64) -> bool {
        let Some(format) = source_format(content_type) else {
            return false;
        };
        let outcome = self.make_inner(objects, id, format, size).await;
        let label = match &outcome {
            Ok(()) => thumbnail_outcome::MADE,
            Err(FilesError::Image(reason)) => {
                tracing::info!(file = %id, %reason, "no thumbnail for an image");
                thumbnail_outcome::REFUSED
            }
            Err(error) => {
                tracing::warn!(file = %id, %error, "cannot make a thumbnail");
                thumbnail_outcome::FAILED
            }
        };
        metrics::THUMBNAILS.with_label_values(&[label]).inc();
        outcome.is_ok()
    }

    async fn make_inner(
        &self,
        objects: &Objects,
        id: Id,
        format: ImageFormat,
        size: u64,
    ) -> Result<()> {
        if size > MAX_SOURCE_BYTES {
            return Err(FilesError::Image(format!("over {MAX_SOURCE_BYTES} bytes")));
        }
        let _worker = self
            .workers
            .acquire()
            .await
            .map_err(|_| FilesError::Image("shutting down".into()))?;
        let parts: Vec<Bytes> = objects.get(id, None).await?.try_collect().await?;
        let source = parts.concat();
        let png = tokio::task::spawn_blocking(move || render(&source, format))
            .await
            .map_err(|error| FilesError::Image(format!("decoder task failed: {error}")))??;
        objects.put_thumbnail(id, Bytes::from(png)).await
    }
}

/// The decoder for a sniffed content type, if thumbnails are made of it.
fn source_format(content_type: &str) -> Option<ImageFormat> {
    match content_type {
        "image/png" => Some(ImageFormat::Png),
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/gif" => Some(ImageFormat::Gif),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// The PNG thumbnail of `source`, or why there is none. Blocking.
pub fn render(source: &[u8], format: ImageFormat) -> Result<Vec<u8>> {
    let refused = |error: image::ImageError| FilesError::Image(error.to_string());
    // Only the header is read here: no pixel is decoded yet.
    let (width, height) = ImageReader::with_format(Cursor::new(source), format)
        .into_dimensions()
        .map_err(refused)?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_PIXELS {
        return Err(FilesError::Image(format!(
            "{width}×{height} is over the {MAX_PIXELS} pixel limit"
        )));
    }
    let mut reader = ImageReader::with_format(Cursor::new(source), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(refused)?;
    // `thumbnail` scales up as well as down: a small image stays as it is.
    let fitted = if width <= EDGE && height <= EDGE {
        image
    } else {
        image.thumbnail(EDGE, EDGE)
    };
    let preview = DynamicImage::ImageRgba8(fitted.to_rgba8());
    let mut png = Vec::new();
    preview
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(refused)?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GenericImageView, RgbImage};

    fn png_of(width: u32, height: u32) -> Vec<u8> {
        let image =
            DynamicImage::ImageRgb8(RgbImage::from_pixel(width, height, [200, 10, 10].into()));
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn a_large_image_shrinks_to_fit_the_edge_keeping_its_shape() {
        let thumbnail = render(&png_of(1000, 500), ImageFormat::Png).unwrap();
        let decoded = image::load_from_memory_with_format(&thumbnail, ImageFormat::Png).unwrap();
        assert_eq!(decoded.dimensions(), (EDGE, EDGE / 2));
    }

    #[test]
    fn a_small_image_is_never_enlarged() {
        let thumbnail = render(&png_of(40, 30), ImageFormat::Png).unwrap();
        let decoded = image::load_from_memory_with_format(&thumbnail, ImageFormat::Png).unwrap();
        assert_eq!(decoded.dimensions(), (40, 30));
    }

    #[test]
    fn garbage_and_unknown_types_get_no_thumbnail() {
        assert!(matches!(
            render(b"not a png at all", ImageFormat::Png),
            Err(FilesError::Image(_))
        ));
        assert!(!Thumbnails::applies_to("image/svg+xml"));
        assert!(Thumbnails::applies_to("image/webp"));
    }
}
