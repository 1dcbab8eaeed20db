//! The filesystem blobstore: containers are directories under a root
//! directory, objects are files in them (nested object names such as
//! `a/b.txt` are subdirectories). Every name is checked before it touches the
//! filesystem, and every path is checked to stay inside the root after
//! symlinks are resolved, so `../`, absolute names and symlinks pointing out
//! of the root are refused.
//!
//! Writes go to a hidden temporary file next to the object and are renamed
//! into place when the upload is complete (`outgoing-value.finish` in the
//! host, the end of the `write-container-data` stream in the provider), so a
//! reader never sees half an object and an abandoned upload leaves nothing
//! behind.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::BlobError;

/// Prefix of in-progress uploads; such files are never listed or served.
pub const UPLOAD_PREFIX: &str = ".trellis-upload-";

/// Buffer between an upload's pipe and its file: large enough that a 50 MiB
/// object is written in ~200 writes, small enough to be irrelevant per upload.
pub const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// A blobstore root: an existing directory, canonical (no symlinks), so
/// "inside the root" is a prefix test on canonical paths.
#[derive(Clone, Debug)]
pub struct FsRoot {
    root: PathBuf,
}

fn io(op: &'static str, path: &Path, e: std::io::Error) -> BlobError {
    BlobError::Io {
        op,
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn seconds(t: std::io::Result<SystemTime>) -> u64 {
    t.ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// A container name is one directory name: not empty, no `/`, `\`, NUL,
/// not `.` or `..`, not hidden upload prefix.
pub fn check_container_name(name: &str) -> Result<(), BlobError> {
    let bad = |reason: &str| BlobError::InvalidName {
        what: "container",
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.contains(['/', '\\', '\0']) {
        return Err(bad(
            "it contains `/`, `\\` or NUL; a container is one directory name",
        ));
    }
    if name == "." || name == ".." {
        return Err(bad("`.` and `..` would leave the container directory"));
    }
    if name.starts_with(UPLOAD_PREFIX) {
        return Err(bad("names starting with `.trellis-upload-` are reserved"));
    }
    Ok(())
}

/// An object name is a relative path of plain segments separated by `/`.
pub fn check_object_name(name: &str) -> Result<(), BlobError> {
    let bad = |reason: &str| BlobError::InvalidName {
        what: "object",
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.contains(['\\', '\0']) {
        return Err(bad("it contains `\\` or NUL"));
    }
    if name.starts_with('/') {
        return Err(bad(
            "absolute names are refused: object names are relative to their container",
        ));
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Err(bad("it has an empty path segment (`//` or a trailing `/`)"));
        }
        if segment == "." || segment == ".." {
            return Err(bad(
                "`.` and `..` segments are refused: they would leave the container",
            ));
        }
        if segment.starts_with(UPLOAD_PREFIX) {
            return Err(bad(
                "segments starting with `.trellis-upload-` are reserved",
            ));
        }
    }
    // Belt and braces: the name must be made of normal components only.
    if !Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(bad("it is not a plain relative path"));
    }
    Ok(())
}

impl FsRoot {
    /// Opens (creating if needed) the root directory `root`, which must be an
    /// absolute path.
    pub async fn open(root: &str) -> Result<Self, BlobError> {
        let path = Path::new(root);
        if !path.is_absolute() {
            return Err(BlobError::Config(format!(
                "blobstore root `{root}` is not an absolute path: set `ROOT` to an absolute directory"
            )));
        }
        tokio::fs::create_dir_all(path)
            .await
            .map_err(|e| io("create the root directory", path, e))?;
        let root = tokio::fs::canonicalize(path)
            .await
            .map_err(|e| io("resolve the root directory", path, e))?;
        Ok(Self { root })
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Fails unless `path` (or, when it does not exist, its deepest existing
    /// ancestor) resolves to a place inside the root.
    async fn check_inside(&self, path: &Path, name: &str) -> Result<(), BlobError> {
        let mut probe = path.to_path_buf();
        loop {
            match tokio::fs::canonicalize(&probe).await {
                Ok(real) if real.starts_with(&self.root) => return Ok(()),
                Ok(_) => {
                    return Err(BlobError::Escape {
                        name: name.to_string(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !probe.pop() {
                        return Err(BlobError::Escape {
                            name: name.to_string(),
                        });
                    }
                }
                Err(e) => return Err(io("resolve", &probe, e)),
            }
        }
    }

    fn container_dir(&self, name: &str) -> Result<PathBuf, BlobError> {
        check_container_name(name)?;
        Ok(self.root.join(name))
    }

    /// The directory of an existing container.
    pub async fn container(&self, name: &str) -> Result<PathBuf, BlobError> {
        let dir = self.container_dir(name)?;
        self.check_inside(&dir, name).await?;
        match tokio::fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => Ok(dir),
            Ok(_) => Err(BlobError::NoSuchContainer {
                name: name.to_string(),
                root: self.root.display().to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NoSuchContainer {
                name: name.to_string(),
                root: self.root.display().to_string(),
            }),
            Err(e) => Err(io("open container", &dir, e)),
        }
    }

    /// Creates container `name` (no error when it already exists).
    pub async fn create_container(&self, name: &str) -> Result<PathBuf, BlobError> {
        let dir = self.container_dir(name)?;
        self.check_inside(&dir, name).await?;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io("create container", &dir, e))?;
        self.container(name).await
    }

    /// Deletes container `name` and everything in it.
    pub async fn delete_container(&self, name: &str) -> Result<(), BlobError> {
        let dir = self.container(name).await?;
        tokio::fs::remove_dir_all(&dir)
            .await
            .map_err(|e| io("delete container", &dir, e))
    }

    /// Whether container `name` exists.
    pub async fn container_exists(&self, name: &str) -> Result<bool, BlobError> {
        match self.container(name).await {
            Ok(_) => Ok(true),
            Err(BlobError::NoSuchContainer { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The path of object `name` in container directory `dir`, checked to
    /// stay inside the root.
    pub async fn object(&self, dir: &Path, name: &str) -> Result<PathBuf, BlobError> {
        check_object_name(name)?;
        let path = dir.join(name);
        self.check_inside(&path, name).await?;
        Ok(path)
    }

    /// Copies object `src` to `dest` (the kernel streams it; nothing is
    /// buffered here).
    pub async fn copy(&self, src: &Path, dest: &Path) -> Result<(), BlobError> {
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("create the object's directory", parent, e))?;
        }
        tokio::fs::copy(src, dest)
            .await
            .map_err(|e| io("copy object", src, e))?;
        Ok(())
    }

    /// Moves object `src` to `dest`.
    pub async fn rename(&self, src: &Path, dest: &Path) -> Result<(), BlobError> {
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io("create the object's directory", parent, e))?;
        }
        tokio::fs::rename(src, dest)
            .await
            .map_err(|e| io("move object", src, e))
    }
}

/// Metadata of a file or directory: (created-at seconds, size).
pub async fn stat(path: &Path, what: &'static str) -> Result<(u64, u64), BlobError> {
    let m = tokio::fs::metadata(path)
        .await
        .map_err(|e| io(what, path, e))?;
    if !m.is_file() && what == "object" {
        return Err(io(
            what,
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a file"),
        ));
    }
    let created = m.created().or_else(|_| m.modified());
    Ok((seconds(created), m.len()))
}

/// Whether object `path` exists as a file.
pub async fn exists(path: &Path) -> Result<bool, BlobError> {
    match tokio::fs::metadata(path).await {
        Ok(m) => Ok(m.is_file()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("stat object", path, e)),
    }
}

/// Deletes object `path`; a missing object is not an error.
pub async fn delete(path: &Path) -> Result<(), BlobError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("delete object", path, e)),
    }
}

/// Removes everything inside container directory `dir`.
pub async fn clear(dir: &Path) -> Result<(), BlobError> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| io("list container", dir, e))?;
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| io("list container", dir, e))?
    {
        let path = entry.path();
        let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
        let removed = if is_dir {
            tokio::fs::remove_dir_all(&path).await
        } else {
            tokio::fs::remove_file(&path).await
        };
        removed.map_err(|e| io("clear container", &path, e))?;
    }
    Ok(())
}

/// Every object name in container directory `dir` (nested names with `/`),
/// sorted; symlinks and in-progress uploads are skipped.
pub async fn list(dir: &Path) -> Result<Vec<String>, BlobError> {
    let mut names = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = pending.pop() {
        let mut entries = tokio::fs::read_dir(&path)
            .await
            .map_err(|e| io("list container", &path, e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io("list container", &path, e))?
        {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with(UPLOAD_PREFIX) {
                continue;
            }
            let Ok(kind) = entry.file_type().await else {
                continue;
            };
            let full = format!("{prefix}{name}");
            if kind.is_dir() {
                pending.push((entry.path(), format!("{full}/")));
            } else if kind.is_file() {
                names.push(full);
            }
        }
    }
    names.sort();
    Ok(names)
}

/// How many bytes the inclusive range `start..=end` covers in an object of
/// `size` bytes (clamped to the object; `0` when it starts past the end).
pub fn range_len(start: u64, end: u64, size: u64) -> Result<u64, BlobError> {
    if end < start {
        return Err(BlobError::Range { start, end });
    }
    Ok(if start >= size {
        0
    } else {
        end.min(size.saturating_sub(1))
            .saturating_sub(start)
            .saturating_add(1)
    })
}

/// Opens `path` for reading bytes `start..=end` (clamped to the file).
/// Returns the reader and how many bytes it yields.
pub async fn open_range(
    path: &Path,
    start: u64,
    end: u64,
) -> Result<(tokio::io::Take<tokio::fs::File>, u64), BlobError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io("open object", path, e))?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| io("stat object", path, e))?;
    if !meta.is_file() {
        return Err(io(
            "open object",
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a file"),
        ));
    }
    let len = range_len(start, end, meta.len())?;
    if len > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| io("seek object", path, e))?;
    }
    Ok((file.take(len), len))
}

