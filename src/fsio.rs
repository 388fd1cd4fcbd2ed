//! The one crash-safe way Gantry replaces a file (configs, `run.toml`, checkpoints, sweep summaries,
//! exports): the new contents go to a uniquely named temporary file beside the target, which is flushed to
//! disk, renamed over the target and the directory flushed too. A reader (or a restart after a power cut)
//! sees the old file or the new one, never a mix, and two writers never share a temporary file.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// `path: cannot <what>: <error>`, the form of every file error Gantry reports.
pub fn io_error(path: &Path, what: &str, e: impl std::fmt::Display) -> String {
    format!("{}: cannot {what}: {e}", path.display())
}

/// A temporary path beside `path` that no other writer (thread or process) picks.
fn temporary_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{unique}.part", std::process::id()))
}

/// Flushes the entries of the folder holding `path` (a rename is only durable once its folder is).
fn sync_parent(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "flush the folder", e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Replaces `path` with what `write` puts into the temporary file it is given; on any error the temporary
/// file is removed and `path` is left as it was.
pub fn replace_with(path: &Path, write: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    let temp = temporary_beside(path);
    let result = write(&temp)
        .and_then(|()| {
            File::open(&temp)
                .and_then(|f| f.sync_all())
                .map_err(|e| io_error(&temp, "flush", e))
        })
        .and_then(|()| fs::rename(&temp, path).map_err(|e| io_error(path, "replace", e)));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
        return result;
    }
    sync_parent(path)
}

/// Replaces `path` with `bytes`, crash-safely.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    replace_with(path, |temp| {
        File::create(temp)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| io_error(path, "write", e))
    })
}

/// Makes a directory whose contents appear all at once: `fill` writes into a temporary sibling, which is
/// renamed to `dir` when it succeeds and removed when it fails, so no half-made folder is ever left.
pub fn create_dir_with(dir: &Path, fill: impl FnOnce(&Path) -> Result<(), String>) -> Result<(), String> {
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let temp = temporary_beside(dir);
    let result = fs::create_dir_all(&temp)
        .map_err(|e| io_error(dir, "create", e))
        .and_then(|()| fill(&temp))
        .and_then(|()| fs::rename(&temp, dir).map_err(|e| io_error(dir, "create", e)));
    if result.is_err() {
        let _ = fs::remove_dir_all(&temp);
        return result;
    }
    sync_parent(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        write(&path, b"old").unwrap();
        let failed = replace_with(&path, |temp| {
            fs::write(temp, b"half").unwrap();
            Err("disk full".into())
        });
        assert_eq!(failed.unwrap_err(), "disk full");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the temporary file is gone"
        );
        write(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn temporaries_are_unique_per_write() {
        let path = Path::new("/runs/a/run.toml");
        assert_ne!(temporary_beside(path), temporary_beside(path));
        assert_eq!(temporary_beside(path).parent(), path.parent());
    }

    #[test]
    fn a_folder_that_fails_to_fill_is_not_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let child = dir.path().join("child");
        let failed = create_dir_with(&child, |temp| {
            fs::write(temp.join("config.toml"), "x").unwrap();
            Err("no checkpoint".into())
        });
        assert!(failed.is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        create_dir_with(&child, |temp| fs::write(temp.join("a"), "x").map_err(|e| e.to_string())).unwrap();
        assert!(child.join("a").exists());
        assert!(
            create_dir_with(&child, |_| Ok(())).is_err(),
            "an existing folder is kept"
        );
    }
}
