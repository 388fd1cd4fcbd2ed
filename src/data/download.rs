//! Downloads MNIST and Fashion-MNIST into a cache folder, verifying every file by SHA-256.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::raw::{DataError, Progress};

/// One file of a dataset and the SHA-256 of its exact published bytes.
pub struct RemoteFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// A downloadable dataset: the same files are served by each mirror, tried in order.
pub struct RemoteDataset {
    /// "mnist" or "fashion-mnist"; also the cache subfolder name.
    pub id: &'static str,
    /// Base URLs ending in '/'.
    pub mirrors: &'static [&'static str],
    pub files: &'static [RemoteFile],
}

// Checksums: tensorflow/datasets, tensorflow_datasets/url_checksums/mnist.txt and fashion_mnist.txt
// (URL, size, SHA-256 of the .gz as served). torchvision's MD5s are identical for the CVDF, OSSCI
// and original LeCun copies, so one SHA-256 covers every MNIST mirror.
pub const MNIST: RemoteDataset = RemoteDataset {
    id: "mnist",
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    files: &[
        RemoteFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        },
        RemoteFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        },
        RemoteFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        },
        RemoteFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ],
};

pub const FASHION_MNIST: RemoteDataset = RemoteDataset {
    id: "fashion-mnist",
    mirrors: &["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    files: &[
        RemoteFile {
            name: "train-images-idx3-ubyte.gz",
            sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        },
        RemoteFile {
            name: "train-labels-idx1-ubyte.gz",
            sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        },
        RemoteFile {
            name: "t10k-images-idx3-ubyte.gz",
            sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        },
        RemoteFile {
            name: "t10k-labels-idx1-ubyte.gz",
            sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ],
};

/// A response body larger than this is cut off: the largest real file is 26 MB, and a broken or
/// hostile server must not be able to fill the disk.
const MAX_DOWNLOAD: u64 = 256 << 20;
const COPY_CHUNK: usize = 64 << 10;

/// Gantry's folder in the user's cache, or `None` where the platform has no home.
pub fn user_cache_dir() -> Option<PathBuf> {
    Some(
        directories::ProjectDirs::from("", "", "gantry")?
            .cache_dir()
            .to_path_buf(),
    )
}

/// Cache dir: `<user cache>/gantry/datasets/<id>`.
pub fn default_cache_dir(id: &str) -> Option<PathBuf> {
    Some(user_cache_dir()?.join("datasets").join(id))
}

/// Ensures every file of `ds` is present and verified in `dir`, downloading missing ones from
/// the dataset's mirrors in order. Returns `dir`.
pub fn ensure_downloaded(ds: &RemoteDataset, dir: &Path, progress: Progress) -> Result<PathBuf, DataError> {
    let mirrors: Vec<String> = ds.mirrors.iter().map(|m| m.to_string()).collect();
    ensure_downloaded_from(ds, &mirrors, dir, progress)
}

/// [`ensure_downloaded`] with the mirror list given explicitly (base URLs ending in '/'), so
/// tests can point it at a local server.
///
/// Files already present with the right checksum are not fetched again. Each download streams to
/// `<name>.part` and is renamed into place only once its checksum matches, so an interrupted or
/// corrupt download never leaves a file that looks complete.
pub fn ensure_downloaded_from(
    ds: &RemoteDataset,
    mirrors: &[String],
    dir: &Path,
    progress: Progress,
) -> Result<PathBuf, DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError(format!("{}: cannot create folder: {e}", dir.display())))?;
    let mut agent: Option<ureq::Agent> = None;
    for file in ds.files {
        let path = dir.join(file.name);
        let existing = match File::open(&path) {
            Ok(f) => {
                let what = format!("verifying {}", file.name);
                let total = f.metadata().map_or(0, |m| m.len());
                let hash = copy_hashing(BufReader::new(f), std::io::sink(), &what, total, progress)
                    .map_err(|e| DataError(format!("{}: cannot read: {}", path.display(), e.io())))?;
                if hash == file.sha256 {
                    continue;
                }
                Some(hash)
            }
            Err(_) => None,
        };
        let agent = agent.get_or_insert_with(make_agent);
        let mut failures = Vec::new();
        if let Some(hash) = existing {
            failures.push(format!(
                "the existing {} has the wrong checksum (got {hash}, expected {})",
                path.display(),
                file.sha256
            ));
        }
        let mut done = false;
        for base in mirrors {
            let url = format!("{base}{}", file.name);
            match download(agent, &url, dir, file, progress) {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(Failure::Remote(reason)) => failures.push(reason),
                Err(Failure::Local(e)) => return Err(e),
            }
        }
        if !done {
            let names: Vec<&str> = ds.files.iter().map(|f| f.name).collect();
            return Err(DataError(format!(
                "could not download {}:\n  {}\nTo install {} by hand, download {} from one of \
                 those addresses and put them, still gzipped and with those names, in {}",
                file.name,
                failures.join("\n  "),
                ds.id,
                names.join(", "),
                dir.display()
            )));
        }
    }
    Ok(dir.to_path_buf())
}

