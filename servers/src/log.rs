//! The key-value store's append-only log, with group commit.
//!
//! Every write command is appended as one record; a write is acknowledged
//! only once its record is durable (`--fsync always`) or at least in the
//! kernel (`everysec`, `no`: like Redis's `appendfsync`, which also writes
//! before replying and only fsyncs later or never).
//!
//! # Record format
//!
//! `[len: u32 LE][crc32(payload): u32 LE][payload]`, the payload being the
//! command as a RESP array. On open, records are replayed until the first
//! one that is incomplete or fails its checksum: that is the torn tail of a
//! write the crash interrupted. It is cut off (`ftruncate` + `fdatasync`) so
//! new records follow good ones. Rejected: bare RESP commands (Redis's AOF),
//! which cannot tell a torn `$5\r\nhel` from a short value.
//!
//! # Group commit
//!
//! State (under one mutex): `buf` (records appended, not yet written),
//! `appended`, `written`, `synced` (record counts), `leading` (a round is in
//! flight), the wakers of tasks waiting, the current `file` and its `size`,
//! and the rewrite's share (see Compaction).
//!
//! 1. [`Log::append`] encodes a record into `buf` and returns its sequence
//!    number. The caller holds the store's lock, so log order is apply order.
//! 2. [`Log::durable`]`(seq)` returns once record `seq` is done (synced for
//!    `always`, written otherwise). If it is not, and no round is in flight,
//!    the caller becomes the leader: it takes *all* of `buf` and the current
//!    `file`, and runs one round (`write` + `fdatasync`) through
//!    [`Rt::blocking`]. Otherwise it waits as a follower; when the round
//!    ends every waiter is woken and checks again (a follower whose record
//!    came after the round's cut becomes the next leader).
//! 3. The round publishes its result (`written`/`synced`, clear `leading`,
//!    wake the waiters) *inside* the blocking closure, after the syscalls.
//!    So the protocol completes even if the leader's task is dropped while
//!    the call runs (a tokio `spawn_blocking` keeps going after its handle
//!    is dropped), and rounds never overlap, so records reach the file in
//!    order.
//!
//! Why it is correct: a record is in `buf` from `append` until a leader
//! takes it; the one leader at a time writes buffers in the order taken; a
//! round's `written = cut` covers exactly the records taken. Every waiter is
//! woken after every round, so none is stranded.
//!
//! Cost: one `fdatasync` per round however many writers joined it; while a
//! round runs, the next writers gather in `buf` for the next one.
//!
//! `everysec`: a background task fdatasyncs once a second if anything was
//! written since the last time. `no`: never fsync; the kernel decides.
//!
//! After a failed write or fsync the log is poisoned: waiters get the error
//! (their acknowledgements are never sent) and later writes are refused.
//! Like PostgreSQL after its fsync bug, retrying an fsync that failed
//! cannot be trusted to mean the data is safe.
//!
//! # Compaction (rewrite)
//!
//! Appending forever makes the file grow without bound and a restart replay
//! all history. Like Redis's AOF rewrite, the log is replaced now and then
//! by one record per live key (`SET k v`, or `SET k v PXAT t`) plus the
//! records appended while that was being written. Terms: *S* is the
//! sequence number of the last record covered by the snapshot; *W* is
//! `written` at the switch; the *tail* is a copy of every record appended
//! after S.
//!
//! 0. Trigger: [`Log::rewrite_due`] (checked by the store's sweeper every
//!    100 ms, as Redis checks in its cron) once the file is at least
//!    [`Options::rewrite_min_size`] and twice its size after the last
//!    rewrite or open; or `BGREWRITEAOF`. One rewrite at a time.
//! 1. Snapshot: under the store's lock, [`Log::begin_rewrite`] notes S =
//!    `appended` and switches on the tail (from now on [`Log::append`] also
//!    copies each record into it); the store adds every live key to the
//!    [`Rewriter`] before it lets go of the lock. Appends happen only under
//!    that lock, so the snapshot is exactly the state after record S.
//! 2. Write: [`Rewriter::run`] writes the snapshot to [`REWRITE_FILE`] in
//!    the same directory and fdatasyncs it, through [`Rt::blocking`], no
//!    lock held. Meanwhile writes go on as usual, to the old file.
//! 3. Catch up: it waits (`durable(S)`) until every record up to S is in
//!    the old file, so that none of them can still be in `buf` at the
//!    switch. Then it copies the tail's records that rounds have already
//!    written to the old file (the tail minus its last `buf` + in-flight
//!    bytes: both are suffixes of the same record stream) to the new file,
//!    outside any round, up to `CATCHUP_PASSES` times.
//! 4. Switch, at a round boundary: it waits until no round is in flight
//!    (setting `switch_wanted` so that no new round starts meanwhile), then
//!    takes `leading` itself. Now the old file holds records 1..=W and
//!    `buf` exactly W+1..; the tail holds the records after the last
//!    catch-up, of which `buf` is a suffix. It appends the tail minus that
//!    suffix (records up to W) to the new file, fdatasyncs it, `rename`s it
//!    over [`LOG_FILE`], fdatasyncs the directory, swaps `file`, and only
//!    then publishes like a round (clearing `leading`, waking everyone).
//!    The next round writes `buf` (W+1..) to the new file.
//!
//! Why it is correct. Order: the new file is snapshot(S), then S+1..W in
//! append order, then later rounds; replaying it gives the state after
//! each of those records, as replaying the old file would. No record is
//! lost or doubled: records up to S are in the snapshot; S+1..W are in the
//! tail and not in `buf`; W+1.. are in `buf` and cut off the tail. Every
//! instant is durable per policy: until the rename the old file is the
//! log and gets every round as before; the new file is complete and synced
//! before the rename; records written to the new file only (after W) are
//! acknowledged only after the directory sync made the rename durable, since
//! the switch holds `leading` until then. A crash before the rename leaves
//! the old log (and a partial [`REWRITE_FILE`], removed at open); after it,
//! the new one. Rounds take `file` with `buf`, so a round never writes to a
//! file that was switched away under it; the everysec task reads `written`
//! and `file` together, and the switch has synced everything up to W.
//! FLUSHALL or DEL during a rewrite are just records in the tail. The
//! syncs happen whatever the policy, `no` included: renaming an unsynced
//! file over the log could lose all of it at a power cut, not just the
//! last seconds the policy gives up.
//!
//! Failures. Any error before the rename (disk full while writing the
//! snapshot, a catch-up pass or the switch) removes the new file and ends
//! the rewrite: the old log is untouched and keeps serving, the failure is
//! counted ([`RewriteStats`]), and automatic rewrites pause for
//! [`REWRITE_RETRY_AFTER_FAILURE`]. Unlike a failed round this does not
//! poison the log: no acknowledged record depended on the new file. The
//! exception is a failed directory sync after the rename: the old file
//! could come back at a crash while new records go to the new one, so that
//! poisons the log. A [`Rewriter`] dropped before the switch (its task
//! dropped) abandons the rewrite; the switch itself, like a round, ends
//! inside its blocking closure.
//!
//! Cost when no rewrite runs: one `Option` test per append, one bool per
//! round leader, one `Arc` clone per round. While one runs: a copy of each
//! record into the tail, memory for the snapshot and the tail, and a pause
//! of group commit at the switch for one `write` + two fdatasyncs + a
//! rename (the catch-up passes keep that write small).
//!
//! Rejected: forking (Redis's way) to get a snapshot without copying: a
//! multithreaded process cannot safely fork and run Rust code in the child.
//! Writing the snapshot while holding the store's lock: every client would
//! stall for the whole write. Rewriting by replaying the old file into a
//! new one (no snapshot): it reads the whole history back, and the state
//! is already in memory. Starting the new file empty and redirecting new
//! records to it before the snapshot is written: until it is complete,
//! neither file alone would be a whole log. Taking `buf` into the switch
//! (writing W+1.. too, as part of it): a failure then would lose records
//! neither file holds, and the log would have to be poisoned.
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::rt::Rt;

