//! Downloads a file over HTTP(S) and checks its SHA-256 before it appears at its path.
//!
//! The body streams into `<dest>.part` beside the destination while it is hashed, so a
//! half-finished or corrupt download never sits where the weights are expected: only a
//! file whose hash matches is synced and renamed into place.

use crate::core::atomic_file::sync_dir;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// torchvision's official ImageNet weights for AlexNet (`features` + `classifier`), a
/// pickled `state_dict` of about 233 MiB. Its name carries the first 8 hex digits of its
/// SHA-256 (see [`torchvision_hash_prefix`]).
pub const ALEXNET_URL: &str = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth";

/// How long to wait for a connection, and for each read once connected. There is no
/// limit on the whole download, which may be slow but steady.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const BUFFER_BYTES: usize = 64 * 1024;

/// Why a download did not produce a verified file. The URL or the path comes last.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The expected hash is not 1 to 64 hex digits.
    #[error("expected SHA-256 `{prefix}` is not 1 to 64 hex digits: {url}")]
    BadPrefix {
        /// The prefix as given.
        prefix: String,
        /// The URL that was to be downloaded.
        url: String,
    },
    /// The request failed: no connection, TLS, or an HTTP error status such as 404.
    #[error("download failed ({source}): {url}")]
    Http {
        /// The underlying error (`ureq::Error::StatusCode(404)` for a missing file).
        source: Box<ureq::Error>,
        /// The URL.
        url: String,
    },
    /// The connection failed while the body was streaming.
    #[error("download interrupted ({source}): {url}")]
    Interrupted {
        /// The underlying error.
        source: io::Error,
        /// The URL.
        url: String,
    },
    /// A local file could not be written, synced or renamed.
    #[error("cannot write the download ({source}): {}", .path.display())]
    Write {
        /// The underlying error.
        source: io::Error,
        /// The file or directory.
        path: PathBuf,
    },
    /// The downloaded bytes do not have the expected hash; nothing was kept.
    #[error("downloaded file has SHA-256 {actual}, expected one starting with {expected}: {url}")]
    Checksum {
        /// The expected hash or hash prefix, lowercase.
        expected: String,
        /// The full SHA-256 of what was received, lowercase hex.
        actual: String,
        /// The URL.
        url: String,
    },
}

/// Downloads `url` to `dest`, which appears only if the SHA-256 of the bytes starts with
/// `sha256_prefix` (the full 64 hex digits, or a prefix such as torchvision's 8; case is
/// ignored).
///
/// The body is written to `dest.with_extension("part")` (its directory is created if
/// needed), hashed on the way, synced, and renamed over `dest`. On any error the partial
/// file is removed and `dest` is left as it was. `progress` is called with the bytes
/// received so far and the total size when the server announces it.
///
/// # Errors
/// See [`DownloadError`]: an HTTP error status such as 404 is [`DownloadError::Http`], a
/// hash mismatch is [`DownloadError::Checksum`].
pub fn download_verified(
    url: &str,
    dest: &Path,
    sha256_prefix: &str,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<(), DownloadError> {
    let expected = sha256_prefix.to_ascii_lowercase();
    if expected.is_empty()
        || expected.len() > 64
        || !expected.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(DownloadError::BadPrefix {
            prefix: sha256_prefix.to_owned(),
            url: url.to_owned(),
        });
    }
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DownloadError::Write { source, path }
    };
    let dir = dest.parent().filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir).map_err(write_error(dir))?;
    }

    let part = dest.with_extension("part");
    let actual = match fetch(url, &part, progress) {
        Ok(actual) => actual,
        Err(error) => {
            // Best effort: the download error is the one worth reporting.
            let _ = fs::remove_file(&part);
            return Err(error);
        }
    };
    if !actual.starts_with(&expected) {
        fs::remove_file(&part).map_err(write_error(&part))?;
        return Err(DownloadError::Checksum {
            expected,
            actual,
            url: url.to_owned(),
        });
    }
    fs::rename(&part, dest).map_err(write_error(dest))?;
    if let Some(dir) = dir {
        sync_dir(dir);
    }
    Ok(())
}

/// Streams `url` into `part`, syncs it, and returns the lowercase hex SHA-256.
fn fetch(
    url: &str,
    part: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<String, DownloadError> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .build(),
    );
    let mut response = agent
        .get(url)
        .call()
        .map_err(|source| DownloadError::Http {
            source: Box::new(source),
            url: url.to_owned(),
        })?;
    let total = response.body().content_length();
    let mut body = response.body_mut().as_reader();

    let write_error = |source| DownloadError::Write {
        source,
        path: part.to_path_buf(),
    };
    let mut file = File::create(part).map_err(write_error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER_BYTES];
    let mut received = 0u64;
    progress(received, total);
    loop {
        let len = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(len) => len,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DownloadError::Interrupted {
                    source,
                    url: url.to_owned(),
                });
            }
        };
        hasher.update(&buffer[..len]);
        file.write_all(&buffer[..len]).map_err(write_error)?;
        received += len as u64;
        progress(received, total);
    }
    file.sync_all().map_err(write_error)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The lowercase hex SHA-256 of a file's contents.