fn make_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_resolve(Some(Duration::from_secs(15)))
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Why one mirror did not deliver: a remote problem (a line naming the URL) moves on to the next
/// mirror; a local one (disk full, folder not writable) would fail for every mirror and is
/// reported at once.
enum Failure {
    Remote(String),
    Local(DataError),
}

/// Fetches `url` into `<name>.part`, checks it, and renames it to `<name>`.
fn download(agent: &ureq::Agent, url: &str, dir: &Path, file: &RemoteFile, progress: Progress) -> Result<(), Failure> {
    let part = dir.join(format!("{}.part", file.name));
    let result = fetch_verified(agent, url, &part, file, progress);
    match &result {
        Ok(()) => std::fs::rename(&part, dir.join(file.name))
            .map_err(|e| Failure::Local(DataError(format!("{}: cannot move into place: {e}", part.display()))))?,
        Err(_) => {
            // Best effort: the reason already reported matters more than a leftover .part.
            let _ = std::fs::remove_file(&part);
        }
    }
    result
}

fn fetch_verified(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    file: &RemoteFile,
    progress: Progress,
) -> Result<(), Failure> {
    // Ask for the bytes as stored: a transparently decompressed body would fail the checksum.
    let response = agent
        .get(url)
        .header("Accept-Encoding", "identity")
        .call()
        .map_err(|e| Failure::Remote(format!("{url}: {e}")))?;
    let total = response.body().content_length().unwrap_or(0);
    let body = response.into_body().into_with_config().limit(MAX_DOWNLOAD).reader();
    let local = |e: std::io::Error| Failure::Local(DataError(format!("{}: cannot write: {e}", part.display())));
    let mut out = File::create(part).map_err(local)?;
    let what = format!("downloading {}", file.name);
    let hash = copy_hashing(body, &mut out, &what, total, progress).map_err(|e| match e {
        CopyError::Read(e) => Failure::Remote(format!("{url}: download interrupted: {e}")),
        CopyError::Write(e) => local(e),
    })?;
    // Flushed to disk before the rename, so a crash cannot leave a complete-looking empty file.
    out.sync_all().map_err(local)?;
    if hash != file.sha256 {
        return Err(Failure::Remote(format!(
            "checksum mismatch from {url}: got {hash} expected {}",
            file.sha256
        )));
    }
    Ok(())
}

/// Which side of a copy failed, since a read is the network's fault and a write is ours.
enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

impl CopyError {
    fn io(self) -> std::io::Error {
        match self {
            CopyError::Read(e) | CopyError::Write(e) => e,
        }
    }
}