/// Name of the log file inside the data directory.
pub const LOG_FILE: &str = "handoff-kv.aof";

/// Name of the compacted log while a rewrite writes it (renamed over
/// [`LOG_FILE`] when complete; a leftover one is removed at open).
pub const REWRITE_FILE: &str = "handoff-kv.aof.rewrite";

/// Default [`Options::rewrite_min_size`]: Redis's
/// `auto-aof-rewrite-min-size`, 64 MiB. Below it a log is never rewritten
/// automatically: replaying it takes well under a second anyway.
pub const REWRITE_MIN_SIZE: u64 = 64 << 20;

/// After a failed automatic rewrite, the next automatic one waits this
/// long, so a full disk is not hammered with snapshot writes every cron
/// tick (`BGREWRITEAOF` may still retry at once). Redis, too, backs off
/// automatic rewrites after failures.
pub const REWRITE_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Catch-up passes a rewrite makes before it switches (see the module
/// docs, step R3): each copies to the new file what clients wrote while the
/// previous step ran, outside any round, so the switch itself (which holds
/// up group commit) has little left to copy. Two shrink it geometrically
/// enough; Redis similarly streams its rewrite buffer to the child while it
/// runs and writes only the last bit in the parent.
const CATCHUP_PASSES: usize = 2;

/// A catch-up pass is skipped below this many bytes: it would cost a
/// `write` + `fdatasync` to save the switch one small `write`.
const CATCHUP_MIN: usize = 64 << 10;

/// Largest record accepted on replay: a command with a 512 MiB value plus
/// headroom. Anything larger is corruption.
const MAX_RECORD: u32 = 1024 * 1024 * 1024;

/// When to fsync, like Redis's `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// `fdatasync` before acknowledging every write (group-committed).
    Always,
    /// `write` before acknowledging; `fdatasync` once a second.
    EverySec,
    /// `write` before acknowledging; never fsync.
    No,
}

