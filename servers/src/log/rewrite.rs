//! The log's compaction: [`Log::begin_rewrite`], [`Rewriter`] and the
//! rewrite's share of the log's state. The design (steps R0 to R4, why no
//! write is lost, failures, what was rejected) is in the parent module's
//! docs, under Compaction; this file is its code.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use super::{publish, record, Log, REWRITE_FILE, REWRITE_RETRY_AFTER_FAILURE};
use crate::rt::Rt;

/// Catch-up passes a rewrite makes before it switches (see the parent
/// module's docs, step R3): each copies to the new file what clients wrote
/// while the previous step ran, outside any round, so the switch itself
/// (which holds up group commit) has little left to copy. As long as the
/// disk takes bytes faster than clients send them, each pass leaves less
/// than the one before; two are enough to make the last copy small. Redis
/// before 7.0 did the same: it streamed its rewrite buffer to the child
/// while the child ran, and wrote only the last bit in the parent.
const CATCHUP_PASSES: usize = 2;

/// A catch-up pass is skipped below this many bytes: it would cost a
/// `write` + `fdatasync` to save the switch one small `write`.
const CATCHUP_MIN: usize = 64 << 10;

/// What the log's compaction has done, for `INFO`.
///
/// # Example
///
/// ```
/// use handoff_servers::log::{Fsync, Log};
/// let dir = std::env::temp_dir().join(format!("log-stats-doc-{}", std::process::id()));
/// let _ = std::fs::remove_dir_all(&dir);
/// std::fs::create_dir_all(&dir).unwrap();
/// let (log, _) = Log::open(&dir, Fsync::No, |_| {}).unwrap();
/// let s = log.rewrite_stats();
/// assert_eq!((s.rewrites, s.in_progress, s.current_size), (0, false, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewriteStats {
    /// A rewrite is running.
    pub in_progress: bool,
    /// Rewrites completed (the log was switched).
    pub rewrites: u64,
    /// Rewrites abandoned after an error (the old log stayed).
    pub failures: u64,
    /// The last rewrite that ended failed.
    pub last_failed: bool,
    /// Bytes in the log file now.
    pub current_size: u64,
    /// Bytes in the log file right after the last rewrite or open.
    pub base_size: u64,
}

/// Where a test makes a rewrite fail, as a full disk would.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Writing the snapshot (step R2).
    Snapshot,
    /// A catch-up pass (step R3).
    Catchup,
    /// Writing the last records at the switch, before the rename (R4).
    Switch,
    /// Syncing the directory after the rename (R4).
    DirSync,
}

/// A rewrite's share of the log's `State`; see the parent module's docs.
pub(super) struct Rewrite {
    /// Set by [`Log::begin_rewrite`], cleared when the rewrite ends.
    pub(super) running: bool,
    /// While the rewrite runs, up to its switch: every record appended
    /// since its snapshot, minus what catch-up passes already copied.
    pub(super) tail: Option<Vec<u8>>,
    /// The rewrite waits for the round in flight to end in order to
    /// switch: no new round may start meanwhile (else a steady stream of
    /// writers could keep a round in flight forever).
    pub(super) switch_wanted: bool,
    /// [`Options::rewrite_min_size`](super::Options::rewrite_min_size).
    pub(super) min_size: u64,
    /// [`Options::rewrite_percentage`](super::Options::rewrite_percentage):
    /// 0 for no automatic rewrite.
    pub(super) percentage: u32,
    /// `size` right after the last rewrite or open.
    pub(super) base: u64,
    /// Rewrites switched, rewrites failed, and whether the last one
    /// failed: for [`RewriteStats`].
    pub(super) done: u64,
    pub(super) failures: u64,
    pub(super) last_failed: bool,
    /// No automatic rewrite before this (after a failure).
    pub(super) retry_at: Option<Instant>,
    /// A failure to inject into the next rewrite (tests).
    pub(super) fault: Option<Fault>,
}