/// A temporary upload file next to `dest`, created with its directory.
pub async fn upload_file(dest: &Path) -> Result<(PathBuf, tokio::fs::File), BlobError> {
    let parent = dest.parent().unwrap_or(dest);
    tokio::fs::create_dir_all(parent)
        .await
        .map_err(|e| io("create the object's directory", parent, e))?;
    let temp = parent.join(format!("{UPLOAD_PREFIX}{}", uuid::Uuid::new_v4().simple()));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .await
        .map_err(|e| io("create upload file", &temp, e))?;
    Ok((temp, file))
}

/// Copies `reader` into `file` (a bounded buffer, never the whole object).
pub async fn spool(
    mut reader: impl tokio::io::AsyncRead + Unpin,
    file: tokio::fs::File,
    temp: &Path,
) -> Result<u64, BlobError> {
    let mut out = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let n = tokio::io::copy(&mut reader, &mut out)
        .await
        .map_err(|e| io("write object", temp, e))?;
    out.flush().await.map_err(|e| io("write object", temp, e))?;
    Ok(n)
}

/// Stores everything `reader` yields as object `dest`: spooled into a
/// temporary file next to it and renamed into place once `reader` ends; on
/// any failure, or if the returned future is dropped before it completes,
/// the temporary file is removed and `dest` is left as it was.
pub async fn store(
    reader: impl tokio::io::AsyncRead + Unpin,
    dest: &Path,
) -> Result<u64, BlobError> {
    let (temp, file) = upload_file(dest).await?;
    let mut pending = PendingUpload(Some(temp));
    let temp = pending.0.as_deref().unwrap_or(dest);
    let n = spool(reader, file, temp).await?;
    tokio::fs::rename(temp, dest)
        .await
        .map_err(|e| io("move the upload into place at", dest, e))?;
    pending.0 = None;
    Ok(n)
}

