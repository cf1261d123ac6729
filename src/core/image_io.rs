//! Decoding image files from disk into 8-bit RGB images and 8-bit masks.
//!
//! Every failure is an [`ImageLoadError`] that names the file; nothing here panics on bad
//! input. Decoding runs under [`image::Limits`] so a small file that declares an enormous
//! image (a decompression bomb) is refused before its pixels are allocated, and a JPEG
//! that ends before its end-of-image marker is refused rather than decoded with made-up
//! pixels. The byte-level entry point [`decode_rgb`] is what `fuzz/` exercises.

use crate::core::message::one_line;
use crate::core::message::path_text;
use image::{
    DynamicImage, GrayImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage,
};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// File extensions (lower case, without the dot) that are treated as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// The largest accepted width and the largest accepted height, in pixels.
pub const MAX_IMAGE_SIDE_PX: u32 = 16_384;

/// The most memory one decode may allocate for its pixels, in bytes (512 MiB).
pub const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// The largest image file that is read, in bytes (512 MiB): the whole file is read into
/// memory before decoding, and no image within [`MAX_DECODE_BYTES`] needs a bigger one.
pub const MAX_FILE_BYTES: u64 = MAX_DECODE_BYTES;

/// Why an image or mask file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageLoadError {
    /// The file could not be opened or read (missing, permission denied, I/O failure).
    ///
    /// The I/O error is kept in `error` but is deliberately not the error's `source`: its
    /// reason is already in the message, and chaining it would print it twice and push the
    /// path away from the end of the line.
    #[error("cannot read image ({}): {}", io_reason(error), path_text(path))]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// What the operating system reported.
        error: io::Error,
    },
    /// The path is a folder or some other thing that is not a regular file.
    #[error("cannot read image (not a file): {}", path_text(path))]
    NotAFile {
        /// The path that is not a file.
        path: PathBuf,
    },
    /// The file name is not valid UTF-8, so it could not be written faithfully into a
    /// report, a CSV file or the window; the message shows the bytes that are not UTF-8
    /// as `\xNN`.
    #[error(
        "cannot read image (the file name is not valid UTF-8; rename the file): {}",
        path_text(path)
    )]
    NonUtf8Name {
        /// The file with the badly encoded name.
        path: PathBuf,
    },
    /// The file has zero bytes.
    #[error("cannot decode image: the file is empty: {}", path_text(path))]
    Empty {
        /// The empty file.
        path: PathBuf,
    },
    /// The contents are not a complete image in a supported format (unknown format, a text
    /// file with an image extension, a truncated or corrupt file).
    #[error("cannot decode image: {message}: {}", path_text(path))]
    Decode {
        /// The file that could not be decoded.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },
    /// The image is larger than [`MAX_IMAGE_SIDE_PX`] on a side or would need more than
    /// [`MAX_DECODE_BYTES`] to decode.
    #[error("image too large ({reason}): {}", path_text(path))]
    TooLarge {
        /// The file that declares the oversized image.
        path: PathBuf,
        /// The declared size and the limit it breaks.
        reason: String,
    },
}

impl ImageLoadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ImageLoadError::Io { path, .. }
            | ImageLoadError::NotAFile { path }
            | ImageLoadError::NonUtf8Name { path }
            | ImageLoadError::Empty { path }
            | ImageLoadError::Decode { path, .. }
            | ImageLoadError::TooLarge { path, .. } => path,
        }
    }
}

/// A short lower-case reason for an I/O error, e.g. "permission denied" or "too many
/// levels of symbolic links", without the operating system's error number.
pub(crate) fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => return "not found".to_owned(),
        io::ErrorKind::PermissionDenied => return "permission denied".to_owned(),
        io::ErrorKind::UnexpectedEof => return "unexpected end of file".to_owned(),
        _ => {}
    }
    let text = error.to_string();
    // `Display` of an OS error is "Description (os error N)".
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text[..],
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_owned(),
    }
}

/// Whether `path` has one of the [`IMAGE_EXTENSIONS`], compared without regard to case.
///
/// Only the name is looked at; the file need not exist.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            IMAGE_EXTENSIONS
                .iter()
                .any(|known| known.eq_ignore_ascii_case(ext))
        })
}

/// Loads any supported image file (PNG, JPEG, BMP, TIFF) as 8-bit RGB.
///
/// The format is recognised from the file's first bytes, falling back to its extension.
/// Grey images are copied into all three channels; 16-bit and floating-point samples are
/// scaled to 8 bits. An alpha channel is dropped, not composited: a transparent pixel keeps
/// the colour stored under it (as PIL's `convert("RGB")` does, which the reference
/// DifferNet code uses).
///
/// A file whose name is not valid UTF-8 is refused with [`ImageLoadError::NonUtf8Name`]:
/// its results could not be traced back to it in the reports.
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageLoadError> {
    Ok(decode_bytes(&read_file(path)?, path)?.to_rgb8())
}