impl Log {
    /// Whether an automatic rewrite is due (step R0): the log is at least
    /// [`Options::rewrite_min_size`](super::Options::rewrite_min_size) and
    /// twice its size right after the last rewrite (or open), no rewrite
    /// runs, the log is not poisoned, and no recent automatic rewrite
    /// failed.
    ///
    /// # Example
    ///
    /// ```
    /// use handoff_servers::log::{Fsync, Log, Options};
    /// let dir = std::env::temp_dir().join(format!("log-due-doc-{}", std::process::id()));
    /// let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let o = Options { rewrite_min_size: 1, ..Options::new(Fsync::No) };
    /// let (log, _) = Log::open_with(&dir, o, |_| {}).unwrap();
    /// assert!(!log.rewrite_due(), "an empty log has nothing to compact");
    /// ```
    pub fn rewrite_due(&self) -> bool {
        let st = self.state.lock().unwrap();
        let rw = &st.rw;
        let grown = rw
            .base
            .saturating_add(rw.base.saturating_mul(u64::from(rw.percentage)) / 100);
        !rw.running
            && rw.percentage > 0
            && st.failed.is_none()
            && st.size > rw.base
            && st.size >= rw.min_size.max(grown)
            && rw.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// Step R1: starts a rewrite of the log into the state as of the last
    /// record appended so far. The caller must hold the store's lock (the
    /// one it holds around [`Log::append`]) from this call until it has
    /// added every live key to the returned [`Rewriter`], so that the
    /// snapshot is exactly the state after that record; then it releases
    /// the lock and runs [`Rewriter::run`] (usually in a task of its own).
    ///
    /// # Errors
    ///
    /// A rewrite already runs, or the log is poisoned.
    ///
    /// # Example
    ///
    /// See [`Rewriter`].
    pub fn begin_rewrite(self: &Arc<Self>) -> Result<Rewriter, RewriteRefused> {
        let mut st = self.state.lock().unwrap();
        if st.failed.is_some() {
            return Err(RewriteRefused::Poisoned);
        }
        if st.rw.running {
            return Err(RewriteRefused::InProgress);
        }
        st.rw.running = true;
        st.rw.tail = Some(Vec::new());
        Ok(Rewriter {
            log: self.clone(),
            at: st.appended,
            snapshot: Vec::new(),
            armed: true,
        })
    }

    /// What compaction has done so far; see [`RewriteStats`].
    pub fn rewrite_stats(&self) -> RewriteStats {
        let st = self.state.lock().unwrap();
        RewriteStats {
            in_progress: st.rw.running,
            rewrites: st.rw.done,
            failures: st.rw.failures,
            last_failed: st.rw.last_failed,
            current_size: st.size,
            base_size: st.rw.base,
        }
    }

    /// Makes the next rewrite fail at `fault` as a full disk would.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn inject_rewrite_fault(&self, fault: Fault) {
        self.state.lock().unwrap().rw.fault = Some(fault);
    }

    /// Ends the running rewrite without switching (the caller holds no
    /// round: `leading` is left alone).
    fn abandon(&self, how: Ended) {
        let waiters = {
            let mut st = self.state.lock().unwrap();
            st.rw.end(how);
            // Writers held back by `switch_wanted` may lead again.
            std::mem::take(&mut st.waiters)
        };
        for w in waiters {
            w.wake();
        }
    }
}

impl Rewrite {
    /// The rewrite ended.
    fn end(&mut self, how: Ended) {
        self.running = false;
        self.tail = None;
        self.switch_wanted = false;
        match how {
            Ended::Switched => {
                self.done += 1;
                self.last_failed = false;
                self.retry_at = None;
            }
            Ended::Failed => {
                self.failures += 1;
                self.last_failed = true;
                self.retry_at = Some(Instant::now() + REWRITE_RETRY_AFTER_FAILURE);
            }
            Ended::Dropped => {}
        }
    }
}

