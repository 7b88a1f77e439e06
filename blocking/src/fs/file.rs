//! [`File`]: an open file whose every call is a handoff system call.
//!
//! The inherent methods are one [`blocking`](crate::blocking) call each,
//! borrowing the caller's buffer for the call, and learn at the caller's
//! line (`#[track_caller]` functions returning `impl Future`; see "Call
//! sites" in `fs`). The `futures::io` traits (`AsyncRead`, `AsyncWrite`,
//! `AsyncSeek`) run the same call inline through the bridge *inside*
//! `poll_*`, so they too are zero-copy; a `poll_*` cannot see its caller, so
//! each of `poll_read`, `poll_write` and `poll_seek` is one learning site of
//! its own. One wrinkle:
//!
//! # The slow exit inside `poll_*`
//!
//! When a call outlasts its slot and finds none free on return (`Exit::Slow`),
//! the poll must return `Pending`, but the call already happened. The outcome
//! is parked in the `File` and handed out by the next operation:
//!
//! 1. a read: the bytes already read into the caller's buffer are copied out
//!    (the only copy, and only on this rare path) and served by the next
//!    read; a read error is returned by the next read;
//! 2. a write or a seek: its result is returned by the next `poll_write` /
//!    `poll_seek`, *whatever buffer or position that call passes* — the
//!    `futures::io` convention that a caller repeats an operation that
//!    returned `Pending` is what makes this exact (`write_all`, `copy` and
//!    friends do);
//! 3. any other operation first settles what is parked: unread bytes are
//!    given back to the file (the cursor is moved back over them, so reads and
//!    writes still see one consistent position), a parked error is returned
//!    by that operation, a parked success is dropped (the write happened);
//! 4. a panic is resumed by the next operation, on a thread with a slot.
//!
//! Positional calls (`read_at`, `write_at`) and calls that ignore the cursor
//! (`sync_*`, `set_len`, `metadata`) do not touch the parked state.
//!
//! Rejected: tokio's design (an owned side buffer, a pool thread per
//! operation, writes acknowledged before they happen): one copy and one
//! thread hop per call, for every call, to serve a path that is rare here.
use std::fmt;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::panic::{resume_unwind, Location};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::io::{AsyncRead, AsyncSeek, AsyncWrite};
use handoff_executor::bridge::Call;

use crate::call::{blocking_at, run_at, Payload, Ran};
use crate::fs::Metadata;
use crate::learn::Site;

/// Which `poll_*` a parked result belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Read,
    Write,
    Seek,
}

/// The outcome of a `poll_*` call that took the slow exit (module header).
#[derive(Default)]
enum Parked {
    #[default]
    Empty,
    /// Bytes read from the file (the cursor is past them) not yet handed out.
    Bytes { data: Vec<u8>, pos: usize },
    /// The result of a read (errors only: bytes park as `Bytes`), write or seek.
    Result { op: Op, result: io::Result<u64> },
    /// A panic of the call, resumed by the next operation. In a `Mutex` only
    /// so that `File` stays `Sync` (a payload is `Send`, not `Sync`): `&File`
    /// is held across awaits by `read_at` and friends.
    Panic(Mutex<Payload>),
}

impl Parked {
    /// Step 4: resumes a parked panic. Called first by every operation.
    fn resume_panic(&mut self) {
        if matches!(self, Parked::Panic(_)) {
            if let Parked::Panic(payload) = std::mem::take(self) {
                resume_unwind(payload.into_inner().unwrap_or_else(PoisonError::into_inner));
            }
        }
    }

    /// Step 1: serves parked bytes into `buf`.
    fn take_bytes(&mut self, buf: &mut [u8]) -> Option<usize> {
        let Parked::Bytes { data, pos } = self else {
            return None;
        };
        let n = buf.len().min(data.len() - *pos);
        buf[..n].copy_from_slice(&data[*pos..*pos + n]);
        *pos += n;
        if *pos == data.len() {
            *self = Parked::Empty;
        }
        Some(n)
    }

