//! The line's files: the journal's and the log's text, moves and copies made durable, the
//! log of an older version kept aside, and the recent-good folder.

use crate::core::atomic_file::sync_dir;
use crate::core::image_io::is_image_path;
use crate::core::journal::LOG_HEADER;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The parts in a recent-good folder, oldest first (by the part number they start with).
pub fn recent_good_parts(dir: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_name()?.to_str()?.to_owned();
            let part = name.split_once('-')?.0.parse().ok()?;
            (is_image_path(&path) && !name.starts_with('.')).then_some((part, path))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, p)| p).collect()
}

/// Removes the oldest parts of a recent-good folder beyond `keep`.
pub(super) fn prune_recent_good(dir: &Path, keep: usize) -> Result<()> {
    let parts = recent_good_parts(dir);
    for old in parts.iter().take(parts.len().saturating_sub(keep)) {
        std::fs::remove_file(old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    Ok(())
}

/// A log whose header is not this version's is renamed (`log.<n>.csv`) so that its rows
/// are kept and the new log's columns are one; returns its new name.
pub(super) fn keep_old_log(path: &Path, text: &str) -> Result<Option<PathBuf>> {
    match text.lines().next() {
        None => return Ok(None),
        Some(header) if header.trim_end() == LOG_HEADER => return Ok(None),
        Some(_) => {}
    }
    let kept = (1..)
        .map(|n| path.with_extension(format!("{n}.csv")))
        .find(|p| !p.exists())
        .expect("some number is free");
    std::fs::rename(path, &kept)
        .with_context(|| format!("cannot rename {} to {}", path.display(), kept.display()))?;
    Ok(Some(kept))
}

/// The text of `path` (lossy UTF-8), or nothing when it does not exist.
pub(super) fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)
                .with_context(|| format!("cannot read {}", path.display()))?;
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    Ok(text)
}

/// Opens `path` for appending after its first `len` bytes (what follows is cut off).
pub(super) fn open_append(path: &Path, len: u64) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) != len {
        file.set_len(len)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot repair {}", path.display()))?;
    }
    Ok(file)
}

/// A file's modification time in nanoseconds since 1970 (0 when unknown).
pub(super) fn mtime_ns_of(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Renames `src` to `dst` and makes both folders' entries durable; across file systems,
/// copies (synced) and then removes the source.
pub(super) fn move_synced(src: &Path, dst: &Path) -> Result<()> {
    match std::fs::rename(src, dst) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: another file system.
            copy_synced(src, dst)?;
            std::fs::remove_file(src)
                .with_context(|| format!("cannot remove {}", src.display()))?;
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot move {} to {}", src.display(), dst.display()));
        }
    }
    for dir in [dst.parent(), src.parent()].into_iter().flatten() {
        sync_dir(dir);
    }
    Ok(())
}

/// Copies `src` to `dst` through a synced temporary file and a rename.
pub(super) fn copy_synced(src: &Path, dst: &Path) -> Result<()> {
    let bytes = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
    crate::core::atomic_file::write_atomic(dst, &bytes)
        .with_context(|| format!("cannot write {}", dst.display()))?;
    Ok(())
}
