//! Atomic file writes: a reader, or the next run after a crash, sees the old file or the
//! new one, never a mix. Pure file handling, shared by the engine (model files) and the
//! front ends (CSV reports, heatmap images).
//!
//! Every write goes through its own temporary file (a unique name from `tempfile`), so two
//! threads of one process that write the same path at once (the folder-edits file while a
//! settings save runs, two model saves) each publish a whole version: the last rename wins.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` through a temporary file of its own in the same folder, flushed
/// to disk and renamed over the destination, then flushes the folder entry. On an error
/// the temporary file is removed and the destination is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    // A hidden name that says whose file it is; the random suffix makes it unique per write.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.to_string_lossy()))
        .suffix(".tmp")
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    // `persist` renames over the destination; on failure the temporary file is dropped,
    // which deletes it.
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(&dir);
    Ok(())
}

/// Makes a rename in `dir` durable where the platform allows it. Best effort: some file
/// systems cannot sync a folder, and the file itself is already synced and in place.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several threads write the same path many times, each a version of its own; every
    /// read in between sees one whole version, and no temporary file is left behind.
    #[test]
    fn concurrent_writes_of_one_path_never_mix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        const WRITERS: usize = 4;
        const ROUNDS: usize = 200;
        // Large enough that a shared temporary file would interleave the writers' bytes.
        let version = |w: usize, r: usize| -> Vec<u8> {
            let byte = b'a' + u8::try_from(w).unwrap();
            let mut v = vec![byte; 64 * 1024];
            v.extend_from_slice(format!("{w}:{r}").as_bytes());
            v
        };
        write_atomic(&path, &version(0, 0)).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let bytes = std::fs::read(&path).unwrap();
                    let first = bytes[0];
                    let body = &bytes[..64 * 1024];
                    assert!(body.iter().all(|b| *b == first), "a mix of two versions");
                    let tail = std::str::from_utf8(&bytes[64 * 1024..]).unwrap();
                    let (w, _) = tail.split_once(':').expect("a whole version's tail");
                    assert_eq!(usize::from(first - b'a'), w.parse::<usize>().unwrap());
                    reads += 1;
                }
                reads
            });
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let (path, version) = (&path, &version);
                    s.spawn(move || {
                        for r in 0..ROUNDS {
                            write_atomic(path, &version(w, r)).unwrap();
                        }
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("settings.json")]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.differnet");
        write_atomic(&path, b"old").unwrap();
        // A destination that is a folder cannot be replaced by a file.
        let blocked = dir.path().join("folder");
        std::fs::create_dir(&blocked).unwrap();
        std::fs::write(blocked.join("x"), b"x").unwrap();
        assert!(write_atomic(&blocked, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        left.sort();
        assert_eq!(left, vec!["folder", "model.differnet"]);
    }
}
