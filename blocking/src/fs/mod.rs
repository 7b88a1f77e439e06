//! Filesystem calls as handoff system calls.
//!
//! Every function here is one [`blocking`](crate::blocking()) call around its
//! `std::fs` namesake: it runs inline on the worker thread that polls the
//! task, with the caller's path and buffers *borrowed*, not copied (tokio's
//! `fs` copies every buffer and hops to a pool thread per call). A call that
//! lasts (a cold read, an `fsync` on a busy disk) has its slot retaken by the
//! monitor after `retake_after`, so the other tasks keep running.
//!
//! The surface follows `std::fs` (and so `tokio::fs`): [`read`], [`write()`],
//! [`read_to_string`], [`metadata`], [`symlink_metadata`], [`copy`],
//! [`rename`], [`remove_file`], [`create_dir`], [`create_dir_all`],
//! [`remove_dir`], [`remove_dir_all`], [`read_dir`], [`canonicalize`],
//! [`read_link`], [`hard_link`], [`set_permissions`], [`try_exists`], and
//! [`File`] / [`OpenOptions`].
//!
//! Outside a runtime worker (a plain thread, `futures::executor::block_on`)
//! the calls simply run inline, so the examples below run anywhere.
//!
//! # Call sites
//!
//! `blocking` learns per call site which calls block (`crate::learn`): a
//! site whose calls keep being retaken hands its slot off at entry. For the
//! functions here the site is the *caller's* line: `fs::read(cold)` in one
//! place and `fs::read(hot)` in another learn apart, so a slow disk read
//! does not turn every cached read of the program into a hand-off (a thread
//! wake per call instead of the fast exit's one CAS).
//!
//! 1. Each function is a `#[track_caller] fn ... -> impl Future`, not an
//!    `async fn` (which cannot be `#[track_caller]`): its synchronous part
//!    takes `Location::caller()`, the user's line, before building the
//!    future.
//! 2. The future makes its call with `call::blocking_at(site, f)`, which is
//!    `blocking(f)` learning at `site`.
//! 3. A function that makes more than one call (`File::into_std`,
//!    `File::read_to_end` settling what a `futures::io` call parked) uses
//!    the caller's site for its call; [`ReadDir::next_entry`] learns at the
//!    line that calls `next_entry`, not at the `read_dir` line.
//! 4. The `futures::io` traits of [`File`] are polled through combinators
//!    (`read_exact`, `copy`, ...) that hide the caller: each operation kind
//!    has its own fixed site, one for every `poll_read`, one for every
//!    `poll_write`, one for every `poll_seek` (`poll_flush` and `poll_close`
//!    make no call; there is no user-space buffer).
//!
//! What callers see: the signatures read `fn read(path) -> impl Future<...>`
//! in rustdoc instead of `async fn read(path) -> ...`; the `.await`s,
//! arguments, outputs and `Send`-ness are those of the `async fn`s they
//! replace. Methods that borrow (`File::read(&mut self, &mut [u8])`) return a
//! future bound by one lifetime `'a` shared by their borrows (edition 2021's
//! `impl Trait` captures no lifetime implicitly; `+ use<..>` needs Rust 1.82,
//! above the workspace's `rust-version`).
//!
//! Rejected: `io_uring` (a different project: completion-based buffers
//! cannot be borrowed from a cancellable future) and a pool thread per call
//! (that is what `spawn_blocking` is for). For call sites: a hand-written
//! future type per function (as many types as functions, for no gain over
//! an `async` block behind `impl Future`), and a site argument the user
//! passes (noise at every call for what the compiler knows).
use std::future::Future;
use std::io;
use std::panic::Location;
use std::path::{Path, PathBuf};

use crate::call::blocking_at;

mod file;

pub use file::{File, OpenOptions};
pub use std::fs::{DirEntry, Metadata, Permissions};

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
#[track_caller]
pub fn read(path: impl AsRef<Path>) -> impl Future<Output = io::Result<Vec<u8>>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::read(path)).await
    }
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
#[track_caller]
pub fn read_to_string(path: impl AsRef<Path>) -> impl Future<Output = io::Result<String>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::read_to_string(path)).await
    }
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
#[track_caller]
pub fn write(
    path: impl AsRef<Path>,
    contents: impl AsRef<[u8]>,
) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let (path, contents) = (path.as_ref(), contents.as_ref());
        blocking_at(site, || std::fs::write(path, contents)).await
    }
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
#[track_caller]
pub fn metadata(path: impl AsRef<Path>) -> impl Future<Output = io::Result<Metadata>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::metadata(path)).await
    }
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
#[track_caller]
pub fn remove_file(path: impl AsRef<Path>) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::remove_file(path)).await
    }
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
#[track_caller]
pub fn create_dir_all(path: impl AsRef<Path>) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::create_dir_all(path)).await
    }
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
#[track_caller]
pub fn rename(
    from: impl AsRef<Path>,
    to: impl AsRef<Path>,
) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let (from, to) = (from.as_ref(), to.as_ref());
        blocking_at(site, || std::fs::rename(from, to)).await
    }
}