    /// Step 2: the parked result of `op`, if that is what is parked.
    fn take_result(&mut self, op: Op) -> Option<io::Result<u64>> {
        match self {
            Parked::Result { op: parked, .. } if *parked == op => match std::mem::take(self) {
                Parked::Result { result, .. } => Some(result),
                _ => unreachable!("matched a parked result just above"),
            },
            _ => None,
        }
    }

    /// Step 3, run inside the next call: give unread bytes back to the file,
    /// return a parked error, drop a parked success.
    fn settle(&mut self, file: &std::fs::File) -> io::Result<()> {
        match std::mem::take(self) {
            Parked::Empty => Ok(()),
            Parked::Bytes { data, pos } => {
                let unread = i64::try_from(data.len() - pos).expect("a read fits in an i64");
                let mut file = file;
                file.seek(SeekFrom::Current(-unread)).map(drop)
            }
            Parked::Result { result, .. } => result.map(drop),
            Parked::Panic(payload) => {
                // Operations resume a panic before they enter a call.
                *self = Parked::Panic(payload);
                Ok(())
            }
        }
    }
}

/// An open file; every operation is a handoff system call.
///
/// Open one with [`File::open`], [`File::create`] or [`File::options`]. The
/// inherent methods take the caller's buffers by reference, for the length of
/// the call, with no copy. The `futures::io` traits are implemented too (see
/// the module notes on the rare slow exit).
///
/// There is no user-space buffer: `write` is `write(2)`, and dropping a
/// `File` closes it. Use [`File::sync_all`] to make writes durable.
///
/// # Cancellation
///
/// An inherent operation runs its call on its first poll and, on the common
/// fast exit, completes in that same poll. A future dropped after a slow exit
/// drops the call's result (the read or write did happen), like tokio's.
///
/// # Examples
///
/// ```
/// use handoff_blocking::fs::File;
/// use std::io::SeekFrom;
///
/// # futures::executor::block_on(async {
/// let path = std::env::temp_dir().join(format!("handoff-doc-file-{}", std::process::id()));
/// let mut file = File::create(&path).await?;
/// file.write_all(b"hello, world").await?;
/// file.sync_all().await?;
///
/// let mut file = File::open(&path).await?;
/// let mut buf = [0u8; 5];
/// assert_eq!(file.read(&mut buf).await?, 5);
/// assert_eq!(&buf, b"hello");
/// file.seek(SeekFrom::Start(7)).await?;
/// assert_eq!(file.read(&mut buf).await?, 5);
/// assert_eq!(&buf, b"world");
/// # handoff_blocking::fs::remove_file(&path).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
pub struct File {
    std: std::fs::File,
    parked: Parked,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.std.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl File {
    /// Opens the file at `path` read-only.
    ///
    /// # Errors
    ///
    /// As `std::fs::File::open`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let file = handoff_blocking::fs::File::open("/proc/self/status").await?;
    /// assert!(file.metadata().await?.is_file());
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn open(path: impl AsRef<Path>) -> impl Future<Output = io::Result<File>> {
        let site = Location::caller();
        async move {
            let path = path.as_ref();
            blocking_at(site, || std::fs::File::open(path))
                .await
                .map(File::from_std)
        }
    }

    /// Opens the file at `path` write-only, creating it or truncating it.
    ///
    /// # Errors
    ///
    /// As `std::fs::File::create`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-create-{}", std::process::id()));
    /// let mut file = handoff_blocking::fs::File::create(&path).await?;
    /// assert_eq!(file.write(b"abc").await?, 3);
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn create(path: impl AsRef<Path>) -> impl Future<Output = io::Result<File>> {
        let site = Location::caller();
        async move {
            let path = path.as_ref();
            blocking_at(site, || std::fs::File::create(path))
                .await
                .map(File::from_std)
        }
    }

    /// Returns an [`OpenOptions`] builder, for any other way of opening a file.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-options-{}", std::process::id()));
    /// let mut file = handoff_blocking::fs::File::options()
    ///     .read(true).write(true).create(true).truncate(true)
    ///     .open(&path).await?;
    /// file.write_all(b"xyz").await?;
    /// let mut buf = [0u8; 3];
    /// assert_eq!(file.read_at(&mut buf, 0).await?, 3);
    /// assert_eq!(&buf, b"xyz");
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open `std::fs::File`.
    ///
    /// # Examples
    ///
    /// ```
    /// let std = std::fs::File::open("/proc/self/status").unwrap();
    /// let file = handoff_blocking::fs::File::from_std(std);
    /// ```
    pub fn from_std(std: std::fs::File) -> File {
        File {
            std,
            parked: Parked::Empty,
        }
    }

    /// Unwraps the `std::fs::File`, after settling anything parked by a slow
    /// exit of a `futures::io` call (unread bytes are given back to the file).
    ///
    /// # Errors
    ///
    /// An error parked by a `futures::io` call that was not reported yet, or
    /// the failure to move the cursor back over unread bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let file = handoff_blocking::fs::File::open("/proc/self/status").await?;
    /// let std: std::fs::File = file.into_std().await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn into_std(mut self) -> impl Future<Output = io::Result<std::fs::File>> {
        let site = Location::caller();
        async move {
            self.parked.resume_panic();
            if !matches!(self.parked, Parked::Empty) {
                let (file, parked) = (&self.std, &mut self.parked);
                blocking_at(site, || parked.settle(file)).await?;
            }
            Ok(self.std)
        }
    }