/// Decodes the contents of an image file as 8-bit RGB, exactly as [`load_rgb`] does once
/// it has read the file. `path` names the file in errors, and its extension is the format
/// used when the contents are not recognised.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<RgbImage, ImageLoadError> {
    Ok(decode_bytes(bytes, path)?.to_rgb8())
}

/// Loads a ground-truth mask of any supported format as 8-bit grey.
///
/// A pixel is defective when any of its colour channels is nonzero (alpha is ignored). The
/// returned level is the largest channel scaled to 8 bits, but never rounded down to 0, so
/// a nonzero pixel of a 16-bit or coloured mask stays nonzero.
pub fn load_mask(path: &Path) -> Result<GrayImage, ImageLoadError> {
    let rgb16 = decode_bytes(&read_file(path)?, path)?.to_rgb16();
    let (width, height) = rgb16.dimensions();
    let levels = rgb16
        .pixels()
        .map(|pixel| {
            let max = pixel.0.into_iter().max().unwrap_or(0);
            if max == 0 {
                0
            } else {
                // 257 maps 65535 to 255; the rounding keeps 8-bit input exact.
                ((u32::from(max) + 128) / 257).clamp(1, 255) as u8
            }
        })
        .collect();
    // The buffer has exactly width * height samples, so this cannot fail.
    GrayImage::from_raw(width, height, levels).ok_or_else(|| ImageLoadError::Decode {
        path: path.to_owned(),
        message: "mask buffer has the wrong size".to_owned(),
    })
}

/// Checks that `path` is a regular, non-empty file with a UTF-8 name and not too large,
/// and reads it whole.
fn read_file(path: &Path) -> Result<Vec<u8>, ImageLoadError> {
    let io_error = |error: io::Error| ImageLoadError::Io {
        path: path.to_owned(),
        error,
    };
    let metadata = std::fs::metadata(path).map_err(io_error)?;
    if !metadata.is_file() {
        return Err(ImageLoadError::NotAFile {
            path: path.to_owned(),
        });
    }
    if path.to_str().is_none() {
        return Err(ImageLoadError::NonUtf8Name {
            path: path.to_owned(),
        });
    }
    if metadata.len() == 0 {
        return Err(ImageLoadError::Empty {
            path: path.to_owned(),
        });
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(file_too_large(path, metadata.len()));
    }
    let mut bytes = Vec::new();
    // The file may grow between the check and the read; never read more than the limit.
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(file_too_large(path, bytes.len() as u64));
    }
    Ok(bytes)
}

fn file_too_large(path: &Path, len: u64) -> ImageLoadError {
    ImageLoadError::TooLarge {
        path: path.to_owned(),
        reason: format!(
            "the file has {} MiB; at most {} MiB",
            len.div_ceil(1024 * 1024),
            MAX_FILE_BYTES / (1024 * 1024)
        ),
    }
}

/// Checks and decodes the contents of one file under the size limits.
fn decode_bytes(bytes: &[u8], path: &Path) -> Result<DynamicImage, ImageLoadError> {
    // The decoders are meant never to panic, but they parse untrusted bytes; a panic here
    // would take down the worker thread that asked for the image, so it becomes an error.
    // (The fuzz targets still see such a panic: their panic hook aborts first.)
    std::panic::catch_unwind(|| decode_unchecked(bytes, path)).unwrap_or_else(|_| {
        Err(ImageLoadError::Decode {
            path: path.to_owned(),
            message: "the decoder failed unexpectedly".to_owned(),
        })
    })
}

