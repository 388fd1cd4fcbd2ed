//! Types shared by the dataset loaders: decoded pixels, a user-facing error and a progress callback.

use std::fmt;
use std::path::Path;

/// Decoded images as 8-bit, channel-planar (CHW per item), before the engine converts to f32 [-1,1].
///
/// Kept as bytes so a 60 000-image dataset costs 47 MB rather than four times that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawImages {
    pub count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `count * channels * height * width` bytes, image after image, each channel plane after plane.
    pub pixels: Vec<u8>,
    /// One label per image, indexing `label_names`, where every image has one.
    pub labels: Option<Vec<u32>>,
    /// Folder datasets: the subfolder names, sorted. IDX: "0" up to the largest label.
    pub label_names: Vec<String>,
    /// Human-readable warnings to show next to the dataset, e.g. files that were skipped.
    pub notes: Vec<String>,
}

impl RawImages {
    /// Bytes in one image, the stride between consecutive images in `pixels`.
    pub fn item_len(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// An error that names the file or directory and the problem, worded to be shown to a user verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct DataError(pub String);

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DataError {}

impl DataError {
    /// Why `dir` could not be listed, in the words a user needs: missing, not a folder, or denied.
    pub(crate) fn unreadable_dir(dir: &Path, err: &std::io::Error) -> DataError {
        let problem = match err.kind() {
            std::io::ErrorKind::NotFound => "directory does not exist".to_string(),
            _ if dir.is_file() => "is a file, not a directory".to_string(),
            _ => format!("cannot read directory: {err}"),
        };
        DataError(format!("{}: {problem}", dir.display()))
    }
}

/// Progress callback: (what, done, total), e.g. ("downloading train-images-idx3-ubyte.gz", bytes_done,
/// bytes_total) or ("decoding images", n, total). `total` is 0 when unknown. It is `Sync` because
/// decoding reports from several threads.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);
