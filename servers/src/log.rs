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
//!    [`Options::rewrite_min_size`] and has grown by
//!    [`Options::rewrite_percentage`] (default 100: twice its size) since
//!    the last rewrite or open; or `BGREWRITEAOF`. One rewrite at a time.
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
//! neither file holds, and the log would have to be poisoned. Redis 7's
//! multi-part log (a base file plus incremental files, listed in a
//! manifest): no copying of the tail at all, but a manifest to keep atomic
//! and several files to replay; one file that is always a whole log keeps
//! the format and the open path as they were.
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::rt::Rt;

mod rewrite;
use rewrite::Rewrite;
pub use rewrite::{RewriteRefused, RewriteStats, Rewriter};

/// Name of the log file inside the data directory.
pub const LOG_FILE: &str = "handoff-kv.aof";

/// Name of the compacted log while a rewrite writes it (renamed over
/// [`LOG_FILE`] when complete; a leftover one is removed at open).
pub const REWRITE_FILE: &str = "handoff-kv.aof.rewrite";

/// Default [`Options::rewrite_min_size`]: Redis's
/// `auto-aof-rewrite-min-size`, 64 MiB. Below it a log is never rewritten
/// automatically: replaying it takes well under a second anyway.
pub const REWRITE_MIN_SIZE: u64 = 64 << 20;

/// Default [`Options::rewrite_percentage`]: Redis's
/// `auto-aof-rewrite-percentage`, 100 (rewrite once the log has doubled).
pub const REWRITE_PERCENTAGE: u32 = 100;

/// After a failed automatic rewrite, the next automatic one waits this
/// long, so a full disk is not hammered with snapshot writes every cron
/// tick (`BGREWRITEAOF` may still retry at once). Redis, too, backs off
/// automatic rewrites after failures.
pub const REWRITE_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

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
/// use handoff_servers::log::{Fsync, Options, REWRITE_MIN_SIZE, REWRITE_PERCENTAGE};
/// let o = Options::new(Fsync::EverySec);
/// assert_eq!((o.rewrite_min_size, o.rewrite_percentage), (REWRITE_MIN_SIZE, REWRITE_PERCENTAGE));
/// let tiny = Options { rewrite_min_size: 4096, ..o };
/// assert_eq!(tiny.fsync, Fsync::EverySec);
/// let manual = Options { rewrite_percentage: 0, ..o }; // only BGREWRITEAOF
/// # let _ = manual;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// When to fsync.
    pub fsync: Fsync,
    /// The log is rewritten automatically once it is at least this big and
    /// has grown by `rewrite_percentage` since the last rewrite (or open),
    /// like Redis's `auto-aof-rewrite-min-size`.
    pub rewrite_min_size: u64,
    /// How much the log must have grown since the last rewrite (or open),
    /// in percent, before an automatic rewrite: Redis's
    /// `auto-aof-rewrite-percentage`. 0 turns automatic rewrites off
    /// (`BGREWRITEAOF` still rewrites).
    pub rewrite_percentage: u32,
}

impl Options {
    /// `fsync` with the default [`REWRITE_MIN_SIZE`].
    pub fn new(fsync: Fsync) -> Options {
        Options {
            fsync,
            rewrite_min_size: REWRITE_MIN_SIZE,
            rewrite_percentage: REWRITE_PERCENTAGE,
        }
    }
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
                    percentage: opts.rewrite_percentage,
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

    pub(crate) fn replay(dir: &Path) -> (Vec<Vec<Vec<u8>>>, Replay) {
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

    #[test]
    fn fsync_policy_parses_like_redis() {
        assert_eq!("always".parse(), Ok(Fsync::Always));
        assert_eq!("everysec".parse(), Ok(Fsync::EverySec));
        assert_eq!("no".parse(), Ok(Fsync::No));
        assert!("sometimes".parse::<Fsync>().is_err());
    }
}
