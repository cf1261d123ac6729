//! Decoding image files from disk into 8-bit RGB images and 8-bit masks.
//!
//! Every failure is an [`ImageLoadError`] that names the file; nothing here panics on bad
//! input. Decoding runs under [`image::Limits`] so a small file that declares an enormous
//! image (a decompression bomb) is refused before its pixels are allocated.

use image::{DynamicImage, GrayImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};
use std::io;
use std::path::{Path, PathBuf};

/// File extensions (lower case, without the dot) that are treated as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// The largest accepted width and the largest accepted height, in pixels.
pub const MAX_IMAGE_SIDE_PX: u32 = 16_384;

/// The most memory one decode may allocate for its pixels, in bytes (512 MiB).
pub const MAX_DECODE_BYTES: u64 = 512 * 1024 * 1024;

/// Why an image or mask file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageLoadError {
    /// The file could not be opened or read (missing, permission denied, I/O failure).
    ///
    /// The I/O error is kept in `error` but is deliberately not the error's `source`: its
    /// reason is already in the message, and chaining it would print it twice and push the
    /// path away from the end of the line.
    #[error("cannot read image ({}): {}", io_reason(error), path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// What the operating system reported.
        error: io::Error,
    },
    /// The path is a folder or some other thing that is not a regular file.
    #[error("cannot read image (not a file): {}", path.display())]
    NotAFile {
        /// The path that is not a file.
        path: PathBuf,
    },
    /// The file has zero bytes.
    #[error("cannot decode image: the file is empty: {}", path.display())]
    Empty {
        /// The empty file.
        path: PathBuf,
    },
    /// The contents are not a complete image in a supported format (unknown format, a text
    /// file with an image extension, a truncated or corrupt file).
    #[error("cannot decode image: {message}: {}", path.display())]
    Decode {
        /// The file that could not be decoded.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },
    /// The image is larger than [`MAX_IMAGE_SIDE_PX`] on a side or would need more than
    /// [`MAX_DECODE_BYTES`] to decode.
    #[error("image too large ({reason}): {}", path.display())]
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
            | ImageLoadError::Empty { path }
            | ImageLoadError::Decode { path, .. }
            | ImageLoadError::TooLarge { path, .. } => path,
        }
    }
}

/// A short lower-case reason for an I/O error, e.g. "permission denied".
fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "not found".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::UnexpectedEof => "unexpected end of file".to_owned(),
        _ => error.to_string(),
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
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageLoadError> {
    Ok(decode(path)?.to_rgb8())
}

/// Loads a ground-truth mask of any supported format as 8-bit grey.
///
/// A pixel is defective when any of its colour channels is nonzero (alpha is ignored). The
/// returned level is the largest channel scaled to 8 bits, but never rounded down to 0, so
/// a nonzero pixel of a 16-bit or coloured mask stays nonzero.
pub fn load_mask(path: &Path) -> Result<GrayImage, ImageLoadError> {
    let rgb16 = decode(path)?.to_rgb16();
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

/// Opens, checks and decodes one file under the size limits.
fn decode(path: &Path) -> Result<DynamicImage, ImageLoadError> {
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
    if metadata.len() == 0 {
        return Err(ImageLoadError::Empty {
            path: path.to_owned(),
        });
    }

    let mut reader = ImageReader::open(path)
        .map_err(io_error)?
        .with_guessed_format()
        .map_err(io_error)?;
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

    // The decoders are meant never to panic, but they parse untrusted bytes; a panic here
    // would take down the worker thread that asked for the image, so it becomes an error.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        DynamicImage::from_decoder(decoder)
    })) {
        Ok(decoded) => decoded.map_err(|error| from_image_error(path, error)),
        Err(_) => Err(ImageLoadError::Decode {
            path: path.to_owned(),
            message: "the decoder failed unexpectedly".to_owned(),
        }),
    }
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

/// A decoder's message on one line, without the quotes and the full stop some add, so
/// it reads well before the `: PATH` that follows it.
fn tidy_message(message: &str) -> String {
    message
        .replace("\\n", "; ")
        .replace('\n', "; ")
        .replace('"', "")
        .trim()
        .trim_end_matches('.')
        .to_owned()
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
            // Running as root: permissions do not stop reading, so there is nothing to test.
            return;
        }
        let error = load_rgb(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot read image (permission denied): {}", path.display())
        );
    }

    /// The CRC-32 (IEEE, reflected, polynomial 0xEDB88320) that PNG chunks carry.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = Vec::new();
        chunk.extend_from_slice(&(data.len() as u32).to_be_bytes());
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        let mut covered = kind.to_vec();
        covered.extend_from_slice(data);
        chunk.extend_from_slice(&crc32(&covered).to_be_bytes());
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
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // The CRC of an empty IEND chunk, as found at the end of every PNG.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
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
}