    /// Reads into `buf` at the cursor, returning how many bytes were read
    /// (0 at the end of the file). One `read(2)`, straight into `buf`.
    ///
    /// # Errors
    ///
    /// As `read(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let mut file = handoff_blocking::fs::File::open("/proc/self/status").await?;
    /// let mut buf = [0u8; 5];
    /// assert_eq!(file.read(&mut buf).await?, 5);
    /// assert_eq!(&buf, b"Name:");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn read<'a>(
        &'a mut self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        let site = Location::caller();
        async move {
            self.parked.resume_panic();
            if let Some(n) = self.parked.take_bytes(buf) {
                return Ok(n);
            }
            let (file, parked) = (&self.std, &mut self.parked);
            blocking_at(site, || {
                parked.settle(file)?;
                (&*file).read(buf)
            })
            .await
        }
    }

    /// Reads everything from the cursor to the end of the file, appending it
    /// to `buf`; returns how many bytes were appended.
    ///
    /// # Errors
    ///
    /// As `std::io::Read::read_to_end`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let mut file = handoff_blocking::fs::File::open("/proc/self/status").await?;
    /// let mut text = Vec::new();
    /// file.read_to_end(&mut text).await?;
    /// assert!(text.starts_with(b"Name:"));
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn read_to_end<'a>(
        &'a mut self,
        buf: &'a mut Vec<u8>,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        let site = Location::caller();
        async move {
            self.parked.resume_panic();
            let mut served = 0;
            if let Parked::Bytes { data, pos } = &mut self.parked {
                buf.extend_from_slice(&data[*pos..]);
                served += data.len() - *pos;
                self.parked = Parked::Empty;
            }
            let (file, parked) = (&self.std, &mut self.parked);
            let n = blocking_at(site, || {
                parked.settle(file)?;
                (&*file).read_to_end(buf)
            })
            .await?;
            Ok(served + n)
        }
    }

    /// Reads into `buf` at `offset` (`pread(2)`), without moving the cursor.
    ///
    /// # Errors
    ///
    /// As `pread(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-read-at-{}", std::process::id()));
    /// handoff_blocking::fs::write(&path, b"0123456789").await?;
    /// let file = handoff_blocking::fs::File::open(&path).await?;
    /// let mut buf = [0u8; 3];
    /// assert_eq!(file.read_at(&mut buf, 4).await?, 3);
    /// assert_eq!(&buf, b"456");
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn read_at<'a>(
        &'a self,
        buf: &'a mut [u8],
        offset: u64,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        let site = Location::caller();
        async move {
            let file = &self.std;
            blocking_at(site, || file.read_at(buf, offset)).await
        }
    }

    /// Another name for [`File::read_at`], after the system call.
    ///
    /// # Errors
    ///
    /// As `pread(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let file = handoff_blocking::fs::File::open("/proc/self/status").await?;
    /// let mut buf = [0u8; 4];
    /// assert_eq!(file.pread(&mut buf, 0).await?, 4);
    /// assert_eq!(&buf, b"Name");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn pread<'a>(
        &'a self,
        buf: &'a mut [u8],
        offset: u64,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        // `read_at` is `#[track_caller]` too: the site is our caller's.
        self.read_at(buf, offset)
    }

    /// Writes `buf` at the cursor, returning how many bytes were written.
    /// One `write(2)`, straight from `buf`.
    ///
    /// # Errors
    ///
    /// As `write(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-fwrite-{}", std::process::id()));
    /// let mut file = handoff_blocking::fs::File::create(&path).await?;
    /// assert_eq!(file.write(b"abc").await?, 3);
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        let site = Location::caller();
        async move {
            self.parked.resume_panic();
            let (file, parked) = (&self.std, &mut self.parked);
            blocking_at(site, || {
                parked.settle(file)?;
                (&*file).write(buf)
            })
            .await
        }
    }

    /// Writes all of `buf` at the cursor, in one system call from the task's
    /// point of view (`write(2)` repeated inside it until done).
    ///
    /// # Errors
    ///
    /// As `std::io::Write::write_all`; on error, part of `buf` may have been
    /// written.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-wall-{}", std::process::id()));
    /// let mut file = handoff_blocking::fs::File::create(&path).await?;
    /// file.write_all(&[1u8; 100_000]).await?;
    /// assert_eq!(file.metadata().await?.len(), 100_000);
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> impl Future<Output = io::Result<()>> + 'a {
        let site = Location::caller();
        async move {
            self.parked.resume_panic();
            let (file, parked) = (&self.std, &mut self.parked);
            blocking_at(site, || {
                parked.settle(file)?;
                (&*file).write_all(buf)
            })
            .await
        }
    }

    /// Writes `buf` at `offset` (`pwrite(2)`), without moving the cursor;
    /// returns how many bytes were written.
    ///
    /// # Errors
    ///
    /// As `pwrite(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-wat-{}", std::process::id()));
    /// handoff_blocking::fs::write(&path, b"0123456789").await?;
    /// let file = handoff_blocking::fs::File::options().write(true).open(&path).await?;
    /// assert_eq!(file.write_at(b"ab", 3).await?, 2);
    /// assert_eq!(handoff_blocking::fs::read(&path).await?, b"012ab56789");
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn write_at<'a>(
        &'a self,
        buf: &'a [u8],
        offset: u64,
    ) -> impl Future<Output = io::Result<usize>> + 'a {
        let site = Location::caller();
        async move {
            let file = &self.std;
            blocking_at(site, || file.write_at(buf, offset)).await
        }
    }

    /// Moves the cursor (`lseek(2)`), returning the new position from the
    /// start of the file.
    ///
    /// # Errors
    ///
    /// As `lseek(2)`: a negative position, a file that cannot seek.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::SeekFrom;
    /// # futures::executor::block_on(async {
    /// let mut file = handoff_blocking::fs::File::open("/proc/self/exe").await?;
    /// assert_eq!(file.seek(SeekFrom::Start(1)).await?, 1);
    /// let mut magic = [0u8; 3];
    /// file.read(&mut magic).await?;
    /// assert_eq!(&magic, b"ELF");
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn seek(&mut self, pos: SeekFrom) -> impl Future<Output = io::Result<u64>> + '_ {
        let site = Location::caller();
        async move {
            self.parked.resume_panic();
            let (file, parked) = (&self.std, &mut self.parked);
            blocking_at(site, || {
                parked.settle(file)?;
                (&*file).seek(pos)
            })
            .await
        }
    }

    /// Flushes the file's data and metadata to the device (`fsync(2)`).
    ///
    /// # Errors
    ///
    /// As `fsync(2)`: an I/O error of the device, for instance.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-fsync-{}", std::process::id()));
    /// let mut file = handoff_blocking::fs::File::create(&path).await?;
    /// file.write_all(b"durable").await?;
    /// file.sync_all().await?;
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn sync_all(&self) -> impl Future<Output = io::Result<()>> + '_ {
        let site = Location::caller();
        async move {
            let file = &self.std;
            blocking_at(site, || file.sync_all()).await
        }
    }

    /// Flushes the file's data, and only the metadata needed to read it back,
    /// to the device (`fdatasync(2)`).
    ///
    /// # Errors
    ///
    /// As `fdatasync(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-fdsync-{}", std::process::id()));
    /// let mut file = handoff_blocking::fs::File::create(&path).await?;
    /// file.write_all(b"data").await?;
    /// file.sync_data().await?;
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn sync_data(&self) -> impl Future<Output = io::Result<()>> + '_ {
        let site = Location::caller();
        async move {
            let file = &self.std;
            blocking_at(site, || file.sync_data()).await
        }
    }

    /// Truncates or extends the file to `size` bytes (`ftruncate(2)`); the
    /// cursor does not move.
    ///
    /// # Errors
    ///
    /// As `ftruncate(2)`: the file is not open for writing, for instance.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let path = std::env::temp_dir().join(format!("handoff-doc-setlen-{}", std::process::id()));
    /// let file = handoff_blocking::fs::File::create(&path).await?;
    /// file.set_len(1 << 20).await?;
    /// assert_eq!(file.metadata().await?.len(), 1 << 20);
    /// # handoff_blocking::fs::remove_file(&path).await?;
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn set_len(&self, size: u64) -> impl Future<Output = io::Result<()>> + '_ {
        let site = Location::caller();
        async move {
            let file = &self.std;
            blocking_at(site, || file.set_len(size)).await
        }
    }

    /// Returns the file's metadata (`fstat(2)`).
    ///
    /// # Errors
    ///
    /// As `fstat(2)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let file = handoff_blocking::fs::File::open("/proc/self/exe").await?;
    /// assert!(file.metadata().await?.len() > 0);
    /// # std::io::Result::Ok(()) }).unwrap();
    /// ```
    #[track_caller]
    pub fn metadata(&self) -> impl Future<Output = io::Result<Metadata>> + '_ {
        let site = Location::caller();
        async move {
            let file = &self.std;
            blocking_at(site, || file.metadata()).await
        }
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.std.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.std.as_fd()
    }
}