/// Creates the directory at `path`; its parent must exist
/// (`std::fs::create_dir`).
///
/// # Errors
///
/// As `std::fs::create_dir`: the path exists, a parent is missing, no
/// permission.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let dir = std::env::temp_dir().join(format!("handoff-doc-mkdir1-{}", std::process::id()));
/// handoff_blocking::fs::create_dir(&dir).await?;
/// assert!(handoff_blocking::fs::create_dir(&dir).await.is_err());
/// handoff_blocking::fs::remove_dir(&dir).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn create_dir(path: impl AsRef<Path>) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::create_dir(path)).await
    }
}

/// Removes the empty directory at `path` (`std::fs::remove_dir`).
///
/// # Errors
///
/// As `std::fs::remove_dir`: the directory is not empty, does not exist, no
/// permission.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let dir = std::env::temp_dir().join(format!("handoff-doc-rmdir-{}", std::process::id()));
/// handoff_blocking::fs::create_dir(&dir).await?;
/// handoff_blocking::fs::remove_dir(&dir).await?;
/// assert!(!handoff_blocking::fs::try_exists(&dir).await?);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn remove_dir(path: impl AsRef<Path>) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::remove_dir(path)).await
    }
}

/// Removes the directory at `path` and everything in it
/// (`std::fs::remove_dir_all`), as one call: a big tree holds the task (not
/// the slot, which the monitor hands on) until it is gone.
///
/// # Errors
///
/// As `std::fs::remove_dir_all`.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let dir = std::env::temp_dir().join(format!("handoff-doc-rmall-{}", std::process::id()));
/// handoff_blocking::fs::create_dir_all(dir.join("x/y")).await?;
/// handoff_blocking::fs::write(dir.join("x/y/f"), b"1").await?;
/// handoff_blocking::fs::remove_dir_all(&dir).await?;
/// assert!(!handoff_blocking::fs::try_exists(&dir).await?);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn remove_dir_all(path: impl AsRef<Path>) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::remove_dir_all(path)).await
    }
}

/// Copies the contents and permissions of `from` to `to`, returning the
/// number of bytes copied (`std::fs::copy`; in-kernel where Linux allows).
///
/// # Errors
///
/// As `std::fs::copy`.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let dir = std::env::temp_dir();
/// let (a, b) = (dir.join(format!("handoff-doc-cp-a-{}", std::process::id())),
///               dir.join(format!("handoff-doc-cp-b-{}", std::process::id())));
/// handoff_blocking::fs::write(&a, b"copied").await?;
/// assert_eq!(handoff_blocking::fs::copy(&a, &b).await?, 6);
/// assert_eq!(handoff_blocking::fs::read(&b).await?, b"copied");
/// # handoff_blocking::fs::remove_file(&a).await?;
/// # handoff_blocking::fs::remove_file(&b).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> impl Future<Output = io::Result<u64>> {
    let site = Location::caller();
    async move {
        let (from, to) = (from.as_ref(), to.as_ref());
        blocking_at(site, || std::fs::copy(from, to)).await
    }
}

/// Returns the absolute path of `path` with every symlink resolved
/// (`std::fs::canonicalize`).
///
/// # Errors
///
/// As `std::fs::canonicalize`: a component does not exist.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let root = handoff_blocking::fs::canonicalize("/proc/../").await?;
/// assert_eq!(root, std::path::Path::new("/"));
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn canonicalize(path: impl AsRef<Path>) -> impl Future<Output = io::Result<PathBuf>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::canonicalize(path)).await
    }
}

/// Returns the metadata of `path` itself, not following a symlink
/// (`std::fs::symlink_metadata`).
///
/// # Errors
///
/// As `std::fs::symlink_metadata`.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let meta = handoff_blocking::fs::symlink_metadata("/proc/self").await?;
/// assert!(meta.file_type().is_symlink());
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn symlink_metadata(path: impl AsRef<Path>) -> impl Future<Output = io::Result<Metadata>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::symlink_metadata(path)).await
    }
}