/// [`decode_bytes`] without the guard against a decoder's panic.
fn decode_unchecked(bytes: &[u8], path: &Path) -> Result<DynamicImage, ImageLoadError> {
    if bytes.is_empty() {
        return Err(ImageLoadError::Empty {
            path: path.to_owned(),
        });
    }
    let mut reader = ImageReader::new(io::Cursor::new(bytes));
    // The extension is the fallback; the first bytes decide when they are recognised.
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    let mut reader = reader
        .with_guessed_format()
        .map_err(|error| ImageLoadError::Io {
            path: path.to_owned(),
            error,
        })?;
    // The JPEG decoder fills whatever a truncated file lacks with made-up pixels and
    // reports success; a cut-off photograph must not be scored as if it were whole.
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_reaches_end(bytes) {
        return Err(ImageLoadError::Decode {
            path: path.to_owned(),
            message: "the file is truncated (the JPEG data ends before its end marker)".to_owned(),
        });
    }
    // png 0.18.1 panics on a palette that is not whole RGB entries (image-rs/image-png#694,
    // fixed upstream, not yet released); the panic would be caught, but the file is plainly
    // broken and deserves a message that says how.
    if reader.format() == Some(ImageFormat::Png) && !png_palette_is_whole(bytes) {
        return Err(ImageLoadError::Decode {
            path: path.to_owned(),
            message: "the palette (PLTE chunk) is not a whole number of RGB colours".to_owned(),
        });
    }
    // Only the memory cap while the header is read: the declared size is checked below so
    // the error can say what it is.
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits.clone());
    let mut decoder = reader
        .into_decoder()
        .map_err(|error| from_image_error(path, error))?;

    let (width, height) = decoder.dimensions();
    if width > MAX_IMAGE_SIDE_PX || height > MAX_IMAGE_SIDE_PX {
        return Err(ImageLoadError::TooLarge {
            path: path.to_owned(),
            reason: format!(
                "{width} x {height} pixels; at most {MAX_IMAGE_SIDE_PX} x {MAX_IMAGE_SIDE_PX}"
            ),
        });
    }
    let total_bytes = decoder.total_bytes();
    if total_bytes > MAX_DECODE_BYTES {
        return Err(ImageLoadError::TooLarge {
            path: path.to_owned(),
            reason: format!(
                "{width} x {height} pixels need {} MiB; at most {} MiB",
                total_bytes.div_ceil(1024 * 1024),
                MAX_DECODE_BYTES / (1024 * 1024)
            ),
        });
    }
    // What the decoder may allocate on top of the output buffer, as `ImageReader::decode`
    // does it.
    limits.max_image_width = Some(MAX_IMAGE_SIDE_PX);
    limits.max_image_height = Some(MAX_IMAGE_SIDE_PX);
    limits.max_alloc = Some(MAX_DECODE_BYTES - total_bytes);
    decoder
        .set_limits(limits)
        .map_err(|error| from_image_error(path, error))?;
    DynamicImage::from_decoder(decoder).map_err(|error| from_image_error(path, error))
}

/// Whether a JPEG stream reaches its end-of-image marker (`FF D9`), walking the marker
/// segments by their lengths so that the marker of an embedded thumbnail does not count.
///
/// Entropy-coded data needs no special case: inside it a `FF` byte is always followed by
/// `00` (a stuffed byte) or a restart marker, which are stepped over like fill bytes. A
/// stream that does not start with the start-of-image marker is left to the decoder to
/// refuse. PIL refuses the same files ("image file is truncated").
fn jpeg_reaches_end(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return true;
    }
    let mut at = 2;
    loop {
        // The next marker: skip to a 0xFF, then over fill bytes (more 0xFF).
        while bytes.get(at).is_some_and(|&byte| byte != 0xFF) {
            at += 1;
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let Some(&marker) = bytes.get(at) else {
            return false;
        };
        at += 1;
        match marker {
            // End of image.
            0xD9 => return true,
            // A stuffed zero or a restart marker inside entropy-coded data, or TEM: no
            // length follows.
            0x00 | 0x01 | 0xD0..=0xD7 => {}
            // Every other marker starts a segment whose length counts its own two bytes.
            _ => {
                let Some(&[high, low]) = bytes.get(at..at + 2) else {
                    return false;
                };
                at += usize::from(u16::from_be_bytes([high, low]));
                if at > bytes.len() {
                    return false;
                }
            }
        }
    }
}

/// Whether every PLTE chunk of a PNG stream holds whole RGB entries (a multiple of 3 bytes,
/// as the specification requires). Chunks are walked by their lengths; a stream that is
/// not a PNG, or whose chunks run past its end, is left to the decoder to refuse.
fn png_palette_is_whole(bytes: &[u8]) -> bool {
    let Some(mut rest) = bytes.strip_prefix(b"\x89PNG\r\n\x1a\n") else {
        return true;
    };
    // Each chunk: length (4 bytes, big-endian), type (4), data, CRC (4).
    while let Some((&[l0, l1, l2, l3, t0, t1, t2, t3], after)) = rest.split_first_chunk::<8>() {
        let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
        match &[t0, t1, t2, t3] {
            b"PLTE" if !len.is_multiple_of(3) => return false,
            b"IEND" => break,
            _ => {}
        }
        let Some(next) = after.get(len.saturating_add(4)..) else {
            break;
        };
        rest = next;
    }
    true
}