impl From<std::fs::File> for File {
    fn from(std: std::fs::File) -> File {
        File::from_std(std)
    }
}

/// Runs one cursor operation of a `poll_*` function through the bridge:
/// settle what is parked, run `op`; on a slow exit park the outcome with
/// `park`, wake the task and return `Pending` (module header, steps 1–4).
///
/// `site` is the operation kind's own learning site (module header, "Call
/// sites"): the `Location::caller()` written in `poll_read`, `poll_write` or
/// `poll_seek` itself, which a trait method cannot take from its caller.
fn poll_call<T>(
    file: &mut File,
    cx: &mut Context<'_>,
    site: &'static Location<'static>,
    op: impl FnOnce(&std::fs::File) -> io::Result<T>,
    park: impl FnOnce(io::Result<T>) -> Parked,
) -> Poll<io::Result<T>> {
    let (std, parked) = (&file.std, &mut file.parked);
    match run_at(Call::Short, Some(Site::of(site)), || {
        parked.settle(std)?;
        op(std)
    }) {
        Ran::Ready(result) => Poll::Ready(result),
        Ran::Slow(out) => {
            file.parked = match out {
                Ok(result) => park(result),
                Err(payload) => Parked::Panic(Mutex::new(payload)),
            };
            // No slot: the wake goes to the global queue.
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn widen(n: usize) -> u64 {
    u64::try_from(n).expect("a byte count fits in a u64")
}

fn narrow(n: u64) -> usize {
    usize::try_from(n).expect("a parked byte count came from a usize")
}

/// Zero-copy reads through the bridge; see the module notes for a slow exit.
///
/// ```
/// use futures::io::AsyncReadExt;
/// # futures::executor::block_on(async {
/// let mut file = handoff_blocking::fs::File::open("/proc/self/status").await?;
/// let mut text = String::new();
/// AsyncReadExt::read_to_string(&mut file, &mut text).await?;
/// assert!(text.starts_with("Name:"));
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
impl AsyncRead for File {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.parked.resume_panic();
        if let Some(n) = this.parked.take_bytes(buf) {
            return Poll::Ready(Ok(n));
        }
        if let Some(result) = this.parked.take_result(Op::Read) {
            return Poll::Ready(result.map(narrow));
        }
        let mut got = 0;
        let poll = poll_call(
            this,
            cx,
            // Not `#[track_caller]`: this line, one site for every poll_read.
            Location::caller(),
            |mut f| {
                let n = f.read(buf)?;
                got = n;
                Ok(n)
            },
            |result| match result {
                // The bytes are in the caller's buffer now; park a copy.
                Ok(_) => Parked::Empty,
                Err(e) => Parked::Result {
                    op: Op::Read,
                    result: Err(e),
                },
            },
        );
        if poll.is_pending() && matches!(this.parked, Parked::Empty) {
            this.parked = Parked::Bytes {
                data: buf[..got].to_vec(),
                pos: 0,
            };
        }
        poll
    }
}

/// Zero-copy writes through the bridge; see the module notes for a slow exit.
/// There is no user-space buffer: `poll_flush` and `poll_close` only report
/// a parked write error.
///
/// ```
/// use futures::io::AsyncWriteExt;
/// # futures::executor::block_on(async {
/// let path = std::env::temp_dir().join(format!("handoff-doc-awrite-{}", std::process::id()));
/// let mut file = handoff_blocking::fs::File::create(&path).await?;
/// AsyncWriteExt::write_all(&mut file, b"via futures::io").await?;
/// file.close().await?;
/// assert_eq!(handoff_blocking::fs::read(&path).await?, b"via futures::io");
/// # handoff_blocking::fs::remove_file(&path).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
impl AsyncWrite for File {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.parked.resume_panic();
        if let Some(result) = this.parked.take_result(Op::Write) {
            return Poll::Ready(result.map(narrow));
        }
        poll_call(
            this,
            cx,
            // This line: one site for every poll_write.
            Location::caller(),
            |mut f| f.write(buf),
            |result| Parked::Result {
                op: Op::Write,
                result: result.map(widen),
            },
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.parked.resume_panic();
        if let Parked::Result {
            op: Op::Write,
            result: Err(_),
        } = this.parked
        {
            let result = this.parked.take_result(Op::Write);
            return Poll::Ready(result.map_or(Ok(()), |r| r.map(drop)));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Seeks through the bridge; see the module notes for a slow exit.
///
/// ```
/// use futures::io::{AsyncReadExt, AsyncSeekExt};
/// use std::io::SeekFrom;
/// # futures::executor::block_on(async {
/// let mut file = handoff_blocking::fs::File::open("/proc/self/exe").await?;
/// AsyncSeekExt::seek(&mut file, SeekFrom::Start(1)).await?;
/// let mut magic = [0u8; 3];
/// AsyncReadExt::read_exact(&mut file, &mut magic).await?;
/// assert_eq!(&magic, b"ELF");
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
impl AsyncSeek for File {
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        this.parked.resume_panic();
        if let Some(result) = this.parked.take_result(Op::Seek) {
            return Poll::Ready(result);
        }
        poll_call(
            this,
            cx,
            // This line: one site for every poll_seek.
            Location::caller(),
            |mut f| f.seek(pos),
            |result| Parked::Result {
                op: Op::Seek,
                result,
            },
        )
    }
}

/// Options for opening a [`File`] (`std::fs::OpenOptions`, with `open` as a
/// handoff system call).
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let path = std::env::temp_dir().join(format!("handoff-doc-oo-{}", std::process::id()));
/// let mut log = handoff_blocking::fs::OpenOptions::new()
///     .append(true).create(true).mode(0o600)
///     .open(&path).await?;
/// log.write_all(b"line\n").await?;
/// # handoff_blocking::fs::remove_file(&path).await?;
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    std: std::fs::OpenOptions,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Options with every flag off (as `std::fs::OpenOptions::new`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut options = handoff_blocking::fs::OpenOptions::new();
    /// options.read(true);
    /// ```
    pub fn new() -> OpenOptions {
        OpenOptions {
            std: std::fs::OpenOptions::new(),
        }
    }

    /// Open for reading.
    ///
    /// # Examples
    ///
    /// ```
    /// handoff_blocking::fs::OpenOptions::new().read(true);
    /// ```
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.std.read(read);
        self
    }

    /// Open for writing.
    ///
    /// # Examples
    ///
    /// ```
    /// handoff_blocking::fs::OpenOptions::new().write(true);
    /// ```
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.std.write(write);
        self
    }

    /// Every write goes to the end of the file (`O_APPEND`).
    ///
    /// # Examples
    ///
    /// ```
    /// handoff_blocking::fs::OpenOptions::new().append(true);
    /// ```
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.std.append(append);
        self
    }

    /// Truncate the file to 0 bytes on open (`O_TRUNC`; needs `write`).
    ///
    /// # Examples
    ///
    /// ```
    /// handoff_blocking::fs::OpenOptions::new().write(true).truncate(true);
    /// ```
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.std.truncate(truncate);
        self
    }

    /// Create the file if it does not exist (`O_CREAT`; needs `write` or `append`).
    ///
    /// # Examples
    ///
    /// ```
    /// handoff_blocking::fs::OpenOptions::new().write(true).create(true);
    /// ```
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.std.create(create);
        self
    }

    /// Create the file, failing if it exists (`O_CREAT | O_EXCL`).
    ///
    /// # Examples
    ///
    /// ```
    /// handoff_blocking::fs::OpenOptions::new().write(true).create_new(true);
    /// ```
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.std.create_new(create_new);
        self
    }

    /// The permission bits of a created file, before the umask (default `0o666`).
    ///
    /// # Examples
    ///
    /// ```
    /// handoff_blocking::fs::OpenOptions::new().write(true).create(true).mode(0o600);
    /// ```
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.std.mode(mode);
        self
    }

    /// Extra `open(2)` flags, such as `libc::O_NOFOLLOW` or `libc::O_DIRECT`.
    ///
    /// # Examples
    ///
    /// ```
    /// handoff_blocking::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW);
    /// ```
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.std.custom_flags(flags);
        self
    }

    /// Opens the file at `path` with these options.
    ///
    /// # Errors
    ///
    /// As `std::fs::OpenOptions::open`: invalid flag combinations
    /// (`InvalidInput`), a missing file without `create`, no permission.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let err = handoff_blocking::fs::OpenOptions::new()
    ///     .read(true)
    ///     .open("/definitely/not/here")
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// # });
    /// ```
    #[track_caller]
    pub fn open<'a>(
        &'a self,
        path: impl AsRef<Path> + 'a,
    ) -> impl Future<Output = io::Result<File>> + 'a {
        let site = Location::caller();
        async move {
            let (std, path) = (&self.std, path.as_ref());
            blocking_at(site, || std.open(path))
                .await
                .map(File::from_std)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("handoff-fs-unit-{name}-{}", std::process::id()))
    }

    #[test]
    fn parked_bytes_are_served_then_given_back() {
        let path = temp("parked");
        std::fs::write(&path, b"abcdefgh").unwrap();
        let mut std = std::fs::File::open(&path).unwrap();
        let mut first = [0u8; 6];
        std.read_exact(&mut first).unwrap();
        let mut file = File::from_std(std);
        // As after a slow exit of a 6-byte poll_read.
        file.parked = Parked::Bytes {
            data: first.to_vec(),
            pos: 0,
        };
        let mut two = [0u8; 2];
        assert_eq!(file.parked.take_bytes(&mut two), Some(2));
        assert_eq!(&two, b"ab");
        // A seek now settles: the 4 unread bytes go back to the file.
        let pos = futures::executor::block_on(file.seek(SeekFrom::Current(0))).unwrap();
        assert_eq!(pos, 2);
        let mut rest = Vec::new();
        futures::executor::block_on(file.read_to_end(&mut rest)).unwrap();
        assert_eq!(rest, b"cdefgh");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn parked_write_result_answers_the_next_poll_write() {
        let path = temp("pw");
        let mut file = File::from_std(std::fs::File::create(&path).unwrap());
        file.parked = Parked::Result {
            op: Op::Write,
            result: Ok(5),
        };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let poll = Pin::new(&mut file).poll_write(&mut cx, b"hello");
        assert!(matches!(poll, Poll::Ready(Ok(5))));
        assert!(matches!(file.parked, Parked::Empty));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn parked_error_is_reported_by_the_next_operation() {
        let mut file = File::from_std(std::fs::File::open("/proc/self/status").unwrap());
        file.parked = Parked::Result {
            op: Op::Seek,
            result: Err(io::Error::other("parked")),
        };
        let err = futures::executor::block_on(file.read(&mut [0u8; 4])).unwrap_err();
        assert_eq!(err.to_string(), "parked");
        // Reported once.
        assert_eq!(
            futures::executor::block_on(file.read(&mut [0u8; 4])).unwrap(),
            4
        );
    }

    #[test]
    fn file_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_sync<T: Sync>() {}
        assert_sync::<File>();
        let mut file = File::from_std(std::fs::File::open("/proc/self/status").unwrap());
        let mut buf = [0u8; 4];
        assert_send(&file.read(&mut buf));
        assert_send(&file.read_at(&mut buf, 0));
        assert_send(&file.pread(&mut buf, 0));
        assert_send(&file.read_to_end(&mut Vec::new()));
        assert_send(&file.write(b"x"));
        assert_send(&file.write_all(b"x"));
        assert_send(&file.write_at(b"x", 0));
        assert_send(&file.seek(SeekFrom::Start(0)));
        assert_send(&file.sync_all());
        assert_send(&file.metadata());
        assert_send(&File::open("/proc/self/status"));
        assert_send(&File::create(String::from("/nonexistent/x")));
        assert_send(&OpenOptions::new().open("/proc/self/status"));
        assert_send(&file.into_std());
        assert_send(&crate::fs::read("/proc/self/status"));
        assert_send(&crate::fs::read(std::path::PathBuf::from(
            "/proc/self/status",
        )));
        assert_send(&crate::fs::write("/nonexistent/x", vec![1u8]));
        assert_send(&crate::fs::read_dir("/proc/self"));
        let mut dir = std::fs::read_dir("/proc/self").map(|inner| crate::fs::ReadDir { inner });
        if let Ok(dir) = dir.as_mut() {
            assert_send(&dir.next_entry());
        }
        assert_send(&crate::lookup_host("localhost:1"));
        assert_send(&crate::lookup_host(("localhost", 1)));
    }
}