impl FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Fsync, String> {
        match s {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::EverySec),
            "no" => Ok(Fsync::No),
            _ => Err(format!("--fsync must be always, everysec or no, not {s:?}")),
        }
    }
}

/// How a [`Log`] persists and compacts itself.
///
/// # Example
///
/// ```
/// use handoff_servers::log::{Fsync, Options, REWRITE_MIN_SIZE};
/// let o = Options::new(Fsync::EverySec);
/// assert_eq!(o.rewrite_min_size, REWRITE_MIN_SIZE);
/// let tiny = Options { rewrite_min_size: 4096, ..o };
/// assert_eq!(tiny.fsync, Fsync::EverySec);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// When to fsync.
    pub fsync: Fsync,
    /// The log is rewritten automatically once it is at least this big and
    /// twice as big as right after the last rewrite (or open), like Redis's
    /// `auto-aof-rewrite-min-size` with `auto-aof-rewrite-percentage 100`.
    pub rewrite_min_size: u64,
}

impl Options {
    /// `fsync` with the default [`REWRITE_MIN_SIZE`].
    pub fn new(fsync: Fsync) -> Options {
        Options {
            fsync,
            rewrite_min_size: REWRITE_MIN_SIZE,
        }
    }
}

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
}

/// CRC-32 (IEEE 802.3, the zlib one), table-driven.
///
/// # Example
///
/// ```
/// assert_eq!(handoff_servers::log::crc32(b"123456789"), 0xCBF4_3926);
/// ```
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

struct State {
    buf: Vec<u8>,
    appended: u64,
    written: u64,
    synced: u64,
    leading: bool,
    /// Bytes the round in flight took (meaningful while `leading`).
    inflight: usize,
    rounds: u64,
    waiters: Vec<Waker>,
    failed: Option<(io::ErrorKind, String)>,
    /// The current log file. Replaced only by a rewrite's switch, which
    /// holds `leading`: a round writes to the file it took with its buffer.
    file: Arc<File>,
    /// Bytes in `file` (everything written by rounds).
    size: u64,
    rw: Rewrite,
}