/// Sorts an [`ImageError`] into the variant of [`ImageLoadError`] that says what went wrong.
fn from_image_error(path: &Path, error: ImageError) -> ImageLoadError {
    let path = path.to_owned();
    match error {
        ImageError::IoError(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            ImageLoadError::Decode {
                path,
                message: "the file is truncated".to_owned(),
            }
        }
        ImageError::IoError(error) => ImageLoadError::Io { path, error },
        ImageError::Limits(error) => ImageLoadError::TooLarge {
            path,
            reason: error.to_string(),
        },
        error => ImageLoadError::Decode {
            path,
            message: tidy_message(&error.to_string()),
        },
    }
}

/// A decoder's message on one line and of bounded length (it may quote the file),
/// without the quotes and the full stop some add, so it reads well before the `: PATH`
/// that follows it.
fn tidy_message(message: &str) -> String {
    one_line(&message.replace("\\n", "\n").replace('"', ""))
        .trim_end_matches('.')
        .to_owned()
}

/// An image's grey levels: mean (brightness) and standard deviation (contrast), in 0..1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageLevels {
    /// Mean grey level.
    pub brightness: f32,
    /// Standard deviation of the grey levels.
    pub contrast: f32,
}

impl ImageLevels {
    /// The levels of an image (Rec. 601 luma), from at most about 65,000 of its pixels.
    pub fn of(image: &image::RgbImage) -> Self {
        let (w, h) = image.dimensions();
        let step = ((u64::from(w) * u64::from(h)) as f64 / 65_536.0)
            .sqrt()
            .ceil()
            .max(1.0) as u32;
        let (mut n, mut sum, mut sum2) = (0.0f64, 0.0f64, 0.0f64);
        for y in (0..h).step_by(step as usize) {
            for x in (0..w).step_by(step as usize) {
                let p = image.get_pixel(x, y).0;
                let g =
                    (0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
                        / 255.0;
                n += 1.0;
                sum += g;
                sum2 += g * g;
            }
        }
        if n == 0.0 {
            return Self {
                brightness: 0.0,
                contrast: 0.0,
            };
        }
        let mean = sum / n;
        Self {
            brightness: mean as f32,
            contrast: (sum2 / n - mean * mean).max(0.0).sqrt() as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
    use std::time::{Duration, Instant};

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().expect("temporary folder")
    }

    fn write_test_png(path: &Path) {
        let image = RgbImage::from_fn(8, 6, |x, y| Rgb([x as u8 * 30, y as u8 * 40, 7]));
        image.save(path).expect("save png");
    }

    #[test]
    fn recognises_image_extensions_without_regard_to_case() {
        assert!(is_image_path(Path::new("a/b.png")));
        assert!(is_image_path(Path::new("b.JPG")));
        assert!(is_image_path(Path::new("b.Jpeg")));
        assert!(is_image_path(Path::new("b.bmp")));
        assert!(is_image_path(Path::new("b.TIF")));
        assert!(is_image_path(Path::new("b.tiff")));
        assert!(!is_image_path(Path::new("b.txt")));
        assert!(!is_image_path(Path::new("png")));
        assert!(!is_image_path(Path::new("b.png.bak")));
        assert!(!is_image_path(Path::new("")));
    }

    #[test]
    fn loads_rgb_png_exactly() {
        let dir = temp();
        let path = dir.path().join("rgb.png");
        write_test_png(&path);
        let image = load_rgb(&path).expect("load");
        assert_eq!(image.dimensions(), (8, 6));
        assert_eq!(image.get_pixel(3, 2), &Rgb([90, 80, 7]));
    }

    #[test]
    fn grey_16_bit_png_becomes_rgb8() {
        let dir = temp();
        let path = dir.path().join("grey16.png");
        // Multiples of 257 convert to 8 bits exactly.
        let image: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_fn(5, 4, |x, _| Luma([x as u16 * 257 * 60]));
        image.save(&path).expect("save");
        let rgb = load_rgb(&path).expect("load");
        assert_eq!(rgb.dimensions(), (5, 4));
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([0, 0, 0]));
        assert_eq!(rgb.get_pixel(2, 3), &Rgb([120, 120, 120]));
        assert_eq!(rgb.get_pixel(4, 1), &Rgb([240, 240, 240]));
    }

    #[test]
    fn grey_alpha_png_drops_alpha() {
        let dir = temp();
        let path = dir.path().join("grey_alpha.png");
        let image: ImageBuffer<LumaA<u8>, Vec<u8>> =
            ImageBuffer::from_fn(3, 3, |x, y| LumaA([(x * 50 + y) as u8, 0]));
        image.save(&path).expect("save");
        let rgb = load_rgb(&path).expect("load");
        assert_eq!(rgb.dimensions(), (3, 3));
        // Fully transparent, but the stored grey level survives.
        assert_eq!(rgb.get_pixel(2, 1), &Rgb([101, 101, 101]));
    }

    #[test]
    fn rgba_png_drops_alpha() {
        let dir = temp();
        let path = dir.path().join("rgba.png");
        let image = image::RgbaImage::from_fn(4, 2, |x, _| Rgba([10 * x as u8, 200, 30, 64]));
        image.save(&path).expect("save");
        let rgb = load_rgb(&path).expect("load");
        assert_eq!(rgb.get_pixel(3, 1), &Rgb([30, 200, 30]));
    }

    #[test]
    fn rgb_16_bit_png_becomes_rgb8() {
        let dir = temp();
        let path = dir.path().join("rgb16.png");
        let image: ImageBuffer<Rgb<u16>, Vec<u16>> =
            ImageBuffer::from_pixel(2, 2, Rgb([65_535, 257 * 128, 0]));
        image.save(&path).expect("save");
        let rgb = load_rgb(&path).expect("load");
        assert_eq!(rgb.get_pixel(1, 1), &Rgb([255, 128, 0]));
    }

    #[test]
    fn loads_jpeg_approximately() {
        let dir = temp();
        let path = dir.path().join("flat.jpg");
        RgbImage::from_pixel(16, 16, Rgb([200, 100, 50]))
            .save(&path)
            .expect("save");
        let rgb = load_rgb(&path).expect("load");
        assert_eq!(rgb.dimensions(), (16, 16));
        let pixel = rgb.get_pixel(8, 8).0;
        for (got, want) in pixel.iter().zip([200u8, 100, 50]) {
            assert!(got.abs_diff(want) <= 4, "{pixel:?}");
        }
    }

    #[test]
    fn loads_bmp_and_tiff_exactly() {
        let dir = temp();
        let image = RgbImage::from_fn(7, 5, |x, y| Rgb([x as u8, y as u8, (x * y) as u8]));
        for name in ["a.bmp", "a.tif", "a.TIFF"] {
            let path = dir.path().join(name);
            image
                .save_with_format(
                    &path,
                    if name.ends_with("bmp") {
                        image::ImageFormat::Bmp
                    } else {
                        image::ImageFormat::Tiff
                    },
                )
                .expect("save");
            assert_eq!(load_rgb(&path).expect("load"), image, "{name}");
        }
    }

    #[test]
    fn grey_tiff_becomes_rgb8() {
        let dir = temp();
        let path = dir.path().join("grey.tiff");
        GrayImage::from_fn(4, 4, |x, y| Luma([(x + 4 * y) as u8 * 10]))
            .save(&path)
            .expect("save");
        let rgb = load_rgb(&path).expect("load");
        assert_eq!(rgb.get_pixel(1, 2), &Rgb([90, 90, 90]));
    }

    #[test]
    fn format_comes_from_contents_not_extension() {
        let dir = temp();
        let path = dir.path().join("really_a_png.jpg");
        RgbImage::from_pixel(3, 3, Rgb([1, 2, 3]))
            .save_with_format(&path, image::ImageFormat::Png)
            .expect("save");
        assert_eq!(
            load_rgb(&path).expect("load").get_pixel(0, 0),
            &Rgb([1, 2, 3])
        );
    }

    #[test]
    fn mask_keeps_every_nonzero_pixel() {
        let dir = temp();
        let path8 = dir.path().join("mask.png");
        GrayImage::from_fn(4, 1, |x, _| Luma([[0, 255, 1, 0][x as usize]]))
            .save(&path8)
            .expect("save");
        let mask = load_mask(&path8).expect("load");
        assert_eq!(mask.as_raw(), &vec![0, 255, 1, 0]);

        let path16 = dir.path().join("mask16.png");
        let image: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_fn(3, 1, |x, _| Luma([[0, 1, 65_535][x as usize]]));
        image.save(&path16).expect("save");
        assert_eq!(load_mask(&path16).expect("load").as_raw(), &vec![0, 1, 255]);

        let path_rgb = dir.path().join("mask_rgb.bmp");
        RgbImage::from_fn(2, 1, |x, _| {
            if x == 0 {
                Rgb([0, 0, 0])
            } else {
                Rgb([1, 0, 0])
            }
        })
        .save(&path_rgb)
        .expect("save");
        assert_eq!(load_mask(&path_rgb).expect("load").as_raw(), &vec![0, 1]);
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let dir = temp();
        let path = dir.path().join("missing.png");
        let error = load_rgb(&path).unwrap_err();
        assert!(matches!(error, ImageLoadError::Io { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("cannot read image (not found): {}", path.display())
        );
        assert_eq!(error.path(), path);
    }

    #[test]
    fn decoder_messages_are_tidied() {
        assert_eq!(
            tidy_message("Format error decoding Png: Invalid PNG signature."),
            "Format error decoding Png: Invalid PNG signature"
        );
        assert_eq!(
            tidy_message("Format error decoding Jpeg: \"Could not read\\nCould not fill\""),
            "Format error decoding Jpeg: Could not read; Could not fill"
        );
    }

    #[test]
    fn zero_byte_file_is_empty() {
        let dir = temp();
        let path = dir.path().join("empty.png");
        std::fs::write(&path, b"").expect("write");
        let error = load_rgb(&path).unwrap_err();
        assert!(matches!(error, ImageLoadError::Empty { .. }), "{error:?}");
        assert!(error.to_string().ends_with(&path.display().to_string()));
    }

    #[test]
    fn text_file_named_png_is_a_decode_error() {
        let dir = temp();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, "these are not pixels\n").expect("write");
        let error = load_rgb(&path).unwrap_err();
        assert!(matches!(error, ImageLoadError::Decode { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.starts_with("cannot decode image: "), "{text}");
        assert!(text.ends_with(&format!(": {}", path.display())), "{text}");
    }

    #[test]
    fn unknown_format_without_extension_is_a_decode_error() {
        let dir = temp();
        let path = dir.path().join("blob");
        std::fs::write(&path, [0u8, 1, 2, 3, 4, 5, 6, 7]).expect("write");
        let error = load_mask(&path).unwrap_err();
        assert!(matches!(error, ImageLoadError::Decode { .. }), "{error:?}");
    }

    #[test]
    fn truncated_png_is_a_decode_error() {
        let dir = temp();
        let whole = dir.path().join("whole.png");
        // Noise, so the compressed data is long enough to cut in half meaningfully.
        let mut rng = crate::core::rng::SplitMix64::new(1);
        RgbImage::from_fn(64, 64, |_, _| {
            let v = rng.next_u64().to_le_bytes();
            Rgb([v[0], v[1], v[2]])
        })
        .save(&whole)
        .expect("save");
        let bytes = std::fs::read(&whole).expect("read");
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        let error = load_rgb(&cut).unwrap_err();
        assert!(matches!(error, ImageLoadError::Decode { .. }), "{error:?}");
        assert!(error.to_string().ends_with(&cut.display().to_string()));
    }

    #[test]
    fn png_cut_inside_header_is_a_decode_error() {
        let dir = temp();
        let whole = dir.path().join("whole.png");
        write_test_png(&whole);
        let bytes = std::fs::read(&whole).expect("read");
        for len in [1, 8, 12, 20] {
            let cut = dir.path().join(format!("cut{len}.png"));
            std::fs::write(&cut, &bytes[..len]).expect("write");
            let error = load_rgb(&cut).unwrap_err();
            assert!(matches!(error, ImageLoadError::Decode { .. }), "{error:?}");
        }
    }

    #[test]
    fn folder_named_like_an_image_is_not_a_file() {
        let dir = temp();
        let path = dir.path().join("x.png");
        std::fs::create_dir(&path).expect("mkdir");
        let error = load_rgb(&path).unwrap_err();
        assert!(
            matches!(error, ImageLoadError::NotAFile { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("cannot read image (not a file): {}", path.display())
        );
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_file_is_an_io_error() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp();
        let path = dir.path().join("locked.png");
        write_test_png(&path);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        if std::fs::File::open(&path).is_ok() {
            // Running as root: permissions do not stop reading, so the image loads
            // (tests/bad_input.rs drops root's override to see the refusal).
            assert_eq!(load_rgb(&path).expect("root reads it").dimensions(), (8, 6));
            return;
        }
        let error = load_rgb(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot read image (permission denied): {}", path.display())
        );
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = Vec::new();
        chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        let mut covered = kind.to_vec();
        covered.extend_from_slice(data);
        chunk.extend_from_slice(&crc32fast::hash(&covered).to_be_bytes());
        chunk
    }

    /// A PNG that declares `width` x `height` RGB pixels but holds almost no data.
    fn bomb_png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        // 8 bits per sample, colour type 2 (RGB), deflate, adaptive filter, no interlace.
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        bytes.extend(png_chunk(b"IHDR", &ihdr));
        // A zlib stream with one empty stored block: valid, and far too short.
        bytes.extend(png_chunk(
            b"IDAT",
            &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF],
        ));
        bytes.extend(png_chunk(b"IEND", &[]));
        bytes
    }

    #[test]
    fn decompression_bomb_is_refused_quickly() {
        let dir = temp();
        let path = dir.path().join("bomb.png");
        std::fs::write(&path, bomb_png(100_000, 100_000)).expect("write");
        let start = Instant::now();
        let error = load_rgb(&path).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert!(
            matches!(error, ImageLoadError::TooLarge { .. }),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(text.contains("100000 x 100000"), "{text}");
        assert!(text.ends_with(&path.display().to_string()), "{text}");
    }

    #[test]
    fn image_within_side_limit_but_over_memory_budget_is_refused() {
        let dir = temp();
        let path = dir.path().join("wide.png");
        // 16384 x 16384 RGB is 768 MiB decoded.
        std::fs::write(&path, bomb_png(16_384, 16_384)).expect("write");
        let error = load_rgb(&path).unwrap_err();
        assert!(
            matches!(error, ImageLoadError::TooLarge { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("768 MiB"), "{error}");
    }

    #[test]
    fn small_crafted_png_with_missing_data_is_a_decode_error() {
        let dir = temp();
        let path = dir.path().join("short.png");
        std::fs::write(&path, bomb_png(4, 4)).expect("write");
        let error = load_rgb(&path).unwrap_err();
        assert!(matches!(error, ImageLoadError::Decode { .. }), "{error:?}");
    }

    /// A noisy 32 x 24 JPEG, big enough to have real entropy-coded data to cut.
    fn noisy_jpeg() -> Vec<u8> {
        let mut rng = crate::core::rng::SplitMix64::new(3);
        let image = RgbImage::from_fn(32, 24, |_, _| {
            let v = rng.next_u64().to_le_bytes();
            Rgb([v[0], v[1], v[2]])
        });
        let mut bytes = Vec::new();
        image
            .write_to(&mut io::Cursor::new(&mut bytes), ImageFormat::Jpeg)
            .expect("encode");
        bytes
    }

    #[test]
    fn truncated_jpeg_is_a_decode_error_wherever_it_is_cut() {
        let whole = noisy_jpeg();
        assert!(decode_rgb(&whole, Path::new("whole.jpg")).is_ok());
        // Every cut, down to the last byte of the end marker: the JPEG decoder itself
        // accepts most of these and invents the missing pixels.
        for len in 2..whole.len() {
            let path = PathBuf::from(format!("cut{len}.jpg"));
            let error = decode_rgb(&whole[..len], &path).unwrap_err();
            assert!(matches!(error, ImageLoadError::Decode { .. }), "{error:?}");
            assert!(
                error.to_string().ends_with(&format!(": cut{len}.jpg")),
                "{error}"
            );
        }
    }

    #[test]
    fn truncated_jpeg_file_says_it_is_truncated() {
        let dir = temp();
        let path = dir.path().join("cut.jpg");
        let whole = noisy_jpeg();
        std::fs::write(&path, &whole[..whole.len() * 2 / 3]).expect("write");
        let error = load_rgb(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot decode image: the file is truncated (the JPEG data ends before its \
                 end marker): {}",
                path.display()
            )
        );
    }

    #[test]
    fn jpeg_with_bytes_after_its_end_marker_loads() {
        // Cameras and editors append data (a second picture, padding) after the marker.
        let mut bytes = noisy_jpeg();
        bytes.extend_from_slice(b"\0\0trailing bytes\xFF");
        assert_eq!(
            decode_rgb(&bytes, Path::new("tail.jpg"))
                .expect("decode")
                .dimensions(),
            (32, 24)
        );
    }

    #[test]
    fn end_marker_of_an_embedded_thumbnail_does_not_count() {
        let whole = noisy_jpeg();
        // An APP1 segment (where EXIF keeps its thumbnail) holding a complete tiny JPEG,
        // inserted after SOI, then the main image cut short.
        let thumbnail = [0xFF, 0xD8, 0xFF, 0xD9];
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 2 + thumbnail.len() as u8];
        bytes.extend_from_slice(&thumbnail);
        bytes.extend_from_slice(&whole[2..]);
        assert!(jpeg_reaches_end(&bytes));
        assert!(decode_rgb(&bytes, Path::new("exif.jpg")).is_ok());
        let cut = &bytes[..bytes.len() - 100];
        assert!(!jpeg_reaches_end(cut));
    }

    #[test]
    fn jpeg_end_walk_handles_stuffing_restarts_and_bad_lengths() {
        // SOI, a scan header, entropy data with a stuffed FF 00, a restart marker, EOI.
        let scan = [
            0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF,
            0xFF, 0xD9,
        ];
        assert!(jpeg_reaches_end(&scan));
        assert!(!jpeg_reaches_end(&scan[..scan.len() - 1]));
        // A segment length pointing past the end, or too short to count itself.
        assert!(!jpeg_reaches_end(&[
            0xFF, 0xD8, 0xFF, 0xE0, 0x40, 0x00, 0xFF, 0xD9
        ]));
        assert!(jpeg_reaches_end(&[
            0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00, 0xFF, 0xD9
        ]));
        assert!(!jpeg_reaches_end(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]));
        assert!(!jpeg_reaches_end(&[0xFF, 0xD8, 0xFF]));
        // Not a JPEG at all: for the decoder to refuse.
        assert!(jpeg_reaches_end(b"GIF89a"));
    }

    #[test]
    fn decode_rgb_matches_load_rgb() {
        let dir = temp();
        let path = dir.path().join("rgb.png");
        write_test_png(&path);
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(
            decode_rgb(&bytes, &path).expect("decode"),
            load_rgb(&path).expect("load")
        );
        // Contents that no decoder recognises fall back to the extension's format.
        let error = decode_rgb(b"plain text", Path::new("a.png")).unwrap_err();
        assert!(error.to_string().contains("Png"), "{error}");
        let error = decode_rgb(b"", Path::new("a.png")).unwrap_err();
        assert!(matches!(error, ImageLoadError::Empty { .. }), "{error:?}");
    }

    #[cfg(unix)]
    #[test]
    fn file_name_that_is_not_utf8_is_refused_by_name() {
        use std::os::unix::ffi::OsStrExt;
        let dir = temp();
        let path = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xE9.png"));
        write_test_png(&path);
        let error = load_rgb(&path).unwrap_err();
        assert!(
            matches!(error, ImageLoadError::NonUtf8Name { .. }),
            "{error:?}"
        );
        assert_eq!(error.path(), path);
        let text = error.to_string();
        assert!(text.contains("not valid UTF-8"), "{text}");
        assert!(text.ends_with("caf\\xE9.png"), "{text}");
        assert!(load_mask(&path).is_err());
    }

    #[test]
    fn file_over_the_size_limit_is_refused_before_reading() {
        let dir = temp();
        let path = dir.path().join("huge.png");
        // A sparse file: no disk space, no time.
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(MAX_FILE_BYTES + 1).expect("set_len");
        let start = Instant::now();
        let error = load_rgb(&path).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(
            matches!(error, ImageLoadError::TooLarge { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "image too large (the file has 513 MiB; at most 512 MiB): {}",
                path.display()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loop_is_an_io_error_saying_so() {
        let dir = temp();
        let path = dir.path().join("loop.png");
        std::os::unix::fs::symlink(&path, &path).expect("link");
        let error = load_rgb(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read image (too many levels of symbolic links): {}",
                path.display()
            )
        );
    }

    #[test]
    fn decoder_panic_is_an_error_naming_the_file() {
        // Found by fuzz/ image_load: zune-jpeg 0.5.15 unwraps `None` in its AVX2 IDCT on
        // this malformed JPEG (upstream etemesi254/zune-image#361). The scalar IDCT of a
        // machine without AVX2 may refuse it differently; either way it is an error.
        let bytes = include_bytes!("../../tests/data/fuzz/zune_jpeg_idct_panic.jpg");
        let error = decode_rgb(bytes, Path::new("idct.jpg")).unwrap_err();
        assert!(matches!(error, ImageLoadError::Decode { .. }), "{error:?}");
        assert!(error.to_string().ends_with(": idct.jpg"), "{error}");
    }

    #[test]
    fn png_palette_of_broken_colours_is_a_decode_error() {
        // Found by fuzz/ image_load: a PLTE chunk of 2 bytes past whole colours made
        // png 0.18.1 panic (image-rs/image-png#694).
        let bytes = include_bytes!("../../tests/data/fuzz/png_plte_panic.png");
        let error = decode_rgb(bytes, Path::new("plte.png")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot decode image: the palette (PLTE chunk) is not a whole number of RGB \
             colours: plte.png"
        );
        // The walk itself: whole palettes pass; a cut chunk header, or a chunk that runs
        // past the end, is left to the decoder.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(png_chunk(b"PLTE", &[1, 2, 3, 4, 5, 6]));
        assert!(png_palette_is_whole(&png));
        png.extend(png_chunk(b"PLTE", &[1, 2, 3, 4]));
        assert!(!png_palette_is_whole(&png));
        assert!(png_palette_is_whole(&png[..png.len() - 10]));
        assert!(png_palette_is_whole(b"GIF89a"));
        let mut wide = b"\x89PNG\r\n\x1a\n".to_vec();
        wide.extend_from_slice(&u32::MAX.to_be_bytes());
        wide.extend_from_slice(b"IDAT");
        assert!(png_palette_is_whole(&wide));
    }

    #[test]
    fn io_reasons_are_short_and_lower_case() {
        assert_eq!(
            io_reason(&io::Error::from(io::ErrorKind::NotFound)),
            "not found"
        );
        assert_eq!(
            io_reason(&io::Error::other("Disk on fire (os error 99)")),
            "disk on fire"
        );
        assert_eq!(io_reason(&io::Error::other("Odd (case)")), "odd (case)");
        assert_eq!(io_reason(&io::Error::other("")), "unknown error");
    }
}