/// Returns what the symlink at `path` points to (`std::fs::read_link`).
///
/// # Errors
///
/// As `std::fs::read_link`: `path` is not a symlink, does not exist.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let target = handoff_blocking::fs::read_link("/proc/self").await?;
/// assert_eq!(target.to_str(), Some(std::process::id().to_string().as_str()));
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn read_link(path: impl AsRef<Path>) -> impl Future<Output = io::Result<PathBuf>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || std::fs::read_link(path)).await
    }
}

/// Creates a hard link `link` to the file `original` (`std::fs::hard_link`).
///
/// # Errors
///
/// As `std::fs::hard_link`: `link` exists, the two are on different
/// filesystems.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let dir = std::env::temp_dir();
/// let (a, b) = (dir.join(format!("handoff-doc-ln-a-{}", std::process::id())),
///               dir.join(format!("handoff-doc-ln-b-{}", std::process::id())));
/// handoff_blocking::fs::write(&a, b"linked").await?;
/// handoff_blocking::fs::hard_link(&a, &b).await?;
/// assert_eq!(handoff_blocking::fs::read(&b).await?, b"linked");
/// # handoff_blocking::fs::remove_file(&a).await?;
/// # handoff_blocking::fs::remove_file(&b).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn hard_link(
    original: impl AsRef<Path>,
    link: impl AsRef<Path>,
) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let (original, link) = (original.as_ref(), link.as_ref());
        blocking_at(site, || std::fs::hard_link(original, link)).await
    }
}

/// Sets the permissions of the file at `path` (`std::fs::set_permissions`).
///
/// # Errors
///
/// As `std::fs::set_permissions`: the file does not exist, not its owner.
///
/// # Examples
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// # futures::executor::block_on(async {
/// let path = std::env::temp_dir().join(format!("handoff-doc-chmod-{}", std::process::id()));
/// handoff_blocking::fs::write(&path, b"x").await?;
/// handoff_blocking::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).await?;
/// let mode = handoff_blocking::fs::metadata(&path).await?.permissions().mode();
/// assert_eq!(mode & 0o777, 0o600);
/// # handoff_blocking::fs::remove_file(&path).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn set_permissions(
    path: impl AsRef<Path>,
    permissions: Permissions,
) -> impl Future<Output = io::Result<()>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, move || std::fs::set_permissions(path, permissions)).await
    }
}

/// Whether `path` exists: `Ok(false)` for a path that is not there (or a
/// broken symlink), an error when that cannot be known (no permission to
/// look) — unlike `Path::exists`, which says `false` for both.
///
/// # Errors
///
/// A failure to look other than "not found".
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// assert!(handoff_blocking::fs::try_exists("/proc/self").await?);
/// assert!(!handoff_blocking::fs::try_exists("/definitely/not/here").await?);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn try_exists(path: impl AsRef<Path>) -> impl Future<Output = io::Result<bool>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        blocking_at(site, || match std::fs::metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        })
        .await
    }
}

/// Opens the directory at `path` for listing (`std::fs::read_dir`); each
/// [`ReadDir::next_entry`] is one call.
///
/// # Errors
///
/// As `std::fs::read_dir`: not a directory, does not exist, no permission.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let mut dir = handoff_blocking::fs::read_dir("/proc/self").await?;
/// let mut names = Vec::new();
/// while let Some(entry) = dir.next_entry().await? {
///     names.push(entry.file_name());
/// }
/// assert!(names.iter().any(|n| n == "status"));
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn read_dir(path: impl AsRef<Path>) -> impl Future<Output = io::Result<ReadDir>> {
    let site = Location::caller();
    async move {
        let path = path.as_ref();
        let inner = blocking_at(site, || std::fs::read_dir(path)).await?;
        Ok(ReadDir { inner })
    }
}

/// The entries of a directory, from [`read_dir`]. `std` reads them from the
/// kernel in batches (`getdents64`), so most [`next_entry`](ReadDir::next_entry)
/// calls return without a system call.
#[derive(Debug)]
pub struct ReadDir {
    inner: std::fs::ReadDir,
}

impl ReadDir {
    /// The next entry, or `None` at the end (`.` and `..` are skipped).
    ///
    /// # Errors
    ///
    /// An I/O error while reading the directory.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let mut dir = handoff_blocking::fs::read_dir("/").await?;
    /// assert!(dir.next_entry().await?.is_some());
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn next_entry(&mut self) -> impl Future<Output = io::Result<Option<DirEntry>>> + '_ {
        let site = Location::caller();
        async move {
            let inner = &mut self.inner;
            blocking_at(site, || inner.next().transpose()).await
        }
    }
}
