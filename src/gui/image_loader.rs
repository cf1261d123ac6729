//! Images decoded off the UI thread and uploaded as textures a few per frame, so a folder
//! of hundreds of images never stalls the window.
//!
//! A decoder thread takes requests newest first (the thumbnails just scrolled into view
//! matter more than those scrolled past), shrinks each image to the requested side and
//! sends it back; the UI uploads a bounded number per frame and keeps the textures.

use crate::core::image_io::load_rgb;
use crate::core::protocol::Waker;
use crossbeam_channel::{Receiver, Sender, unbounded};
use egui::{ColorImage, TextureHandle, TextureOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Side in pixels of gallery thumbnails.
pub const THUMB_SIDE: u32 = 112;

/// Textures uploaded per frame at most.
const UPLOADS_PER_FRAME: usize = 8;

/// The state of one requested image.
pub enum Slot {
    /// Being decoded.
    Pending,
    /// Uploaded; with the original image size in pixels.
    Ready(TextureHandle, [u32; 2]),
    /// Could not be read; the reason.
    Failed(String),
}

/// A decode request: an image at most `max_side` pixels wide and high.
type Key = (PathBuf, u32);

/// A decoded image, or why it failed.
struct Decoded {
    key: Key,
    result: Result<(ColorImage, [u32; 2]), String>,
}

/// Decoded images as textures.
pub struct ImageLoader {
    requests: Sender<Key>,
    results: Receiver<Decoded>,
    slots: HashMap<Key, Slot>,
    spawn_error: Option<String>,
}

impl ImageLoader {
    /// Starts the decoder thread; it calls `waker` after each image.
    pub fn new(waker: Waker) -> Self {
        let (req_tx, req_rx) = unbounded::<Key>();
        let (res_tx, res_rx) = unbounded::<Decoded>();
        let spawned = std::thread::Builder::new()
            .name("differnet-images".into())
            .spawn(move || decode_loop(req_rx, res_tx, waker));
        Self {
            requests: req_tx,
            results: res_rx,
            slots: HashMap::new(),
            // Without the thread every request stays pending; the app says why.
            spawn_error: spawned
                .err()
                .map(|e| format!("cannot start the image decoder thread: {e}")),
        }
    }

    /// The image at `path` shrunk to at most `max_side`, requesting it when new.
    pub fn get(&mut self, path: &Path, max_side: u32) -> &Slot {
        let key = (path.to_path_buf(), max_side);
        if !self.slots.contains_key(&key) {
            let _ = self.requests.send(key.clone());
            self.slots.insert(key.clone(), Slot::Pending);
        }
        &self.slots[&key]
    }

    /// Uploads decoded images, a few per frame; returns whether more are waiting.
    pub fn upload(&mut self, ctx: &egui::Context) -> bool {
        for _ in 0..UPLOADS_PER_FRAME {
            let Ok(decoded) = self.results.try_recv() else {
                return false;
            };
            let slot = match decoded.result {
                Ok((image, size)) => {
                    let name = format!("{}@{}", decoded.key.0.display(), decoded.key.1);
                    Slot::Ready(ctx.load_texture(name, image, TextureOptions::LINEAR), size)
                }
                Err(reason) => Slot::Failed(reason),
            };
            self.slots.insert(decoded.key, slot);
        }
        !self.results.is_empty()
    }

    /// Why the decoder thread could not start, once (then `None`).
    pub fn take_error(&mut self) -> Option<String> {
        self.spawn_error.take()
    }

    /// Forgets every texture (a new data set).
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

/// Decodes requests, newest first, until the UI side goes away.
fn decode_loop(requests: Receiver<Key>, results: Sender<Decoded>, waker: Waker) {
    let mut stack: Vec<Key> = Vec::new();
    while let Ok(first) = requests.recv() {
        stack.push(first);
        stack.extend(requests.try_iter());
        while let Some(key) = stack.pop() {
            let result = decode(&key.0, key.1);
            if results.send(Decoded { key, result }).is_err() {
                return;
            }
            waker();
            stack.extend(requests.try_iter());
        }
    }
}

/// Decodes `path` and shrinks it to at most `max_side` pixels on its longer side.
fn decode(path: &Path, max_side: u32) -> Result<(ColorImage, [u32; 2]), String> {
    let img = load_rgb(path).map_err(|e| e.to_string())?;
    let (w, h) = img.dimensions();
    let img = if w.max(h) > max_side {
        image::imageops::thumbnail(
            &img,
            scaled(w, w.max(h), max_side),
            scaled(h, w.max(h), max_side),
        )
    } else {
        img
    };
    let size = [img.width() as usize, img.height() as usize];
    Ok((ColorImage::from_rgb(size, img.as_raw()), [w, h]))
}

/// `side * max_side / longest`, at least 1.
fn scaled(side: u32, longest: u32, max_side: u32) -> u32 {
    ((u64::from(side) * u64::from(max_side) / u64::from(longest.max(1))) as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_images_are_shrunk_keeping_their_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wide.png");
        image::RgbImage::new(400, 100).save(&p).unwrap();
        let (img, size) = decode(&p, 200).unwrap();
        assert_eq!(size, [400, 100]);
        assert_eq!(img.size, [200, 50]);
        assert!(decode(&dir.path().join("missing.png"), 10).is_err());
    }
}