///
/// # Errors
/// Any error opening or reading the file.
pub fn sha256_file(path: &Path) -> Result<String, io::Error> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER_BYTES];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(len) => hasher.update(&buffer[..len]),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The hash prefix torchvision puts in a weights file name: the hex digits between the
/// first `-` that is followed by hex digits and a `.`, as `torch.hub` finds them (e.g.
/// `"7be5be79"` in `"alexnet-owt-7be5be79.pth"`). Only the last path component is looked
/// at, so a URL works too.
pub fn torchvision_hash_prefix(file_name: &str) -> Option<&str> {
    let name = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    name.match_indices('-').find_map(|(dash, _)| {
        let rest = &name[dash + 1..];
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .count();
        (len > 0 && rest[len..].starts_with('.')).then(|| &rest[..len])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::net::{TcpListener, TcpStream};
    use std::thread::JoinHandle;
    use std::time::Instant;

    /// A one-file HTTP/1.1 server on 127.0.0.1 that answers `connections` requests (200
    /// with `body` for `/file`, 404 otherwise) and then ends, or gives up after 20 s.
    fn serve(body: Vec<u8>, connections: usize) -> (String, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::Builder::new()
            .name("test-http".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut served = 0;
                while served < connections && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            // A failed exchange shows up as an error in the client.
                            let _ = answer(stream, &body);
                            served += 1;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
            .unwrap();
        (base, handle)
    }

    fn answer(stream: TcpStream, body: &[u8]) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = io::BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("");
        let (status, body) = if path == "/file" {
            ("200 OK", body)
        } else {
            ("404 Not Found", &b"not found"[..])
        };
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        stream.write_all(body)?;
        stream.flush()?;
        stream.shutdown(std::net::Shutdown::Write)
    }

    fn test_body() -> Vec<u8> {
        (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect()
    }

    fn hex_sha256(bytes: &[u8]) -> String {
        format!("{:x}", Sha256::digest(bytes))
    }

    #[test]
    fn downloads_and_verifies_full_hash_and_prefix() {
        let body = test_body();
        let hash = hex_sha256(&body);
        let (base, server) = serve(body.clone(), 2);
        let dir = tempfile::tempdir().unwrap();

        let dest = dir.path().join("weights").join("model-full.pth");
        let mut calls = Vec::new();
        download_verified(
            &format!("{base}/file"),
            &dest,
            &hash.to_uppercase(),
            &mut |done, total| {
                calls.push((done, total));
            },
        )
        .unwrap();
        assert_eq!(fs::read(&dest).unwrap(), body);
        assert_eq!(sha256_file(&dest).unwrap(), hash);
        let len = body.len() as u64;
        assert_eq!(calls.first(), Some(&(0, Some(len))));
        assert_eq!(calls.last(), Some(&(len, Some(len))));
        assert!(!dest.with_extension("part").exists());

        let dest = dir.path().join(format!("model-{}.pth", &hash[..8]));
        let prefix = torchvision_hash_prefix(dest.to_str().unwrap()).unwrap();
        download_verified(&format!("{base}/file"), &dest, prefix, &mut |_, _| {}).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), body);
        server.join().unwrap();
    }

    #[test]
    fn wrong_hash_leaves_no_file() {
        let body = test_body();
        let hash = hex_sha256(&body);
        let wrong = if hash.starts_with('0') { "1" } else { "0" };
        let (base, server) = serve(body, 1);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model.pth");
        let url = format!("{base}/file");
        let error = download_verified(&url, &dest, wrong, &mut |_, _| {}).unwrap_err();
        match &error {
            DownloadError::Checksum {
                expected,
                actual,
                url: at,
            } => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, &hash);
                assert_eq!(at, &url);
            }
            other => panic!("expected a checksum error, got {other}"),
        }
        assert!(error.to_string().ends_with(&url));
        assert!(!dest.exists());
        assert!(!dest.with_extension("part").exists());
        server.join().unwrap();
    }

    #[test]
    fn http_404_names_the_url() {
        let (base, server) = serve(Vec::new(), 1);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model.pth");
        let url = format!("{base}/missing.pth");
        let error = download_verified(&url, &dest, "abcd", &mut |_, _| {}).unwrap_err();
        assert!(matches!(error, DownloadError::Http { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains("404") && message.ends_with(&url),
            "{message}"
        );
        assert!(!dest.exists() && !dest.with_extension("part").exists());
        server.join().unwrap();
    }

    #[test]
    fn rejects_a_prefix_that_is_not_hex() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model.pth");
        for prefix in ["", "xyz", &"a".repeat(65)] {
            let error = download_verified("http://127.0.0.1:9/", &dest, prefix, &mut |_, _| {});
            assert!(matches!(error, Err(DownloadError::BadPrefix { .. })));
        }
    }

    #[test]
    fn hashes_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn finds_torchvision_hash_prefixes() {
        assert_eq!(
            torchvision_hash_prefix("alexnet-owt-7be5be79.pth"),
            Some("7be5be79")
        );
        assert_eq!(torchvision_hash_prefix(ALEXNET_URL), Some("7be5be79"));
        assert_eq!(
            torchvision_hash_prefix("resnet18-f37072fd.pth"),
            Some("f37072fd")
        );
        assert_eq!(torchvision_hash_prefix("dir-0abc/model.pth"), None);
        assert_eq!(torchvision_hash_prefix("model.pth"), None);
        assert_eq!(torchvision_hash_prefix("model-.pth"), None);
        assert_eq!(torchvision_hash_prefix("model-XYZ.pth"), None);
    }
}