/// A rewrite's share of [`State`]; see the module docs.
struct Rewrite {
    /// Set by [`Log::begin_rewrite`], cleared when the rewrite ends.
    running: bool,
    /// While the rewrite runs, up to its switch: every record appended
    /// since its snapshot, minus what catch-up passes already copied.
    tail: Option<Vec<u8>>,
    /// The rewrite waits for the round in flight to end in order to
    /// switch: no new round may start meanwhile (else a steady stream of
    /// writers could keep a round in flight forever).
    switch_wanted: bool,
    /// [`Options::rewrite_min_size`].
    min_size: u64,
    /// `size` right after the last rewrite or open.
    base: u64,
    done: u64,
    failures: u64,
    last_failed: bool,
    /// No automatic rewrite before this (after a failure).
    retry_at: Option<Instant>,
    /// A failure to inject into the next rewrite (tests).
    fault: Option<Fault>,
}

/// The append-only log; see the module docs.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use handoff_servers::{log::{Fsync, Log}, Threads};
/// let dir = std::env::temp_dir().join(format!("log-struct-doc-{}", std::process::id()));
/// let _ = std::fs::remove_dir_all(&dir);
/// std::fs::create_dir_all(&dir).unwrap();
/// let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
/// let log = Arc::new(log);
/// log.append(&["SET", "a", "1"]);
/// let seq = log.append(&["SET", "b", "2"]);
/// assert_eq!(seq, log.last_seq());
/// futures::executor::block_on(log.durable(&Threads, seq)).unwrap();
/// assert_eq!(log.rounds(), 1); // both records, one write + fdatasync
/// drop(log);
/// let mut seen = 0;
/// let (_, replay) = Log::open(&dir, Fsync::Always, |cmd| { assert_eq!(cmd[0], b"SET"); seen += 1 }).unwrap();
/// assert_eq!((seen, replay.records, replay.torn_bytes), (2, 2, 0));
/// ```
pub struct Log {
    path: PathBuf,
    dir: PathBuf,
    policy: Fsync,
    state: Mutex<State>,
}

/// What [`Log::open`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Records replayed.
    pub records: u64,
    /// Bytes of torn tail cut off.
    pub torn_bytes: u64,
}

fn publish(state: &Mutex<State>, f: impl FnOnce(&mut State)) {
    let waiters = {
        let mut st = state.lock().unwrap();
        f(&mut st);
        st.leading = false;
        std::mem::take(&mut st.waiters)
    };
    for w in waiters {
        w.wake();
    }
}

impl Log {
    /// Opens (or creates) the log in `dir`, calling `apply` with each good
    /// record's command, and cuts off a torn tail.
    ///
    /// # Errors
    ///
    /// Creating, reading or truncating the file failed.
    ///
    /// # Example
    ///
    /// ```
    /// use handoff_servers::log::{Fsync, Log};
    /// let dir = std::env::temp_dir().join(format!("log-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let (log, replay) = Log::open(&dir, Fsync::No, |_cmd| {}).unwrap();
    /// assert_eq!(log.path(), dir.join("handoff-kv.aof"));
    /// # let _ = replay;
    /// ```
    pub fn open(
        dir: &Path,
        policy: Fsync,
        apply: impl FnMut(&[&[u8]]),
    ) -> io::Result<(Log, Replay)> {
        Log::open_with(dir, Options::new(policy), apply)
    }

