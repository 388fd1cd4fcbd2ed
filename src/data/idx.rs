//! Loader for MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), raw or gzipped.
//!
//! Every size is checked against the header and the file before anything is allocated, so a
//! damaged or hostile file yields a [`DataError`] rather than a huge allocation or a panic.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::raw::{DataError, Progress, RawImages};

/// Decompressed payloads above this are refused: no IDX dataset in use comes close, and it keeps
/// a lying header from making us reserve absurd amounts of memory.
const MAX_PAYLOAD: u64 = 1 << 31;
/// Deflate cannot expand data by more than about 1032:1, so a gzip file that would have to
/// exceed this ratio to hold what its header promises is known to be truncated without reading it.
const MAX_GZIP_RATIO: u64 = 1100;
/// Payloads are read in chunks of this size so progress can be reported.
const READ_CHUNK: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Split {
    Train,
    Test,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Images,
    Labels,
}

impl Kind {
    /// Number of dimensions the IDX header must declare.
    fn dims(self) -> u8 {
        match self {
            Kind::Images => 3,
            Kind::Labels => 1,
        }
    }

    fn magic(self) -> u32 {
        0x0800 | u32::from(self.dims())
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Images => "IDX unsigned-byte images, 3 dims",
            Kind::Labels => "IDX unsigned-byte labels, 1 dim",
        }
    }
}

/// The files of one split found in the directory.
#[derive(Default)]
struct SplitFiles {
    images: Option<PathBuf>,
    labels: Option<PathBuf>,
}

/// Loads the IDX image (and, where present, label) files in `dir`.
///
/// Train and test splits are concatenated, train first, when both are present. Names follow
/// MNIST (`train-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, optionally `.gz`, optionally
/// `images.idx3` with a dot) and EMNIST (`emnist-digits-test-images-idx3-ubyte`: any prefix
/// ending in '-', and `test` for `t10k`). A folder holding several prefixed sets is refused
/// rather than guessed at.
pub fn load_idx_dir(dir: &Path, progress: Progress) -> Result<RawImages, DataError> {
    let splits = find_split_files(dir)?;
    let mut out = RawImages {
        channels: 1,
        ..RawImages::default()
    };
    let mut labels = Vec::new();
    let mut unlabelled = Vec::new();
    for files in splits.values() {
        let Some(images_path) = &files.images else {
            continue;
        };
        let images = read_idx(images_path, Kind::Images, progress)?;
        let (count, height, width) = (images.dims[0], images.dims[1], images.dims[2]);
        if out.count > 0 && (height, width) != (out.height, out.width) {
            return Err(DataError(format!(
                "{}: images are {height}x{width} but the other split's are {}x{}",
                images_path.display(),
                out.height,
                out.width
            )));
        }
        match &files.labels {
            Some(labels_path) => {
                let split_labels = read_idx(labels_path, Kind::Labels, progress)?;
                if split_labels.dims[0] != count {
                    return Err(DataError(format!(
                        "{}: label count {} differs from image count {count} in {}",
                        labels_path.display(),
                        split_labels.dims[0],
                        images_path.display()
                    )));
                }
                labels.extend(split_labels.data.iter().map(|&l| u32::from(l)));
            }
            None => unlabelled.push(file_name(images_path)),
        }
        out.count += count;
        out.height = height;
        out.width = width;
        if out.pixels.is_empty() {
            out.pixels = images.data; // the usual single split: no copy
        } else {
            out.pixels.extend_from_slice(&images.data);
        }
    }
    if unlabelled.is_empty() {
        let max = labels.iter().copied().max().unwrap_or(0);
        out.label_names = (0..=max).map(|l| l.to_string()).collect();
        out.labels = Some(labels);
    } else if !labels.is_empty() {
        out.notes.push(format!(
            "no labels file for {}, so the dataset is loaded without labels",
            unlabelled.join(", ")
        ));
    }
    Ok(out)
}