/// A temporary upload file, removed when dropped unless taken out.
struct PendingUpload(Option<PathBuf>);

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if let Some(temp) = self.0.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Reads at most `limit` bytes of `reader` into memory.
pub async fn read_all(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
    len: u64,
    path: &Path,
) -> Result<Vec<u8>, BlobError> {
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    reader
        .read_to_end(&mut out)
        .await
        .map_err(|e| io("read object", path, e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        assert!(check_container_name("photos").is_ok());
        assert!(check_container_name("my photos.2024").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "/abs", "a\\b", "a\0b"] {
            assert!(check_container_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn object_names() {
        assert!(check_object_name("a.txt").is_ok());
        assert!(check_object_name("dir/a.txt").is_ok());
        for bad in [
            "",
            "..",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/",
            "./a",
            "a\\b",
        ] {
            assert!(check_object_name(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let root = FsRoot::open(dir.path().to_str().unwrap()).await.unwrap();
        let c = root.create_container("c").await.unwrap();
        assert!(root.object(&c, "new/deep/file").await.is_ok());
        std::os::unix::fs::symlink(outside.path(), c.join("out")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), c.join("s")).unwrap();
        for name in ["out/secret", "s", "out/new"] {
            assert!(
                matches!(root.object(&c, name).await, Err(BlobError::Escape { .. })),
                "{name}"
            );
        }
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        assert!(matches!(
            root.container("linked").await,
            Err(BlobError::Escape { .. })
        ));
        assert!(matches!(
            root.container("missing").await,
            Err(BlobError::NoSuchContainer { .. })
        ));
    }

    #[tokio::test]
    async fn ranges_are_inclusive_and_clamped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        for (start, end, want) in [
            (0, u64::MAX, &b"0123456789"[..]),
            (2, 4, b"234"),
            (9, 9, b"9"),
            (10, 20, b""),
        ] {
            let (mut r, len) = open_range(&path, start, end).await.unwrap();
            let got = read_all(&mut r, len, &path).await.unwrap();
            assert_eq!(got, want, "{start}..={end}");
            assert_eq!(len, want.len() as u64);
        }
        assert!(open_range(&path, 5, 4).await.is_err());
    }

    #[tokio::test]
    async fn store_renames_into_place_and_cleans_up_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/obj");
        let n = store(&b"hello"[..], &dest).await.unwrap();
        assert_eq!(n, 5);
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        struct Failing;
        impl tokio::io::AsyncRead for Failing {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Err(std::io::Error::other("cut")))
            }
        }
        assert!(store(Failing, &dest).await.is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        assert_eq!(list(dir.path()).await.unwrap(), vec!["sub/obj"]);
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1, "the failed upload's temporary file is gone");

        // Dropped half-way (its reader never ends): nothing is left either.
        let (mut writer, reader) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut writer, b"partial")
            .await
            .unwrap();
        let stalled =
            tokio::time::timeout(std::time::Duration::from_millis(100), store(reader, &dest)).await;
        assert!(stalled.is_err());
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1, "the dropped upload's temporary file is gone");
    }

    #[tokio::test]
    async fn lists_nested_names_without_uploads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b"), b"").unwrap();
        std::fs::write(dir.path().join("sub/a"), b"").unwrap();
        std::fs::write(dir.path().join(format!("{UPLOAD_PREFIX}x")), b"").unwrap();
        assert_eq!(list(dir.path()).await.unwrap(), vec!["b", "sub/a"]);
    }
}