/// How a rewrite ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The new file is the log.
    Switched,
    /// An error; the old log stayed.
    Failed,
    /// Its [`Rewriter`] was dropped before the switch; the old log stayed.
    Dropped,
}

/// Why [`Log::begin_rewrite`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteRefused {
    /// A rewrite already runs.
    InProgress,
    /// An earlier write or fsync failed; the log takes nothing more.
    Poisoned,
}

impl std::fmt::Display for RewriteRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            // Redis's words for the same refusal.
            RewriteRefused::InProgress => {
                "Background append only file rewriting already in progress"
            }
            RewriteRefused::Poisoned => "Errors writing to the append-only log",
        })
    }
}

/// One rewrite of the log, from [`Log::begin_rewrite`]: fill its snapshot
/// with [`Rewriter::set`] under the store's lock, then [`Rewriter::run`]
/// it. Dropped without running (or while running, before the switch), it
/// abandons the rewrite and the old log stays.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use handoff_servers::{log::{Fsync, Log}, Threads};
/// use futures::executor::block_on;
/// let dir = std::env::temp_dir().join(format!("log-rewriter-doc-{}", std::process::id()));
/// let _ = std::fs::remove_dir_all(&dir);
/// std::fs::create_dir_all(&dir).unwrap();
/// let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
/// let log = Arc::new(log);
/// for v in ["1", "2", "3"] {
///     let seq = log.append(&["SET", "k", v]);
///     block_on(log.durable(&Threads, seq)).unwrap();
/// }
/// // The store's lock would be held from here...
/// let mut rw = log.begin_rewrite().unwrap();
/// rw.set(b"k", b"3", None); // every live key, as it is now
/// // ...to here.
/// let size = block_on(rw.run(Threads)).unwrap();
/// assert_eq!(std::fs::metadata(log.path()).unwrap().len(), size);
/// assert_eq!(log.rewrite_stats().rewrites, 1);
/// drop(log);
/// let mut got = Vec::new();
/// Log::open(&dir, Fsync::Always, |cmd| got.push(cmd[2].to_vec())).unwrap();
/// assert_eq!(got, [b"3"]); // three records became one
/// ```
pub struct Rewriter {
    log: Arc<Log>,
    /// The snapshot is the state after record `at`.
    at: u64,
    snapshot: Vec<u8>,
    /// Dropping abandons the rewrite (cleared when the switch, which
    /// cleans up after itself, takes over).
    armed: bool,
}

impl Rewriter {
    /// Adds a live key to the snapshot: `SET key val`, or
    /// `SET key val PXAT deadline` (Unix ms) if it expires.
    pub fn set(&mut self, key: &[u8], val: &[u8], pxat: Option<u64>) {
        match pxat {
            None => record(&mut self.snapshot, &[&b"SET"[..], key, val]),
            Some(t) => record(
                &mut self.snapshot,
                &[&b"SET"[..], key, val, b"PXAT", t.to_string().as_bytes()],
            ),
        }
    }

    /// Bytes of snapshot so far.
    pub fn snapshot_len(&self) -> usize {
        self.snapshot.len()
    }

