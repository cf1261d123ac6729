//! Broken and odd image files, written for the tests of what the command line and the
//! workstation do with them.

use super::{test_data, texture};
use image::{ImageBuffer, LumaA, Rgb, RgbImage};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What must become of one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// Loads as RGB with this width and height, and gets a score.
    Loads(u32, u32),
    /// Skipped, with a message that contains this text and names the file.
    Skipped(&'static str),
}

/// One odd or broken input written by [`write_cases`].
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case is, for assertion messages.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What must become of it.
    pub expect: Expect,
}

/// How the file without read permission behaves for whoever reads it.
pub fn locked_expectation(readable: bool) -> Expect {
    if readable {
        Expect::Loads(8, 6)
    } else {
        Expect::Skipped("permission denied")
    }
}

/// A small RGB image with a different colour in every pixel.
pub fn small_rgb() -> RgbImage {
    RgbImage::from_fn(8, 6, |x, y| Rgb([x as u8 * 30, y as u8 * 40, 90]))
}

pub fn png_bytes(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .expect("encode png");
    bytes
}

pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(kind);
    chunk.extend_from_slice(data);
    let mut covered = kind.to_vec();
    covered.extend_from_slice(data);
    chunk.extend_from_slice(&crc32fast::hash(&covered).to_be_bytes());
    chunk
}

/// A 57-byte PNG that declares 100000 x 100000 RGB pixels (28 GiB decoded).
pub fn bomb_png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = 100_000u32.to_be_bytes().to_vec();
    header.extend_from_slice(&100_000u32.to_be_bytes());
    // 8 bits per sample, RGB, deflate, adaptive filtering, no interlace.
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    bytes.extend(png_chunk(b"IHDR", &header));
    // A valid zlib stream holding one empty stored block.
    bytes.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF],
    ));
    bytes.extend(png_chunk(b"IEND", &[]));
    bytes
}

/// Writes every case into `dir` (which must exist) and returns them. `locked_readable`
/// says whether the reader of the file without read permission can read it anyway.
pub fn write_cases(dir: &Path, locked_readable: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |what, name: &[u8], expect, contents: Option<&[u8]>| {
        let path = dir.join(OsStr::from_bytes(name));
        if let Some(bytes) = contents {
            std::fs::write(&path, bytes).expect("write case");
        }
        cases.push(Case { what, path, expect });
    };

    add(
        "zero-byte file",
        b"empty.png",
        Expect::Skipped("the file is empty"),
        Some(b""),
    );
    let whole_png = png_bytes(&texture(7, false));
    add(
        "truncated PNG",
        b"cut.png",
        Expect::Skipped("cannot decode image"),
        Some(&whole_png[..whole_png.len() / 2]),
    );
    let mut whole_jpeg = Vec::new();
    texture(8, false)
        .write_to(
            &mut std::io::Cursor::new(&mut whole_jpeg),
            image::ImageFormat::Jpeg,
        )
        .expect("encode jpeg");
    add(
        "truncated JPEG",
        b"cut.jpg",
        Expect::Skipped("the file is truncated"),
        Some(&whole_jpeg[..whole_jpeg.len() * 3 / 4]),
    );
    add(
        "text file named .png",
        b"notes.png",
        Expect::Skipped("cannot decode image"),
        Some(b"Shift 2, line 4: camera cleaned.\n"),
    );
    add(
        "decompression bomb",
        b"bomb.png",
        Expect::Skipped("100000 x 100000"),
        Some(&bomb_png()),
    );
    add(
        "file name that is not UTF-8",
        b"caf\xE9.png",
        Expect::Skipped("not valid UTF-8"),
        Some(&png_bytes(&small_rgb())),
    );

    // Odd but valid formats.
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> = ImageBuffer::from_fn(20, 10, |x, y| {
        Rgb([x as u16 * 3000, y as u16 * 6000, 65_535])
    });
    rgb16.save(dir.join("rgb16.png")).expect("save 16-bit");
    add("16-bit PNG", b"rgb16.png", Expect::Loads(20, 10), None);
    std::fs::copy(test_data("cmyk.jpg"), dir.join("cmyk.jpg")).expect("copy cmyk");
    add("CMYK JPEG", b"cmyk.jpg", Expect::Loads(16, 16), None);
    let grey_alpha: ImageBuffer<LumaA<u8>, Vec<u8>> =
        ImageBuffer::from_fn(12, 9, |x, y| LumaA([(x * 20 + y) as u8, (y * 25) as u8]));
    grey_alpha.save(dir.join("grey_alpha.png")).expect("save");
    add(
        "grey + alpha PNG",
        b"grey_alpha.png",
        Expect::Loads(12, 9),
        None,
    );
    RgbImage::from_pixel(1, 1, Rgb([200, 120, 40]))
        .save(dir.join("one_pixel.png"))
        .expect("save");
    add(
        "1 x 1 pixel PNG",
        b"one_pixel.png",
        Expect::Loads(1, 1),
        None,
    );

    // Things that are not plain readable files.
    let locked = dir.join("locked.png");
    small_rgb().save(&locked).expect("save");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    add(
        "file without read permission",
        b"locked.png",
        locked_expectation(locked_readable),
        None,
    );
    std::fs::create_dir(dir.join("x.png")).expect("mkdir");
    add(
        "folder named x.png",
        b"x.png",
        Expect::Skipped("not a file"),
        None,
    );
    std::os::unix::fs::symlink(dir.join("loop_a.png"), dir.join("loop_b.png")).expect("link");
    std::os::unix::fs::symlink(dir.join("loop_b.png"), dir.join("loop_a.png")).expect("link");
    add(
        "symbolic link loop",
        b"loop_a.png",
        Expect::Skipped("too many levels of symbolic links"),
        None,
    );
    add(
        "symbolic link loop",
        b"loop_b.png",
        Expect::Skipped("too many levels of symbolic links"),
        None,
    );
    cases
}

/// Whether this process reads files whatever their permissions (root, usually).
pub fn reads_locked_files(dir: &Path) -> bool {
    let path = dir.join("probe.txt");
    std::fs::write(&path, b"x").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let readable = std::fs::read(&path).is_ok();
    std::fs::remove_file(&path).expect("remove");
    readable
}

pub fn name_of(path: &Path) -> String {
    differnet::core::message::path_text(Path::new(path.file_name().expect("file name")))
}