/// Lists `dir` and picks out the IDX files by name, refusing ambiguity and empty folders.
fn find_split_files(dir: &Path) -> Result<BTreeMap<Split, SplitFiles>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::unreadable_dir(dir, &e))?;
    let mut sets: BTreeMap<String, BTreeMap<Split, SplitFiles>> = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::unreadable_dir(dir, &e))?;
        let name = entry.file_name();
        let Some((prefix, split, kind)) = name.to_str().and_then(parse_idx_name) else {
            continue;
        };
        let files = sets.entry(prefix).or_default().entry(split).or_default();
        let slot = match kind {
            Kind::Images => &mut files.images,
            Kind::Labels => &mut files.labels,
        };
        // Prefer the uncompressed copy when both are present: it is the same data, read faster.
        if slot.as_ref().is_none_or(|p| is_gz(p)) {
            *slot = Some(entry.path());
        }
    }
    sets.retain(|_, splits| splits.values().any(|f| f.images.is_some()));
    let mut prefixes = sets.keys();
    match (prefixes.next(), prefixes.next()) {
        (Some(_), None) => Ok(sets.into_values().next().unwrap_or_default()),
        (None, _) => Err(DataError(format!(
            "{}: no IDX image file found; looked for train-images-idx3-ubyte and \
             t10k-images-idx3-ubyte (also with a .gz suffix, 'images.idx3' with a dot, \
             'test' for 't10k', or a prefix such as 'emnist-digits-')",
            dir.display()
        ))),
        (Some(_), Some(_)) => Err(DataError(format!(
            "{}: holds several IDX datasets ({}); move each into its own folder",
            dir.display(),
            sets.keys().map(|p| format!("'{p}*'")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Splits an IDX file name into (dataset prefix, split, kind), or `None` for any other file.
fn parse_idx_name(name: &str) -> Option<(String, Split, Kind)> {
    let stem = name.strip_suffix(".gz").unwrap_or(name).strip_suffix("-ubyte")?;
    let (stem, kind) = [
        ("images-idx3", Kind::Images),
        ("images.idx3", Kind::Images),
        ("labels-idx1", Kind::Labels),
        ("labels.idx1", Kind::Labels),
    ]
    .into_iter()
    .find_map(|(suffix, kind)| Some((stem.strip_suffix(suffix)?, kind)))?;
    let (prefix, split) = [("train-", Split::Train), ("t10k-", Split::Test), ("test-", Split::Test)]
        .into_iter()
        .find_map(|(suffix, split)| Some((stem.strip_suffix(suffix)?, split)))?;
    (prefix.is_empty() || prefix.ends_with('-')).then(|| (prefix.to_string(), split, kind))
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// One parsed IDX file: its dimensions and its unsigned-byte payload.
struct Idx {
    dims: Vec<usize>,
    data: Vec<u8>,
}

/// Reads one IDX file of the given kind, validating the header against the file before allocating.
///
/// Gzip is recognised by its magic bytes rather than the name, so a `.gz` that a browser already
/// decompressed still loads.
fn read_idx(path: &Path, kind: Kind, progress: Progress) -> Result<Idx, DataError> {
    let fail = |problem: String| DataError(format!("{}: {problem}", path.display()));
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let file_len = file.metadata().map_err(|e| fail(format!("cannot read: {e}")))?.len();
    parse_idx(BufReader::new(file), file_len, path, kind, progress)
}

/// Parses IDX bytes (an image file when `images`, else a label file), raw or gzipped, as a file of that name
/// would be: the entry point of the fuzzing harness. Returns the dimensions.
pub fn parse_idx_bytes(bytes: &[u8], images: bool) -> Result<Vec<usize>, DataError> {
    let kind = if images { Kind::Images } else { Kind::Labels };
    let name = Path::new(if images {
        "images-idx3-ubyte"
    } else {
        "labels-idx1-ubyte"
    });
    parse_idx(bytes, bytes.len() as u64, name, kind, &|_, _, _| {}).map(|idx| idx.dims)
}

/// Reads one IDX stream of `file_len` bytes; `path` names it in messages.
fn parse_idx<'a>(
    mut file: impl Read + 'a,
    file_len: u64,
    path: &Path,
    kind: Kind,
    progress: Progress,
) -> Result<Idx, DataError> {
    let fail = |problem: String| DataError(format!("{}: {problem}", path.display()));
    let mut sniff = [0u8; 2];
    let sniffed = read_up_to(&mut file, &mut sniff).map_err(|e| fail(format!("cannot read: {e}")))?;
    let gzipped = sniff == [0x1f, 0x8b];
    if !gzipped && is_gz(path) && sniff != [0, 0] {
        return Err(fail("not a gzip file (bad magic bytes)".to_string()));
    }
    let mut reader: Box<dyn Read + 'a> = {
        let rest = std::io::Cursor::new(sniff[..sniffed].to_vec()).chain(file);
        if gzipped {
            Box::new(MultiGzDecoder::new(rest))
        } else {
            Box::new(rest)
        }
    };
    let source = if gzipped { "decompressed data" } else { "file" };
    let read_err = |e: std::io::Error| {
        fail(match e.kind() {
            _ if !gzipped => format!("cannot read: {e}"),
            std::io::ErrorKind::UnexpectedEof => "truncated: the gzip stream is cut off before its end".to_string(),
            _ => format!("corrupt gzip data: {e}"),
        })
    };

    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic).map_err(read_err)?;
    if got < 4 {
        return Err(fail(format!(
            "too short to be an IDX file: the {source} ends after {got} bytes, inside the 4-byte magic number"
        )));
    }
    check_magic(u32::from_be_bytes(magic), kind).map_err(fail)?;
    let header_len = 4 + 4 * usize::from(kind.dims());
    let mut dims_bytes = vec![0u8; header_len - 4];
    let got = read_up_to(&mut reader, &mut dims_bytes).map_err(read_err)?;
    if got < dims_bytes.len() {
        return Err(fail(format!(
            "truncated: the {source} ends after {} bytes, inside the {header_len}-byte header",
            4 + got
        )));
    }
    let dims: Vec<u64> = dims_bytes
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let shape = dims.iter().map(u64::to_string).collect::<Vec<_>>().join("x");
    if dims.contains(&0) {
        return Err(fail(format!("zero-sized dimension in header ({shape})")));
    }
    // Each factor is below 2^32, so the three-way product fits in u128 and cannot overflow.
    let payload = dims.iter().map(|&d| u128::from(d)).product::<u128>();
    let promise = match kind {
        Kind::Images => format!("{} images of {}x{} ({payload} bytes)", dims[0], dims[1], dims[2]),
        Kind::Labels => format!("{} labels ({payload} bytes)", dims[0]),
    };
    let header_len = header_len as u64;
    let possible = if gzipped {
        file_len.saturating_mul(MAX_GZIP_RATIO)
    } else {
        file_len.saturating_sub(header_len)
    };
    if payload > u128::from(possible) {
        return Err(fail(if gzipped {
            format!(
                "truncated: header promises {promise} but the gzip file is only {file_len} \
                 bytes, too small to hold that much"
            )
        } else {
            format!("truncated: header promises {promise} but the file ends after {file_len} bytes")
        }));
    }
    if payload > u128::from(MAX_PAYLOAD) {
        return Err(fail(format!(
            "header promises {promise}, more than the {MAX_PAYLOAD}-byte limit for an IDX file"
        )));
    }
    let payload = payload as u64;
    let what = format!("reading {}", file_name(path));
    let mut data = vec![0u8; payload as usize];
    let mut filled = 0;
    while filled < data.len() {
        let end = (filled + READ_CHUNK).min(data.len());
        let got = read_up_to(&mut reader, &mut data[filled..end]).map_err(read_err)?;
        let short = got < end - filled;
        filled += got;
        progress(&what, filled as u64, payload);
        if short {
            return Err(fail(format!(
                "truncated: header promises {promise} but the {source} ends after {} bytes",
                header_len + filled as u64
            )));
        }
    }
    // Reading on to the end also makes the gzip decoder verify its CRC and length trailer.
    let mut extra = Vec::new();
    let extra_len = reader
        .take(READ_CHUNK as u64)
        .read_to_end(&mut extra)
        .map_err(read_err)?;
    if extra_len > 0 {
        let at_least = if extra_len == READ_CHUNK { "at least " } else { "" };
        return Err(fail(format!(
            "{at_least}{extra_len} bytes of unexpected data after the {promise} its header describes"
        )));
    }
    Ok(Idx {
        dims: dims.iter().map(|&d| d as usize).collect(),
        data,
    })
}

/// Explains, in words, why `magic` is not the header of an unsigned-byte IDX file of `kind`.
fn check_magic(magic: u32, kind: Kind) -> Result<(), String> {
    if magic == kind.magic() {
        return Ok(());
    }
    let [zero_a, zero_b, item_type, dims] = magic.to_be_bytes();
    let type_name = match item_type {
        0x09 => Some("signed bytes"),
        0x0B => Some("16-bit integers"),
        0x0C => Some("32-bit integers"),
        0x0D => Some("32-bit floats"),
        0x0E => Some("64-bit floats"),
        _ => None,
    };
    let expected = format!("expected 0x{:08X} ({})", kind.magic(), kind.describe());
    Err(match type_name {
        Some(name) if zero_a == 0 && zero_b == 0 => {
            format!("IDX item type 0x{item_type:02X} ({name}, {dims} dims) is not supported, {expected}")
        }
        _ if zero_a == 0 && zero_b == 0 && item_type == 0x08 => format!(
            "IDX file has {dims} dims where {} were expected (magic 0x{magic:08X}, {expected})",
            kind.dims()
        ),
        _ => format!("wrong magic number 0x{magic:08X}, {expected}"),
    })
}

/// Like `read_exact`, but returns how many bytes were read before the end instead of failing,
/// so a truncation can be reported with the exact length. A gzip stream that stops mid-way
/// counts as an end here too.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    pub(crate) const IMAGES: u32 = 0x0803;
    pub(crate) const LABELS: u32 = 0x0801;

    fn quiet(_: &str, _: u64, _: u64) {}

    /// An IDX file with the given magic number, dimensions and payload (not checked for agreement).
    pub(crate) fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = magic.to_be_bytes().to_vec();
        for d in dims {
            out.extend(d.to_be_bytes());
        }
        out.extend(data);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// `count` images of `h`x`w` whose pixel values count up from `start`.
    fn images(count: u32, h: u32, w: u32, start: u8) -> Vec<u8> {
        let data: Vec<u8> = (0..count * h * w).map(|i| start.wrapping_add(i as u8)).collect();
        idx_bytes(IMAGES, &[count, h, w], &data)
    }

    fn labels(values: &[u8]) -> Vec<u8> {
        idx_bytes(LABELS, &[values.len() as u32], values)
    }

    fn dir_with(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        dir
    }

    fn load_err(files: &[(&str, Vec<u8>)]) -> String {
        let dir = dir_with(files);
        let err = load_idx_dir(dir.path(), &quiet).expect_err("expected an error").0;
        assert!(err.contains(&dir.path().display().to_string()), "no path in: {err}");
        err
    }

    #[test]
    fn loads_raw_train_split_with_labels() {
        let dir = dir_with(&[
            ("train-images-idx3-ubyte", images(3, 4, 5, 0)),
            ("train-labels-idx1-ubyte", labels(&[2, 0, 7])),
        ]);
        let raw = load_idx_dir(dir.path(), &quiet).unwrap();
        assert_eq!((raw.count, raw.channels, raw.height, raw.width), (3, 1, 4, 5));
        assert_eq!(raw.pixels, (0..60).collect::<Vec<u8>>());
        assert_eq!(raw.labels, Some(vec![2, 0, 7]));
        assert_eq!(raw.label_names, ["0", "1", "2", "3", "4", "5", "6", "7"]);
        assert!(raw.notes.is_empty());
    }

    #[test]
    fn concatenates_train_then_test_mixing_gz_raw_and_dot_names() {
        let dir = dir_with(&[
            ("t10k-images.idx3-ubyte", images(2, 2, 2, 100)),
            ("t10k-labels.idx1-ubyte", labels(&[5, 6])),
            ("train-images-idx3-ubyte.gz", gzip(&images(3, 2, 2, 0))),
            ("train-labels-idx1-ubyte.gz", gzip(&labels(&[1, 2, 3]))),
        ]);
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |what: &str, done: u64, total: u64| {
            seen.lock().unwrap().push((what.to_string(), done, total));
        };
        let raw = load_idx_dir(dir.path(), &progress).unwrap();
        assert_eq!(raw.count, 5);
        let mut expected: Vec<u8> = (0..12).collect();
        expected.extend(100..108);
        assert_eq!(raw.pixels, expected);
        assert_eq!(raw.labels, Some(vec![1, 2, 3, 5, 6]));
        assert_eq!(raw.label_names.len(), 7);
        let seen = seen.into_inner().unwrap();
        assert!(seen.contains(&("reading train-images-idx3-ubyte.gz".to_string(), 12, 12)));
    }

    #[test]
    fn labels_are_optional() {
        let dir = dir_with(&[
            ("train-images-idx3-ubyte", images(2, 3, 3, 0)),
            ("t10k-images-idx3-ubyte", images(1, 3, 3, 0)),
        ]);
        let raw = load_idx_dir(dir.path(), &quiet).unwrap();
        assert_eq!((raw.count, raw.labels, raw.notes.len()), (3, None, 0));
        assert!(raw.label_names.is_empty());

        // Labels for only one split cannot label the whole set: dropped, with a note saying so.
        std::fs::write(dir.path().join("train-labels-idx1-ubyte"), labels(&[1, 1])).unwrap();
        let raw = load_idx_dir(dir.path(), &quiet).unwrap();
        assert_eq!((raw.count, raw.labels), (3, None));
        assert!(raw.notes[0].contains("t10k-images-idx3-ubyte"), "{:?}", raw.notes);
    }

    #[test]
    fn prefers_raw_over_gz_copy_of_the_same_file() {
        let dir = dir_with(&[
            ("train-images-idx3-ubyte", images(1, 2, 2, 0)),
            ("train-images-idx3-ubyte.gz", b"not even gzip".to_vec()),
        ]);
        assert_eq!(load_idx_dir(dir.path(), &quiet).unwrap().count, 1);
    }

    #[test]
    fn accepts_emnist_names_and_refuses_several_datasets_in_one_folder() {
        let dir = dir_with(&[
            ("emnist-digits-train-images-idx3-ubyte.gz", gzip(&images(2, 2, 2, 0))),
            ("emnist-digits-train-labels-idx1-ubyte.gz", gzip(&labels(&[0, 9]))),
            ("emnist-digits-test-images-idx3-ubyte.gz", gzip(&images(1, 2, 2, 0))),
            ("emnist-digits-test-labels-idx1-ubyte.gz", gzip(&labels(&[4]))),
            ("emnist-digits-mapping.txt", b"0 48\n".to_vec()),
        ]);
        let raw = load_idx_dir(dir.path(), &quiet).unwrap();
        assert_eq!((raw.count, raw.labels), (3, Some(vec![0, 9, 4])));

        std::fs::write(
            dir.path().join("emnist-letters-train-images-idx3-ubyte.gz"),
            gzip(&images(1, 2, 2, 0)),
        )
        .unwrap();
        let err = load_idx_dir(dir.path(), &quiet).unwrap_err().0;
        assert!(err.contains("several IDX datasets"), "{err}");
        assert!(err.contains("'emnist-letters-*'"), "{err}");
    }

    #[test]
    fn loads_a_gz_name_holding_raw_idx() {
        // Browsers often decompress a download but keep the .gz name.
        let dir = dir_with(&[("train-images-idx3-ubyte.gz", images(2, 2, 2, 0))]);
        assert_eq!(load_idx_dir(dir.path(), &quiet).unwrap().count, 2);
    }

    #[test]
    fn refuses_a_gz_that_is_not_gzip() {
        let err = load_err(&[("train-images-idx3-ubyte.gz", b"<html>404</html>".to_vec())]);
        assert!(err.ends_with("train-images-idx3-ubyte.gz: not a gzip file (bad magic bytes)"));
    }

    #[test]
    fn refuses_truncated_gz() {
        let full = gzip(&images(50, 28, 28, 0));
        let err = load_err(&[("train-images-idx3-ubyte.gz", full[..full.len() / 2].to_vec())]);
        assert!(err.contains("train-images-idx3-ubyte.gz: truncated: header promises 50 images of 28x28 (39200 bytes) but the decompressed data ends after "), "{err}");
    }

    #[test]
    fn refuses_gz_whose_content_is_shorter_than_its_header() {
        let mut bytes = images(10, 28, 28, 0);
        bytes.truncate(16 + 1000);
        let err = load_err(&[("train-images-idx3-ubyte.gz", gzip(&bytes))]);
        assert!(
            err.ends_with(
                "truncated: header promises 10 images of 28x28 (7840 bytes) \
                 but the decompressed data ends after 1016 bytes"
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_corrupt_gz() {
        let mut bytes = gzip(&images(10, 28, 28, 7));
        let n = bytes.len();
        bytes[n - 8] ^= 0xff; // CRC32 of the content
        let err = load_err(&[("train-images-idx3-ubyte.gz", bytes)]);
        assert!(err.contains("corrupt gzip data"), "{err}");
    }

    #[test]
    fn refuses_wrong_magic_numbers() {
        let err = load_err(&[("train-images-idx3-ubyte", idx_bytes(0x1234_5678, &[1, 1, 1], &[0]))]);
        assert!(err.ends_with(
            "train-images-idx3-ubyte: wrong magic number 0x12345678, \
             expected 0x00000803 (IDX unsigned-byte images, 3 dims)"
        ));
        let err = load_err(&[("train-images-idx3-ubyte", idx_bytes(0x0D03, &[1, 1, 1], &[0; 4]))]);
        assert!(err.contains("item type 0x0D (32-bit floats"), "{err}");
        let err = load_err(&[("train-images-idx3-ubyte", labels(&[1, 2]))]);
        assert!(err.contains("has 1 dims where 3 were expected"), "{err}");
        let err = load_err(&[
            ("train-images-idx3-ubyte", images(2, 2, 2, 0)),
            ("train-labels-idx1-ubyte", images(2, 2, 2, 0)),
        ]);
        assert!(err.contains("train-labels-idx1-ubyte: IDX file has 3 dims"), "{err}");
    }

    #[test]
    fn refuses_label_count_different_from_image_count() {
        let err = load_err(&[
            ("train-images-idx3-ubyte", images(99, 1, 1, 0)),
            ("train-labels-idx1-ubyte", labels(&[0; 100])),
        ]);
        assert!(err.contains("train-labels-idx1-ubyte: label count 100 differs from image count 99 in "));
        assert!(err.ends_with("train-images-idx3-ubyte"), "{err}");
    }

    #[test]
    fn refuses_zero_sized_dims() {
        let err = load_err(&[("train-images-idx3-ubyte", idx_bytes(IMAGES, &[0, 28, 28], &[]))]);
        assert!(err.ends_with("zero-sized dimension in header (0x28x28)"), "{err}");
    }

    #[test]
    fn refuses_headers_promising_more_than_the_file_holds() {
        let mut bytes = images(60000, 28, 28, 0);
        bytes.truncate(1234);
        let err = load_err(&[("train-images-idx3-ubyte", bytes)]);
        assert!(
            err.ends_with(
                "train-images-idx3-ubyte: truncated: header promises 60000 images of 28x28 \
                 (47040000 bytes) but the file ends after 1234 bytes"
            ),
            "{err}"
        );

        // Four billion images in 2 KB, raw and gzipped: refused from the header, no allocation.
        let huge = idx_bytes(IMAGES, &[4_000_000_000, 28, 28], &[0; 2032]);
        let err = load_err(&[("train-images-idx3-ubyte", huge.clone())]);
        assert!(err.contains("header promises 4000000000 images"), "{err}");
        assert!(err.contains("ends after 2048 bytes"), "{err}");
        let err = load_err(&[("train-images-idx3-ubyte.gz", gzip(&huge))]);
        assert!(err.contains("too small to hold that much"), "{err}");

        // Plausible for its gzip size (incompressible bytes), but beyond the payload cap.
        let mut state = 0x9E37_79B9_u32;
        let noise: Vec<u8> = (0..5 << 19)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let big = idx_bytes(IMAGES, &[3_000_000, 28, 28], &noise);
        let err = load_err(&[("train-images-idx3-ubyte.gz", gzip(&big))]);
        assert!(err.contains("more than the 2147483648-byte limit"), "{err}");
    }

    #[test]
    fn refuses_trailing_data_and_short_headers() {
        let mut bytes = images(2, 2, 2, 0);
        bytes.extend([1, 2, 3]);
        let err = load_err(&[("train-images-idx3-ubyte.gz", gzip(&bytes))]);
        assert!(err.contains("3 bytes of unexpected data after the 2 images"), "{err}");
        let err = load_err(&[("train-images-idx3-ubyte", vec![0, 0, 8])]);
        assert!(err.contains("ends after 3 bytes, inside the 4-byte magic"), "{err}");
        let err = load_err(&[("train-images-idx3-ubyte", images(1, 1, 1, 0)[..10].to_vec())]);
        assert!(err.contains("ends after 10 bytes, inside the 16-byte header"), "{err}");
    }

    #[test]
    fn never_panics_on_truncated_or_flipped_bytes() {
        let files = [
            ("train-images-idx3-ubyte", images(3, 2, 2, 0)),
            ("train-images-idx3-ubyte.gz", gzip(&images(3, 2, 2, 0))),
        ];
        for (name, bytes) in files {
            for cut in 0..bytes.len() {
                let dir = dir_with(&[(name, bytes[..cut].to_vec())]);
                assert!(load_idx_dir(dir.path(), &quiet).is_err());
            }
            for i in 0..bytes.len() {
                let mut flipped = bytes.clone();
                flipped[i] ^= 0xA5;
                let dir = dir_with(&[(name, flipped)]);
                let _ = load_idx_dir(dir.path(), &quiet);
            }
        }
    }

    #[test]
    fn reports_missing_and_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = load_idx_dir(&missing, &quiet).unwrap_err().0;
        assert_eq!(err, format!("{}: directory does not exist", missing.display()));

        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = load_idx_dir(&file, &quiet).unwrap_err().0;
        assert_eq!(err, format!("{}: is a file, not a directory", file.display()));

        let err = load_err(&[("train-labels-idx1-ubyte", labels(&[1])), ("notes.txt", vec![])]);
        assert!(err.contains("no IDX image file found; looked for train-images-idx3-ubyte"));
    }

    /// Locks `dir` with chmod 000 and checks that `load` reports it as unreadable. Root reads
    /// through any permission, so there the assertion is skipped with a message.
    #[cfg(unix)]
    pub(crate) fn check_unreadable_dir_error(dir: &Path, load: impl Fn(&Path) -> Result<RawImages, DataError>) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o000)).unwrap();
        let readable = std::fs::read_dir(dir).is_ok();
        let result = (!readable).then(|| load(dir));
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        match result {
            None => {
                println!("skipping the unreadable-directory assertion: running as root, chmod 000 does not block reads")
            }
            Some(result) => {
                let err = result.unwrap_err().0;
                assert!(
                    err.starts_with(&format!("{}: cannot read directory", dir.display())),
                    "{err}"
                );
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn reports_an_unreadable_dir() {
        let dir = dir_with(&[("train-images-idx3-ubyte", images(1, 1, 1, 0))]);
        check_unreadable_dir_error(dir.path(), |d| load_idx_dir(d, &quiet));
    }

    #[test]
    fn loads_real_mnist_test_set_when_available() {
        let candidates = std::env::var_os("GANTRY_MNIST_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist")]);
        let mut found = false;
        for dir in candidates.filter(|d| d.is_dir()) {
            found = true;
            let raw = load_idx_dir(&dir, &quiet).unwrap();
            assert_eq!((raw.count, raw.channels, raw.height, raw.width), (10000, 1, 28, 28));
            let labels = raw.labels.unwrap();
            assert_eq!(labels.len(), 10000);
            assert!((0..10).all(|d| labels.contains(&d)));
            assert_eq!(raw.label_names, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
            assert_eq!(labels[..5], [7, 2, 1, 0, 4]);
        }
        if !found {
            println!("skipping: no MNIST folder (set GANTRY_MNIST_DIR or provide ../shared/data/mnist)");
        }
    }
}
