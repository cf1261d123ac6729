//! Bytes → `image_io::decode_rgb`, the decoding behind every image the program opens.
//!
//! The first byte picks the file name's extension, which decides the format when the
//! contents are not recognised. Whatever the bytes, the result must be an RGB image within
//! the size limits or a one-line error of bounded length that ends with the file's name.
//!
//! A panic is a crash, with one exception: zune-jpeg, the JPEG decoder of the `image`
//! crate, panics on some malformed files (an `unwrap` in its AVX2 IDCT, upstream issue
//! etemesi254/zune-image#361, open at 0.5.15, the newest release). `decode_rgb` catches
//! such a panic and reports "the decoder failed unexpectedly"; the hook below lets that
//! happen for panics raised inside zune-jpeg, so the fuzzer goes on and checks the error,
//! while a panic anywhere else still aborts as libFuzzer expects.

#![no_main]

use differnet_fuzz::core::image_io::{IMAGE_EXTENSIONS, MAX_IMAGE_SIDE_PX, decode_rgb};
use differnet_fuzz::core::message::MAX_QUOTED_CHARS;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::Once;

/// Source path fragment of the decoder whose panics `decode_rgb` is known to need to catch.
const TOLERATED: &str = "/zune-jpeg-";

fn tolerate_decoder_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // libfuzzer-sys's hook: print, then abort.
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let inside_decoder = info
                .location()
                .is_some_and(|location| location.file().contains(TOLERATED));
            if !inside_decoder {
                abort(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_decoder_panics();
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let extension = IMAGE_EXTENSIONS[usize::from(pick) % IMAGE_EXTENSIONS.len()];
    let path = PathBuf::from(format!("fuzz.{extension}"));
    match decode_rgb(bytes, &path) {
        Ok(image) => {
            let (width, height) = image.dimensions();
            assert!(width <= MAX_IMAGE_SIDE_PX && height <= MAX_IMAGE_SIDE_PX);
            assert_eq!(image.as_raw().len(), width as usize * height as usize * 3);
        }
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.ends_with(&format!(": fuzz.{extension}")),
                "{message}"
            );
            assert!(!message.contains(['\n', '\r']), "{message}");
            assert!(message.chars().count() <= 2 * MAX_QUOTED_CHARS, "{message}");
            assert_eq!(error.path(), path);
        }
    }
});