    /// [`Log::open`] with compaction options. A [`REWRITE_FILE`] left by a
    /// rewrite that a crash interrupted is removed: it was never the log.
    ///
    /// # Errors
    ///
    /// Creating, reading or truncating the file, or removing a leftover
    /// rewrite file, failed.
    ///
    /// # Example
    ///
    /// ```
    /// use handoff_servers::log::{Fsync, Log, Options, REWRITE_FILE};
    /// let dir = std::env::temp_dir().join(format!("log-open-with-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join(REWRITE_FILE), b"half a rewrite").unwrap();
    /// let o = Options { rewrite_min_size: 1 << 20, ..Options::new(Fsync::Always) };
    /// let (log, _) = Log::open_with(&dir, o, |_cmd| {}).unwrap();
    /// assert!(!dir.join(REWRITE_FILE).exists());
    /// # drop(log);
    /// ```
    pub fn open_with(
        dir: &Path,
        opts: Options,
        mut apply: impl FnMut(&[&[u8]]),
    ) -> io::Result<(Log, Replay)> {
        let path = dir.join(LOG_FILE);
        match std::fs::remove_file(dir.join(REWRITE_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        // Make the file's directory entry durable too, once.
        if let Ok(d) = File::open(dir) {
            let _ = crate::sys::fdatasync(&d);
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let mut at = 0usize;
        let mut records = 0;
        while data.len() - at >= 8 {
            let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            let crc = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap());
            if len > MAX_RECORD || data.len() - at - 8 < len as usize {
                break;
            }
            let payload = &data[at + 8..at + 8 + len as usize];
            if crc32(payload) != crc {
                break;
            }
            match crate::resp::parse_command(payload) {
                crate::resp::Cmd::Complete(args, n) if n == payload.len() => apply(&args),
                _ => break,
            }
            records += 1;
            at += 8 + len as usize;
        }
        let torn_bytes = (data.len() - at) as u64;
        if torn_bytes > 0 {
            file.set_len(at as u64)?;
            crate::sys::fdatasync(&file)?;
        }
        let log = Log {
            path,
            dir: dir.to_path_buf(),
            policy: opts.fsync,
            state: Mutex::new(State {
                buf: Vec::new(),
                appended: 0,
                written: 0,
                synced: 0,
                leading: false,
                inflight: 0,
                rounds: 0,
                waiters: Vec::new(),
                failed: None,
                file: Arc::new(file),
                size: at as u64,
                rw: Rewrite {
                    running: false,
                    tail: None,
                    switch_wanted: false,
                    min_size: opts.rewrite_min_size,
                    base: at as u64,
                    done: 0,
                    failures: 0,
                    last_failed: false,
                    retry_at: None,
                    fault: None,
                },
            }),
        };
        Ok((
            log,
            Replay {
                records,
                torn_bytes,
            },
        ))
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fsync policy.
    pub fn policy(&self) -> Fsync {
        self.policy
    }

    /// Whether an earlier write or fsync failed (writes must be refused).
    pub fn failed(&self) -> bool {
        self.state.lock().unwrap().failed.is_some()
    }

    /// Appends a command; returns its sequence number for [`Log::durable`].
    pub fn append<A: AsRef<[u8]>>(&self, args: &[A]) -> u64 {
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        let start = st.buf.len();
        record(&mut st.buf, args);
        // Step R1: while a rewrite runs, its tail gets a copy.
        if let Some(tail) = &mut st.rw.tail {
            tail.extend_from_slice(&st.buf[start..]);
        }
        st.appended += 1;
        st.appended
    }

    /// Rounds (one `write`, plus one `fdatasync` for `always`) done so far:
    /// with group commit, fewer than the records written.
    pub fn rounds(&self) -> u64 {
        self.state.lock().unwrap().rounds
    }

    /// The sequence number of the last appended record (0: none).
    pub fn last_seq(&self) -> u64 {
        self.state.lock().unwrap().appended
    }

    /// Returns once record `seq` (and all before it) is durable by the
    /// policy; see the module docs for the group commit.
    ///
    /// # Errors
    ///
    /// A write or fsync failed; the log is poisoned.
    pub async fn durable<R: Rt>(self: &Arc<Self>, rt: &R, seq: u64) -> io::Result<()> {
        loop {
            // Step 2: done, follower, or leader?
            let lead = futures::future::poll_fn(|cx| {
                let mut st = self.state.lock().unwrap();
                if let Some((kind, msg)) = &st.failed {
                    return Poll::Ready(Err(io::Error::new(*kind, msg.clone())));
                }
                let done = if self.policy == Fsync::Always {
                    st.synced
                } else {
                    st.written
                };
                // A sequence number from the future cannot be waited for: no
                // round would ever reach it, and a leader would spin on
                // empty rounds. Callers only pass numbers `append` gave.
                debug_assert!(
                    seq <= st.appended,
                    "durable({seq}) past the last record {}",
                    st.appended
                );
                if done >= seq.min(st.appended) {
                    return Poll::Ready(Ok(None));
                }
                // A rewrite waiting to switch goes first (step R4).
                if !st.leading && !st.rw.switch_wanted {
                    st.leading = true;
                    let buf = std::mem::take(&mut st.buf);
                    st.inflight = buf.len();
                    return Poll::Ready(Ok(Some((buf, st.appended, st.file.clone()))));
                }
                st.waiters.push(cx.waker().clone());
                Poll::Pending
            })
            .await?;
            let Some((buf, cut, file)) = lead else {
                return Ok(());
            };
            // Step 3: one round; the closure publishes its own result.
            let this = self.clone();
            rt.blocking(move || {
                let sync = this.policy == Fsync::Always;
                let res = (&*file).write_all(&buf).and_then(|()| {
                    if sync {
                        crate::sys::fdatasync(&*file)
                    } else {
                        Ok(())
                    }
                });
                publish(&this.state, |st| match res {
                    Ok(()) => {
                        st.rounds += 1;
                        st.size += buf.len() as u64;
                        st.written = cut;
                        if sync {
                            st.synced = cut;
                        }
                        // Hand the allocation back for the next round.
                        if st.buf.is_empty() && st.buf.capacity() < buf.capacity() {
                            let mut buf = buf;
                            buf.clear();
                            st.buf = buf;
                        }
                    }
                    Err(e) => st.failed = Some((e.kind(), format!("log write failed: {e}"))),
                });
            })
            .await;
        }
    }

    /// Runs forever for `--fsync everysec`: once a second, fdatasyncs what
    /// was written since the last time. Spawn it once.
    pub async fn run_everysec<R: Rt>(self: Arc<Self>, rt: R) {
        let mut synced = 0;
        loop {
            rt.sleep(Duration::from_secs(1)).await;
            // The count and the file together: the records counted are in
            // this file, or (a rewrite switched meanwhile) in the new one,
            // which the switch synced.
            let (written, file) = {
                let st = self.state.lock().unwrap();
                (st.written, st.file.clone())
            };
            if written == synced {
                continue;
            }
            if let Err(e) = rt.blocking(move || crate::sys::fdatasync(&*file)).await {
                let mut st = self.state.lock().unwrap();
                st.failed = Some((e.kind(), format!("log fsync failed: {e}")));
                return;
            }
            synced = written;
            let mut st = self.state.lock().unwrap();
            st.synced = st.synced.max(written);
        }
    }

    /// Whether an automatic rewrite is due (step R0): the log is at least
    /// [`Options::rewrite_min_size`] and twice its size right after the
    /// last rewrite (or open), no rewrite runs, the log is not poisoned,
    /// and no recent automatic rewrite failed.
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
        !rw.running
            && st.failed.is_none()
            && st.size > rw.base
            && st.size >= rw.min_size.max(rw.base.saturating_mul(2))
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
        let inject = fault == Some(Fault::Switch);
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
            let dir = File::open(&log.dir).and_then(|d| crate::sys::fdatasync(&d));
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

/// Encodes one record: header, then the command as a RESP array.
fn record<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    crate::resp::command(out, args);
    let payload = &out[start + 8..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32(payload).to_le_bytes();
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rt::Threads;
    use futures::executor::block_on;

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("handoff-servers-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn replay(dir: &Path) -> (Vec<Vec<Vec<u8>>>, Replay) {
        let mut got = Vec::new();
        let (_, r) = Log::open(dir, Fsync::Always, |a| {
            got.push(a.iter().map(|x| x.to_vec()).collect())
        })
        .unwrap();
        (got, r)
    }

    #[test]
    fn group_commit_one_round_covers_every_record_appended_before_it() {
        let dir = temp_dir("group");
        let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
        let log = Arc::new(log);
        let seqs: Vec<u64> = (0..3)
            .map(|i| log.append(&["SET", "k", &i.to_string()]))
            .collect();
        assert_eq!(seqs, [1, 2, 3]);
        block_on(log.durable(&Threads, 3)).unwrap();
        assert_eq!(log.rounds(), 1);
        block_on(log.durable(&Threads, 1)).unwrap();
        assert_eq!(log.rounds(), 1, "already durable: no new round");
        drop(log);
        let (got, r) = replay(&dir);
        assert_eq!(
            r,
            Replay {
                records: 3,
                torn_bytes: 0
            }
        );
        assert_eq!(got[2], [b"SET".to_vec(), b"k".to_vec(), b"2".to_vec()]);
    }

    #[test]
    fn concurrent_writers_all_durable_and_replayed() {
        let dir = temp_dir("concurrent");
        let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
        let log = Arc::new(log);
        std::thread::scope(|s| {
            for t in 0..8 {
                let log = log.clone();
                s.spawn(move || {
                    for i in 0..50 {
                        let seq = log.append(&["SET", &format!("{t}-{i}"), "v"]);
                        block_on(log.durable(&Threads, seq)).unwrap();
                    }
                });
            }
        });
        assert!(log.rounds() <= 400);
        drop(log);
        let (got, _) = replay(&dir);
        assert_eq!(got.len(), 400);
    }

    #[test]
    fn torn_tail_at_every_byte_is_cut_off() {
        let dir = temp_dir("torn");
        let (log, _) = Log::open(&dir, Fsync::No, |_| {}).unwrap();
        let log = Arc::new(log);
        log.append(&["SET", "a", "1"]);
        let seq = log.append(&["SET", "b", "2"]);
        block_on(log.durable(&Threads, seq)).unwrap();
        let full = std::fs::read(log.path()).unwrap();
        drop(log);
        let first = 8 + u32::from_le_bytes(full[..4].try_into().unwrap()) as usize;
        let path = dir.join(LOG_FILE);
        for cut in first..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (got, r) = replay(&dir);
            assert_eq!(got.len(), 1, "cut at {cut}");
            assert_eq!(r.torn_bytes as usize, cut - first);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len() as usize,
                first,
                "tail truncated"
            );
        }
        // A flipped bit in the last record: same thing.
        let mut bad = full.clone();
        *bad.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(replay(&dir).0.len(), 1);
        // New records after a cut follow the good ones.
        let (log, _) = Log::open(&dir, Fsync::Always, |_| {}).unwrap();
        let log = Arc::new(log);
        let seq = log.append(&["SET", "c", "3"]);
        block_on(log.durable(&Threads, seq)).unwrap();
        drop(log);
        let (got, r) = replay(&dir);
        assert_eq!((got.len(), r.torn_bytes), (2, 0));
        assert_eq!(got[1][1], b"c");
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
        let dir = temp_dir("rewrite-due");
        let o = Options {
            rewrite_min_size: 1000,
            ..Options::new(Fsync::No)
        };
        let (log, _) = Log::open_with(&dir, o, |_| {}).unwrap();
        let log = Arc::new(log);
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
    fn fsync_policy_parses_like_redis() {
        assert_eq!("always".parse(), Ok(Fsync::Always));
        assert_eq!("everysec".parse(), Ok(Fsync::EverySec));
        assert_eq!("no".parse(), Ok(Fsync::No));
        assert!("sometimes".parse::<Fsync>().is_err());
    }
}