    /// Steps R2 to R4: writes the snapshot to [`REWRITE_FILE`], catches up
    /// with the records appended meanwhile and switches the log to it at a
    /// round boundary. Returns the new log's size.
    ///
    /// # Errors
    ///
    /// Writing, syncing or renaming the new file failed: it is removed, the
    /// old log stays and keeps serving. Or the log was poisoned meanwhile.
    /// Or the directory could not be synced after the rename: the log is
    /// then poisoned, since the old file may come back at a crash while new
    /// records went to the new one.
    pub async fn run<R: Rt>(mut self, rt: R) -> io::Result<u64> {
        let log = self.log.clone();
        let tmp = log.dir.join(REWRITE_FILE);
        let fault = log.state.lock().unwrap().rw.fault.take();
        // R2: the snapshot, written and synced outside every lock.
        let snapshot = std::mem::take(&mut self.snapshot);
        let mut size = snapshot.len() as u64;
        let (t, inject) = (tmp.clone(), fault == Some(Fault::Snapshot));
        let file = match rt
            .blocking(move || create_snapshot(&t, &snapshot, inject))
            .await
        {
            Ok(f) => Arc::new(f),
            Err(e) => return self.fail(&rt, e).await,
        };
        // R3: everything up to the snapshot into the old file first, so
        // that none of it is left in `buf` at the switch; then copy what
        // was written meanwhile, outside any round.
        if let Err(e) = log.durable(&rt, self.at).await {
            return self.fail(&rt, e).await;
        }
        for _ in 0..CATCHUP_PASSES {
            let chunk = {
                let mut guard = log.state.lock().unwrap();
                let st = &mut *guard;
                let unwritten = st.buf.len() + if st.leading { st.inflight } else { 0 };
                let tail = st.rw.tail.as_mut().expect("a running rewrite has a tail");
                let n = tail.len().saturating_sub(unwritten);
                if n < CATCHUP_MIN {
                    break;
                }
                let rest = tail.split_off(n);
                std::mem::replace(tail, rest)
            };
            size += chunk.len() as u64;
            let (f, inject) = (file.clone(), fault == Some(Fault::Catchup));
            let res = rt
                .blocking(move || {
                    (&*f).write_all(&chunk)?;
                    injected(inject)?;
                    crate::sys::fdatasync(&*f)
                })
                .await;
            if let Err(e) = res {
                return self.fail(&rt, e).await;
            }
        }
        // R4: at a round boundary, take leadership and the tail's records
        // up to `written`; the rest are in `buf`, for the next round.
        let tail = futures::future::poll_fn(|cx| {
            let mut guard = log.state.lock().unwrap();
            let st = &mut *guard;
            if let Some((kind, msg)) = &st.failed {
                return Poll::Ready(Err(io::Error::new(*kind, msg.clone())));
            }
            if st.leading {
                st.rw.switch_wanted = true;
                st.waiters.push(cx.waker().clone());
                return Poll::Pending;
            }
            st.leading = true;
            st.inflight = 0;
            st.rw.switch_wanted = false;
            let mut tail = st.rw.tail.take().expect("a running rewrite has a tail");
            // `tail` holds the records after the last catch-up, `buf` those
            // after `written`, and R3 made `written >= at`: `buf` is a
            // suffix of `tail`.
            let n = tail
                .len()
                .checked_sub(st.buf.len())
                .expect("the unwritten records are the tail's suffix");
            debug_assert_eq!(&tail[n..], &st.buf[..]);
            tail.truncate(n);
            Poll::Ready(Ok(tail))
        })
        .await;
        let tail = match tail {
            Ok(t) => t,
            Err(e) => return self.fail(&rt, e).await,
        };
        // From here the closure ends the rewrite (and the round it leads)
        // itself, even if this task is dropped while it runs.
        self.armed = false;
        let (inject, inject_dir) = (fault == Some(Fault::Switch), fault == Some(Fault::DirSync));
        let size = size + tail.len() as u64;
        rt.blocking(move || {
            let before = (&*file)
                .write_all(&tail)
                .and_then(|()| injected(inject))
                .and_then(|()| crate::sys::fdatasync(&*file))
                .and_then(|()| std::fs::rename(&tmp, &log.path));
            if let Err(e) = before {
                let _ = std::fs::remove_file(&tmp);
                publish(&log.state, |st| st.rw.end(Ended::Failed));
                return Err(e);
            }
            // The new file is the log now; its name must be durable before
            // any record written to it only is acknowledged.
            let dir = injected(inject_dir)
                .and_then(|()| File::open(&log.dir))
                .and_then(|d| crate::sys::fdatasync(&d));
            publish(&log.state, |st| {
                st.file = file;
                st.size = size;
                st.rw.base = size;
                // The switch synced everything written so far.
                st.synced = st.synced.max(st.written);
                match &dir {
                    Ok(()) => st.rw.end(Ended::Switched),
                    Err(e) => {
                        st.rw.end(Ended::Failed);
                        st.failed = Some((e.kind(), format!("log directory fsync failed: {e}")));
                    }
                }
            });
            dir.map(|()| size)
        })
        .await
    }

