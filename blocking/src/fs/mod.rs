//! Filesystem calls as handoff system calls.
//!
//! Every function here is one [`blocking`](crate::blocking) call around its
//! `std::fs` namesake: it runs inline on the worker thread that polls the
//! task, with the caller's path and buffers *borrowed*, not copied (tokio's
//! `fs` copies every buffer and hops to a pool thread per call). A call that
//! lasts (a cold read, an `fsync` on a busy disk) has its slot retaken by the
//! monitor after `retake_after`, so the other tasks keep running.
//!
//! Outside a runtime worker (a plain thread, `futures::executor::block_on`)
//! the calls simply run inline, so the examples below run anywhere.
//!
//! Rejected: `io_uring` (a different project: completion-based buffers
//! cannot be borrowed from a cancellable future) and a pool thread per call
//! (that is what `spawn_blocking` is for).
use std::io;
use std::path::Path;

use crate::blocking;

mod file;

pub use file::{File, OpenOptions};
pub use std::fs::{Metadata, Permissions};

/// Reads the whole file at `path` (`std::fs::read`).
///
/// # Errors
///
/// As `std::fs::read`: the file does not exist, is not readable, ...
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let path = std::env::temp_dir().join(format!("handoff-doc-read-{}", std::process::id()));
/// handoff_blocking::fs::write(&path, b"hello").await?;
/// assert_eq!(handoff_blocking::fs::read(&path).await?, b"hello");
/// handoff_blocking::fs::remove_file(&path).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    blocking(|| std::fs::read(path)).await
}

/// Reads the whole file at `path` as UTF-8 (`std::fs::read_to_string`).
///
/// # Errors
///
/// As `std::fs::read_to_string`, including `InvalidData` for text that is
/// not UTF-8.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let path = std::env::temp_dir().join(format!("handoff-doc-rts-{}", std::process::id()));
/// handoff_blocking::fs::write(&path, "héllo").await?;
/// assert_eq!(handoff_blocking::fs::read_to_string(&path).await?, "héllo");
/// handoff_blocking::fs::remove_file(&path).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref();
    blocking(|| std::fs::read_to_string(path)).await
}

/// Writes `contents` to the file at `path`, creating or truncating it
/// (`std::fs::write`). `contents` is borrowed for the call, not copied.
///
/// # Errors
///
/// As `std::fs::write`: a missing directory, no permission, a full disk, ...
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let path = std::env::temp_dir().join(format!("handoff-doc-write-{}", std::process::id()));
/// let data = vec![7u8; 4096];
/// handoff_blocking::fs::write(&path, &data).await?;
/// assert_eq!(handoff_blocking::fs::metadata(&path).await?.len(), 4096);
/// handoff_blocking::fs::remove_file(&path).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let (path, contents) = (path.as_ref(), contents.as_ref());
    blocking(|| std::fs::write(path, contents)).await
}

/// Returns the metadata of the file at `path`, following symlinks
/// (`std::fs::metadata`).
///
/// # Errors
///
/// As `std::fs::metadata`: the path does not exist, a component is not a
/// directory, no permission.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let meta = handoff_blocking::fs::metadata(std::env::temp_dir()).await?;
/// assert!(meta.is_dir());
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    let path = path.as_ref();
    blocking(|| std::fs::metadata(path)).await
}

/// Removes the file at `path` (`std::fs::remove_file`).
///
/// # Errors
///
/// As `std::fs::remove_file`: the file does not exist, is a directory, no
/// permission.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let path = std::env::temp_dir().join(format!("handoff-doc-rm-{}", std::process::id()));
/// handoff_blocking::fs::write(&path, b"x").await?;
/// handoff_blocking::fs::remove_file(&path).await?;
/// assert!(handoff_blocking::fs::metadata(&path).await.is_err());
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::remove_file(path)).await
}

/// Creates the directory at `path` and any missing parents
/// (`std::fs::create_dir_all`); an existing directory is not an error.
///
/// # Errors
///
/// As `std::fs::create_dir_all`: a component exists and is not a directory,
/// no permission.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let dir = std::env::temp_dir().join(format!("handoff-doc-mkdir-{}", std::process::id()));
/// handoff_blocking::fs::create_dir_all(dir.join("a/b")).await?;
/// assert!(handoff_blocking::fs::metadata(dir.join("a/b")).await?.is_dir());
/// std::fs::remove_dir_all(&dir)?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    blocking(|| std::fs::create_dir_all(path)).await
}

/// Renames `from` to `to`, replacing `to` if it exists (`std::fs::rename`).
///
/// # Errors
///
/// As `std::fs::rename`: `from` does not exist, the two paths are on
/// different filesystems, no permission.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let dir = std::env::temp_dir();
/// let (a, b) = (dir.join(format!("handoff-doc-mv-a-{}", std::process::id())),
///               dir.join(format!("handoff-doc-mv-b-{}", std::process::id())));
/// handoff_blocking::fs::write(&a, b"moved").await?;
/// handoff_blocking::fs::rename(&a, &b).await?;
/// assert_eq!(handoff_blocking::fs::read(&b).await?, b"moved");
/// handoff_blocking::fs::remove_file(&b).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    blocking(|| std::fs::rename(from, to)).await
}