/// Copies `from` into `to` while hashing and reporting progress; returns the lowercase hex SHA-256.
fn copy_hashing(
    mut from: impl Read,
    mut to: impl Write,
    what: &str,
    total: u64,
    progress: Progress,
) -> Result<String, CopyError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut done = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
        done += n as u64;
        progress(what, done, total);
    }
    to.flush().map_err(CopyError::Write)?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::super::idx::load_idx_dir;
    use super::super::idx::tests::{gzip, idx_bytes, IMAGES, LABELS};
    use super::*;
    use std::collections::HashMap;
    use std::io::BufRead;
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    fn quiet(_: &str, _: u64, _: u64) {}

    /// What the test server answers for a path.
    #[derive(Clone)]
    enum Reply {
        Body(Vec<u8>),
        /// Promises `claimed` bytes in Content-Length, sends `sent`, then closes.
        CutShort {
            claimed: usize,
            sent: Vec<u8>,
        },
    }

    /// A minimal HTTP/1.1 server on 127.0.0.1 that answers one request per connection and
    /// 404 for unknown paths. Dropping it stops the thread.
    struct Server {
        addr: SocketAddr,
        requests: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Server {
        fn start(routes: HashMap<String, Reply>) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let requests = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (count, halt) = (requests.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if halt.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = answer(stream, &routes);
                    }
                }
            });
            Server {
                addr,
                requests,
                stop,
                thread: Some(thread),
            }
        }

        fn url(&self, prefix: &str) -> String {
            format!("http://{}/{prefix}", self.addr)
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr); // wakes the blocking accept
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn answer(stream: TcpStream, routes: &HashMap<String, Reply>) -> std::io::Result<()> {
        let mut reader = std::io::BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut line = String::new();
        while reader.read_line(&mut line)? > 2 {
            line.clear();
        }
        let path = request_line.split(' ').nth(1).unwrap_or("");
        let mut stream = stream;
        let (claimed, body) = match routes.get(path) {
            Some(Reply::Body(body)) => (body.len(), body.clone()),
            Some(Reply::CutShort { claimed, sent }) => (*claimed, sent.clone()),
            None => {
                let msg = b"not found";
                write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    msg.len()
                )?;
                return stream.write_all(msg);
            }
        };
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {claimed}\r\nConnection: close\r\n\r\n"
        )?;
        stream.write_all(&body)?;
        stream.shutdown(std::net::Shutdown::Both)
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        copy_hashing(bytes, std::io::sink(), "", 0, &quiet)
            .map_err(CopyError::io)
            .unwrap()
    }

    /// Two small gzipped IDX files: three 2x2 images and their labels.
    fn payloads() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "train-images-idx3-ubyte.gz",
                gzip(&idx_bytes(IMAGES, &[3, 2, 2], &[9; 12])),
            ),
            ("train-labels-idx1-ubyte.gz", gzip(&idx_bytes(LABELS, &[3], &[0, 1, 2]))),
        ]
    }

    /// A dataset of `payloads` whose checksums are those of the given bytes, with `mirrors`.
    fn dataset(payloads: &[(&'static str, Vec<u8>)], mirrors: &[String]) -> RemoteDataset {
        let files: Vec<RemoteFile> = payloads
            .iter()
            .map(|(name, bytes)| RemoteFile {
                name,
                sha256: Box::leak(sha256_hex(bytes).into_boxed_str()),
            })
            .collect();
        let mirrors: Vec<&'static str> = mirrors
            .iter()
            .map(|m| &*Box::leak(m.clone().into_boxed_str()))
            .collect();
        RemoteDataset {
            id: "test-set",
            mirrors: Box::leak(mirrors.into_boxed_slice()),
            files: Box::leak(files.into_boxed_slice()),
        }
    }

    fn routes(prefix: &str, payloads: &[(&str, Reply)]) -> HashMap<String, Reply> {
        payloads
            .iter()
            .map(|(name, reply)| (format!("/{prefix}{name}"), reply.clone()))
            .collect()
    }

    fn served(payloads: &[(&'static str, Vec<u8>)]) -> Vec<(&'static str, Reply)> {
        payloads.iter().map(|(n, b)| (*n, Reply::Body(b.clone()))).collect()
    }

    /// Names in `dir`, sorted, to check nothing (not even a `.part`) was left behind.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn downloads_verifies_and_then_does_not_fetch_again() {
        let files = payloads();
        let server = Server::start(routes("m/", &served(&files)));
        let ds = dataset(&files, &[server.url("m/")]);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cache/test-set");
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |what: &str, done: u64, total: u64| {
            seen.lock().unwrap().push((what.to_string(), done, total));
        };

        assert_eq!(ensure_downloaded(&ds, &target, &progress).unwrap(), target);
        assert_eq!(server.requests(), 2);
        assert_eq!(listing(&target), [files[0].0, files[1].0]);
        let len = files[0].1.len() as u64;
        let seen = seen.into_inner().unwrap();
        assert!(seen.contains(&("downloading train-images-idx3-ubyte.gz".into(), len, len)));
        let raw = load_idx_dir(&target, &quiet).unwrap();
        assert_eq!((raw.count, raw.labels), (3, Some(vec![0, 1, 2])));

        ensure_downloaded(&ds, &target, &quiet).unwrap();
        assert_eq!(server.requests(), 2, "verified files must not be fetched again");
    }

    #[test]
    fn checksum_mismatch_leaves_no_file_behind() {
        let files = payloads();
        let ds = dataset(&files, &[]);
        let mut wrong = served(&files);
        wrong[0].1 = Reply::Body(b"tampered".to_vec());
        let server = Server::start(routes("", &wrong));
        let dir = tempfile::tempdir().unwrap();

        let err = ensure_downloaded_from(&ds, &[server.url("")], dir.path(), &quiet)
            .unwrap_err()
            .0;
        assert!(
            err.starts_with("could not download train-images-idx3-ubyte.gz:"),
            "{err}"
        );
        let expected = format!(
            "checksum mismatch from {}train-images-idx3-ubyte.gz: got {} expected {}",
            server.url(""),
            sha256_hex(b"tampered"),
            ds.files[0].sha256
        );
        assert!(err.contains(&expected), "{err}");
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }

    #[test]
    fn dropped_connection_fails_and_leaves_no_file_behind() {
        let files = payloads();
        let ds = dataset(&files, &[]);
        let mut cut = served(&files);
        cut[0].1 = Reply::CutShort {
            claimed: 1000,
            sent: vec![7; 100],
        };
        let server = Server::start(routes("", &cut));
        let dir = tempfile::tempdir().unwrap();

        let err = ensure_downloaded_from(&ds, &[server.url("")], dir.path(), &quiet)
            .unwrap_err()
            .0;
        assert!(
            err.contains(&format!("{}train-images-idx3-ubyte.gz: ", server.url(""))),
            "{err}"
        );
        assert!(err.contains("download interrupted"), "{err}");
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }

    #[test]
    fn falls_back_to_the_next_mirror_and_replaces_a_corrupt_file() {
        let files = payloads();
        let ds = dataset(&files, &[]);
        let server = Server::start(routes("good/", &served(&files)));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(files[1].0), b"stale").unwrap();

        let mirrors = [server.url("missing/"), server.url("good/")];
        ensure_downloaded_from(&ds, &mirrors, dir.path(), &quiet).unwrap();
        assert_eq!(server.requests(), 4);
        assert_eq!(listing(dir.path()), [files[0].0, files[1].0]);
        assert_eq!(std::fs::read(dir.path().join(files[1].0)).unwrap(), files[1].1);
    }

    #[test]
    fn offline_error_says_where_to_put_the_files() {
        let files = payloads();
        let ds = dataset(&files, &[]);
        let free_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();

        let mirror = format!("http://{free_port}/");
        let err = ensure_downloaded_from(&ds, std::slice::from_ref(&mirror), dir.path(), &quiet)
            .unwrap_err()
            .0;
        assert!(err.contains(&format!("{mirror}train-images-idx3-ubyte.gz: ")), "{err}");
        assert!(
            err.contains("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz"),
            "{err}"
        );
        assert!(err.ends_with(&format!("in {}", dir.path().display())), "{err}");
        assert!(listing(dir.path()).is_empty());
    }

    #[test]
    fn published_datasets_are_well_formed() {
        for ds in [&MNIST, &FASHION_MNIST] {
            assert!(ds.mirrors.iter().all(|m| m.ends_with('/')));
            assert_eq!(ds.files.len(), 4);
            for f in ds.files {
                assert_eq!(f.sha256.len(), 64);
                assert!(f
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            }
        }
        if let Some(dir) = default_cache_dir("mnist") {
            assert!(dir.ends_with("datasets/mnist"), "{}", dir.display());
        }
    }
}