    /// Abandons the rewrite after `e`: removes the new file, the old log
    /// stays.
    async fn fail<R: Rt>(mut self, rt: &R, e: io::Error) -> io::Result<u64> {
        let tmp = self.log.dir.join(REWRITE_FILE);
        // Before `abandon`: afterwards a new rewrite may own the name.
        let _ = rt.blocking(move || std::fs::remove_file(tmp)).await;
        self.armed = false;
        self.log.abandon(Ended::Failed);
        Err(e)
    }
}

impl Drop for Rewriter {
    fn drop(&mut self) {
        if self.armed {
            self.log.abandon(Ended::Dropped);
        }
    }
}

/// Step R2's blocking part: a fresh [`REWRITE_FILE`] holding `snapshot`,
/// synced.
fn create_snapshot(tmp: &Path, snapshot: &[u8], inject: bool) -> io::Result<File> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(tmp)?;
    f.write_all(snapshot)?;
    injected(inject)?;
    crate::sys::fdatasync(&f)?;
    Ok(f)
}

/// An injected failure: what a full disk says.
fn injected(yes: bool) -> io::Result<()> {
    if yes {
        Err(io::Error::from_raw_os_error(libc::ENOSPC))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::{replay, temp_dir};
    use crate::log::{Fsync, Options};
    use crate::rt::Threads;
    use futures::executor::block_on;

    /// A log in a fresh directory `name`, `fsync` off, with these automatic
    /// rewrite settings (`--aof-rewrite-min-size`, `--aof-rewrite-percentage`).
    fn open_rewriting(name: &str, min_size: u64, percentage: u32) -> Arc<Log> {
        let o = Options {
            rewrite_min_size: min_size,
            rewrite_percentage: percentage,
            ..Options::new(Fsync::No)
        };
        Arc::new(Log::open_with(&temp_dir(name), o, |_| {}).unwrap().0)
    }

    /// Appends `SET k<i> <val>` for each `i` and waits until all are done.
    fn write(log: &Arc<Log>, keys: std::ops::Range<usize>, val: &str) {
        let mut seq = 0;
        for i in keys {
            seq = log.append(&["SET", &format!("k{i}"), val]);
        }
        block_on(log.durable(&Threads, seq)).unwrap();
    }

    #[test]
    fn rewrite_switches_to_snapshot_plus_the_records_written_meanwhile() {
        let dir = temp_dir("rewrite");
        let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
        let log = Arc::new(log);
        write(&log, 0..100, "old");
        write(&log, 0..100, "new");
        let before = std::fs::metadata(log.path()).unwrap().len();
        let mut rw = log.begin_rewrite().unwrap();
        for i in 0..100 {
            rw.set(format!("k{i}").as_bytes(), b"new", None);
        }
        // Written after the snapshot: the catch-up pass copies these
        // (more than CATCHUP_MIN of them) ...
        let big = "x".repeat(1000);
        write(&log, 100..200, &big);
        // ... and these wait in `buf` for the round after the switch.
        let pending = log.append(&["SET", "late", "1"]);
        assert_eq!(log.begin_rewrite().err(), Some(RewriteRefused::InProgress));
        let size = block_on(rw.run(Threads)).unwrap();
        block_on(log.durable(&Threads, pending)).unwrap();
        let stats = log.rewrite_stats();
        assert_eq!(
            (stats.rewrites, stats.failures, stats.in_progress),
            (1, 0, false)
        );
        assert_eq!(stats.base_size, size);
        assert_eq!(
            stats.current_size,
            std::fs::metadata(log.path()).unwrap().len()
        );
        assert!(size < before + 100 * 1000 + 100 * 40, "history dropped");
        assert!(!dir.join(REWRITE_FILE).exists());
        drop(log);
        let (got, r) = replay(&dir);
        assert_eq!((r.records, r.torn_bytes), (201, 0));
        assert_eq!(got[0], [&b"SET"[..], b"k0", b"new"]);
        assert_eq!(got[150][2], big.as_bytes());
        assert_eq!(got[200][1], b"late");
    }

    #[test]
    fn a_failed_rewrite_leaves_the_old_log_intact_and_serving() {
        for fault in [Fault::Snapshot, Fault::Catchup, Fault::Switch] {
            let dir = temp_dir(&format!("rewrite-fault-{fault:?}"));
            let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
            let log = Arc::new(log);
            write(&log, 0..10, "v");
            let mut rw = log.begin_rewrite().unwrap();
            rw.set(b"only", b"this", None);
            write(&log, 10..110, &"y".repeat(1000));
            log.inject_rewrite_fault(fault);
            let err = block_on(rw.run(Threads)).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{fault:?}");
            let s = log.rewrite_stats();
            assert_eq!((s.rewrites, s.failures, s.last_failed), (0, 1, true));
            assert!(!s.in_progress && !log.failed(), "{fault:?}: not poisoned");
            assert!(!dir.join(REWRITE_FILE).exists(), "{fault:?}: temp removed");
            assert!(!log.rewrite_due(), "no automatic retry at once");
            // Still serving, and a later rewrite works.
            write(&log, 110..111, "after");
            let mut rw = log.begin_rewrite().unwrap();
            rw.set(b"only", b"this", None);
            block_on(rw.run(Threads)).unwrap();
            assert!(!log.rewrite_stats().last_failed);
            drop(log);
            let (got, _) = replay(&dir);
            assert_eq!(got.len(), 1, "{fault:?}: the second rewrite's snapshot");
        }
    }

    #[test]
    fn a_failed_rewrite_before_the_switch_keeps_every_record_in_the_old_log() {
        let dir = temp_dir("rewrite-fault-records");
        let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
        let log = Arc::new(log);
        write(&log, 0..5, "v");
        let rw = log.begin_rewrite().unwrap();
        write(&log, 5..10, "w");
        log.inject_rewrite_fault(Fault::Switch);
        let pending = log.append(&["SET", "late", "1"]);
        block_on(rw.run(Threads)).unwrap_err();
        block_on(log.durable(&Threads, pending)).unwrap();
        drop(log);
        let (got, _) = replay(&dir);
        assert_eq!(got.len(), 11, "nothing lost, nothing doubled");
        assert_eq!(got[10][1], b"late");
    }

    #[test]
    fn a_failed_directory_sync_after_the_rename_poisons_the_log() {
        let dir = temp_dir("rewrite-dirsync");
        let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
        let log = Arc::new(log);
        write(&log, 0..3, "v");
        let mut rw = log.begin_rewrite().unwrap();
        rw.set(b"k", b"v", None);
        log.inject_rewrite_fault(Fault::DirSync);
        block_on(rw.run(Threads)).unwrap_err();
        // The rename happened: the old file may or may not come back at a
        // crash, so nothing more may be acknowledged.
        assert!(log.failed());
        let seq = log.append(&["SET", "after", "1"]);
        assert!(block_on(log.durable(&Threads, seq)).is_err());
        assert_eq!(log.rewrite_stats().failures, 1);
        assert_eq!(log.begin_rewrite().err(), Some(RewriteRefused::Poisoned));
        drop(log);
        assert_eq!(replay(&dir).0.len(), 1, "the new file is the log");
    }

    #[test]
    fn a_directory_in_the_way_of_the_rewrite_file_fails_the_rewrite_only() {
        // A real failure (unlike permissions, root cannot ignore it).
        let dir = temp_dir("rewrite-eisdir");
        let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
        let log = Arc::new(log);
        write(&log, 0..3, "v");
        let before = std::fs::read(log.path()).unwrap();
        std::fs::create_dir(dir.join(REWRITE_FILE)).unwrap();
        let mut rw = log.begin_rewrite().unwrap();
        rw.set(b"k", b"v", None);
        assert!(block_on(rw.run(Threads)).is_err());
        assert_eq!(std::fs::read(log.path()).unwrap(), before);
        assert_eq!(log.rewrite_stats().failures, 1);
        write(&log, 3..4, "v");
        std::fs::remove_dir(dir.join(REWRITE_FILE)).unwrap();
        assert!(log.begin_rewrite().is_ok(), "the failed rewrite ended");
    }

    #[test]
    fn dropping_a_rewriter_abandons_it() {
        let dir = temp_dir("rewrite-drop");
        let (log, _) = Log::open(&dir, Fsync::No, |_| {}).unwrap();
        let log = Arc::new(log);
        drop(log.begin_rewrite().unwrap());
        let s = log.rewrite_stats();
        assert_eq!((s.in_progress, s.rewrites, s.failures), (false, 0, 0));
        assert!(log.begin_rewrite().is_ok());
    }

    #[test]
    fn a_leftover_rewrite_file_is_not_replayed_and_is_removed() {
        let dir = temp_dir("rewrite-leftover");
        let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
        let log = Arc::new(log);
        write(&log, 0..2, "v");
        drop(log);
        // A whole, valid-looking rewrite that a crash left before its
        // rename: it was never the log.
        let mut fake = Vec::new();
        record(&mut fake, &["SET", "ghost", "1"]);
        std::fs::write(dir.join(REWRITE_FILE), &fake).unwrap();
        let (got, _) = replay(&dir);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|c| c[1] != b"ghost"));
        assert!(!dir.join(REWRITE_FILE).exists());
    }

    #[test]
    fn automatic_rewrite_is_due_at_twice_the_base_and_the_min_size() {
        let log = open_rewriting(
            "rewrite-due",
            1000,
            Options::new(Fsync::No).rewrite_percentage,
        );
        let mut i = 0;
        while log.rewrite_stats().current_size < 1000 {
            assert!(!log.rewrite_due(), "due below the min size");
            write(&log, i..i + 1, "v");
            i += 1;
        }
        assert!(log.rewrite_due());
        let mut rw = log.begin_rewrite().unwrap();
        rw.set(b"k0", b"v", None);
        let base = block_on(rw.run(Threads)).unwrap();
        assert!(!log.rewrite_due());
        while log.rewrite_stats().current_size < 1000 {
            write(&log, 0..1, "v");
        }
        // Above the min size, but the base is tiny: due.
        assert!(log.rewrite_due());
        assert!(base < 100);
    }

    #[test]
    fn rewrite_percentage_sets_the_growth_and_zero_turns_it_off() {
        // 50%: due once the log is 1.5x its size after the last rewrite.
        let log = open_rewriting("rewrite-pct", 1, 50);
        write(&log, 0..20, "value");
        let mut rw = log.begin_rewrite().unwrap();
        for k in 0..20 {
            rw.set(format!("k{k}").as_bytes(), b"value", None);
        }
        let base = block_on(rw.run(Threads)).unwrap();
        let mut i = 100;
        while log.rewrite_stats().current_size < base + base / 2 {
            assert!(!log.rewrite_due(), "due before 50% growth");
            write(&log, i..i + 1, "value");
            i += 1;
        }
        assert!(log.rewrite_due(), "not due after 50% growth");
        // 0: never automatically, however big; BGREWRITEAOF still works.
        let log = open_rewriting("rewrite-off", 1, 0);
        write(&log, 0..200, "value");
        assert!(!log.rewrite_due());
        let mut rw = log.begin_rewrite().unwrap();
        rw.set(b"k0", b"value", None);
        assert!(block_on(rw.run(Threads)).unwrap() > 0);
    }
}
