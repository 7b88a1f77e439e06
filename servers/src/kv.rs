//! A Redis-protocol key-value store: strings with expiry, logged writes.
//!
//! Commands: PING, ECHO, GET, SET (EX, PX, EXAT, PXAT, KEEPTTL, NX, XX,
//! GET), DEL, EXISTS, INCR, DECR, INCRBY, DECRBY, MGET, MSET, EXPIRE,
//! PEXPIRE, PEXPIREAT, TTL, PTTL, DBSIZE, FLUSHALL, FLUSHDB, BGREWRITEAOF,
//! QUIT, and what stock clients send when they connect: COMMAND (an empty
//! array, so `redis-cli` runs without hints), CONFIG GET (the
//! `save`/`appendonly` pairs `redis-benchmark` asks for, otherwise empty),
//! CLIENT (`+OK`), SELECT 0, INFO (server, persistence and keyspace
//! sections; `INFO <section>...` picks some, as in Redis), HELLO (an unknown-command error, as Redis 5 answers, so
//! RESP3-capable clients fall back to RESP2).
//!
//! # Writes and the log
//!
//! A write is applied under the store's lock and, under the same lock,
//! appended to the [`Log`] in a normalised form, so replaying it later gives
//! the same state whatever the clock says then:
//! - `SET k v EX 10` is logged as `SET k v PXAT <unix ms>`;
//! - `INCR k` as `SET k <new value> KEEPTTL`;
//! - `EXPIRE k 10` as `PEXPIREAT k <unix ms>`;
//! - a command that changed nothing (`DEL` of a missing key, `SET ... NX`
//!   on an existing one) is not logged.
//!
//! Before a connection writes a batch of replies it waits until every record
//! the replies depend on is durable ([`Log::durable`]): a write's own record
//! (and all before it), and for a read the record that last changed (or
//! removed) each key it shows. So a `GET` never reports a value whose `SET`
//! could still be lost in a crash, yet a `GET` of a key nobody is writing
//! is answered at once while other keys' writes wait for their fsync.
//! (Redis gets the first property more bluntly, by sending every reply of
//! an event-loop turn after that turn's fsync.) Each entry carries the
//! sequence number of its last record; the store keeps the last removal's.
//!
//! Rejected: waiting for everything logged so far before every reply. It
//! is simpler and also safe, but then one client's `SET` under
//! `--fsync always` stalls every reader of every key.
//!
//! Expiry is lazy (a read of an expired key removes it) plus a sweep every
//! [`SWEEP_EVERY`] while any key has a deadline.
//!
//! # Compaction
//!
//! `BGREWRITEAOF`, or the sweeper when [`Log::rewrite_due`] says the log
//! has doubled since its last rewrite, takes a snapshot of every live key
//! under the store's lock (one `SET`, with `PXAT` if it expires, per key;
//! expired keys are left out) and hands it to a task that writes the new
//! log while clients keep writing; see [`crate::log`] for why no write is
//! lost. The snapshot is a copy of the data, taken with the lock held:
//! a pause proportional to the data set, where Redis forks instead.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::buf::{ConnBuf, OUT_HIGH_WATER};
use crate::log::Log;
use crate::resp::{self, parse_command, parse_int, Cmd};
use crate::rt::{Activity, Conn, Rt, Service};

/// How often expired keys are swept out when some key has a deadline
/// (Redis's active expiry runs at `hz` = 10, every 100 ms).
pub const SWEEP_EVERY: Duration = Duration::from_millis(100);

struct Entry {
    val: Vec<u8>,
    /// Unix time in ms after which the key is gone.
    exp: Option<u64>,
    /// The log record that last changed this entry (0: none): a reply that
    /// shows the entry may be sent once that record is durable.
    seq: u64,
}

#[derive(Default)]
struct Db {
    map: HashMap<Vec<u8>, Entry>,
    /// Keys with a deadline (an upper bound: expired-and-removed keys may
    /// still be counted until the next sweep recounts).
    volatile: usize,
    /// The log record that last removed a key: a reply that shows a key
    /// as missing may be sent once that record is durable.
    del_seq: u64,
    /// The sequence number the write being executed will get (set before
    /// each write command; appends happen under the db lock, one per
    /// command, so it is `last_seq + 1`).
    write_seq: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Db {
    /// The live entry for `k`, removing it if expired.
    fn live(&mut self, k: &[u8]) -> Option<&mut Entry> {
        let expired = match self.map.get(k) {
            None => return None,
            Some(e) => e.exp.is_some_and(|t| t <= now_ms()),
        };
        if expired {
            if let Some(e) = self.map.remove(k) {
                // The miss now shows whatever set the deadline.
                self.del_seq = self.del_seq.max(e.seq);
            }
            return None;
        }
        self.map.get_mut(k)
    }

    fn set(&mut self, k: &[u8], val: Vec<u8>, exp: Option<u64>) {
        if exp.is_some() {
            self.volatile += 1;
        }
        let seq = self.write_seq;
        self.map.insert(k.to_vec(), Entry { val, exp, seq });
    }

    /// Removes `k` as part of the write being executed.
    fn remove(&mut self, k: &[u8]) -> bool {
        let gone = self.map.remove(k).is_some();
        if gone {
            self.del_seq = self.write_seq;
        }
        gone
    }

    /// The record a reply showing `k` (or its absence) depends on.
    fn dep(&self, k: &[u8]) -> u64 {
        self.map.get(k).map_or(self.del_seq, |e| e.seq)
    }

    fn sweep(&mut self) {
        if self.volatile == 0 {
            return;
        }
        let now = now_ms();
        self.map.retain(|_, e| e.exp.is_none_or(|t| t > now));
        self.volatile = self.map.values().filter(|e| e.exp.is_some()).count();
    }
}

/// What to do with the connection after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep serving. Before sending the reply, wait until this log record
    /// is durable (0: the reply depends on nothing in the log).
    Continue(u64),
    /// Flush the replies, then close (QUIT).
    Close,
}

/// The key-value service; see the module docs.
///
/// # Example
///
/// ```
/// use handoff_servers::{kv::{Flow, Kv}, Threads};
/// let kv = Kv::new(Threads);
/// let mut out = Vec::new();
/// assert_eq!(kv.exec(&[b"SET", b"k", b"v"], &mut out), Flow::Continue(0)); // no log
/// kv.exec(&[b"GET", b"k"], &mut out);
/// assert_eq!(out, b"+OK\r\n$1\r\nv\r\n");
/// assert_eq!(kv.dbsize(), 1);
/// assert!(kv.log().is_none());
/// ```
pub struct Kv<R> {
    rt: R,
    db: Mutex<Db>,
    log: Option<Arc<Log>>,
}

fn wrong_args(out: &mut Vec<u8>, name: &[u8]) {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    resp::error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

const NOT_INT: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";

impl<R: Rt> Kv<R> {
    /// A store without a log (nothing survives a restart).
    ///
    /// # Example
    ///
    /// ```
    /// let kv = handoff_servers::kv::Kv::new(handoff_servers::Threads);
    /// assert_eq!(kv.dbsize(), 0);
    /// ```
    pub fn new(rt: R) -> Kv<R> {
        Kv {
            rt,
            db: Mutex::new(Db::default()),
            log: None,
        }
    }

    /// A store persisted in `dir` with the given fsync policy, replaying
    /// what the log holds. Spawns the expiry sweeper and, for `everysec`,
    /// the fsync ticker.
    ///
    /// # Errors
    ///
    /// Opening or replaying the log failed.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # fn f<R: handoff_servers::Rt>(rt: R) -> std::io::Result<()> {
    /// use handoff_servers::{kv::Kv, log::Fsync};
    /// let (kv, replay) = Kv::open(rt, std::path::Path::new("."), Fsync::Always)?;
    /// println!("replayed {} records", replay.records);
    /// # Ok(()) }
    /// ```
    pub fn open(
        rt: R,
        dir: &std::path::Path,
        policy: crate::log::Fsync,
    ) -> std::io::Result<(Arc<Kv<R>>, crate::log::Replay)> {
        Kv::open_with(rt, dir, crate::log::Options::new(policy))
    }

    /// [`Kv::open`] with the log's compaction options: the log is
    /// rewritten (one `SET` per live key) once it reaches
    /// [`Options::rewrite_min_size`](crate::log::Options) and twice its
    /// size after the last rewrite, checked with every expiry sweep.
    ///
    /// # Errors
    ///
    /// Opening or replaying the log failed.
    ///
    /// # Example
    ///
    /// ```
    /// use handoff_servers::{kv::Kv, log::{Fsync, Options}, Threads};
    /// let dir = std::env::temp_dir().join(format!("kv-open-with-doc-{}", std::process::id()));
    /// let _ = std::fs::remove_dir_all(&dir);
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let o = Options { rewrite_min_size: 1 << 20, ..Options::new(Fsync::Always) };
    /// let (kv, replay) = Kv::open_with(Threads, &dir, o).unwrap();
    /// assert_eq!((replay.records, kv.dbsize()), (0, 0));
    /// ```
    pub fn open_with(
        rt: R,
        dir: &std::path::Path,
        opts: crate::log::Options,
    ) -> std::io::Result<(Arc<Kv<R>>, crate::log::Replay)> {
        let kv = Kv::new(rt.clone());
        let mut sink = Vec::new();
        let (log, replay) = Log::open_with(dir, opts, |args| {
            kv.exec_unlogged(args, &mut sink);
            sink.clear();
        })?;
        let log = Arc::new(log);
        if opts.fsync == crate::log::Fsync::EverySec {
            rt.spawn(log.clone().run_everysec(rt.clone()));
        }
        let kv = Arc::new(Kv {
            log: Some(log),
            ..kv
        });
        kv.spawn_sweeper();
        Ok((kv, replay))
    }

    /// Starts a rewrite of the log (`BGREWRITEAOF`): the snapshot of every
    /// live key is taken now, under the store's lock (held by the caller
    /// as `db`), and written out by a task of its own.
    fn start_rewrite(&self, db: &Db) -> Result<(), String> {
        let Some(log) = &self.log else {
            return Err("ERR no append-only log to rewrite".into());
        };
        let mut rw = log.begin_rewrite().map_err(|e| format!("ERR {e}"))?;
        let now = now_ms();
        for (k, e) in &db.map {
            // An expired key would only be dropped again at replay.
            if e.exp.is_none_or(|t| t > now) {
                rw.set(k, &e.val, e.exp);
            }
        }
        let rt = self.rt.clone();
        self.rt.spawn(async move {
            if let Err(e) = rw.run(rt).await {
                eprintln!("kv: log rewrite failed, the old log stays: {e}");
            }
        });
        Ok(())
    }

    /// Spawns the expiry sweeper (it ends when the store is dropped).
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let rt = self.rt.clone();
        self.rt.spawn(async move {
            loop {
                rt.sleep(SWEEP_EVERY).await;
                let Some(kv) = weak.upgrade() else { return };
                let mut db = kv.db.lock().unwrap();
                db.sweep();
                // Redis checks for an automatic rewrite in its cron, too.
                if kv.log.as_ref().is_some_and(|l| l.rewrite_due()) {
                    let _ = kv.start_rewrite(&db);
                }
            }
        });
    }

    /// Number of keys (including expired ones not yet swept, like Redis).
    pub fn dbsize(&self) -> usize {
        self.db.lock().unwrap().map.len()
    }

    /// The log, if the store has one.
    pub fn log(&self) -> Option<&Arc<Log>> {
        self.log.as_ref()
    }

    fn exec_unlogged(&self, args: &[&[u8]], out: &mut Vec<u8>) -> Flow {
        let mut db = self.db.lock().unwrap();
        exec(&mut db, None, args, out)
    }

    /// Runs one command, appending its reply to `out`. Writes are logged
    /// but not yet durable: the reply may be sent once the record in
    /// [`Flow::Continue`] is (see [`Log::durable`]).
    ///
    /// # Example
    ///
    /// ```
    /// let kv = handoff_servers::kv::Kv::new(handoff_servers::Threads);
    /// let mut out = Vec::new();
    /// kv.exec(&[b"SET", b"k", b"v"], &mut out);
    /// kv.exec(&[b"GET", b"k"], &mut out);
    /// assert_eq!(out, b"+OK\r\n$1\r\nv\r\n");
    /// ```
    pub fn exec(&self, args: &[&[u8]], out: &mut Vec<u8>) -> Flow {
        let mut db = self.db.lock().unwrap();
        // Here, not in `exec`, because it needs the runtime to spawn on.
        if let [name, rest @ ..] = args {
            if name.eq_ignore_ascii_case(b"BGREWRITEAOF") {
                if !rest.is_empty() {
                    return arity(out, name);
                }
                match self.start_rewrite(&db) {
                    Ok(()) => resp::simple(out, "Background append only file rewriting started"),
                    Err(e) => resp::error(out, &e),
                }
                return Flow::Continue(0);
            }
        }
        exec(&mut db, self.log.as_deref(), args, out)
    }
}

fn upper(name: &[u8]) -> [u8; 16] {
    let mut n = [0u8; 16];
    if name.len() <= 16 {
        for (d, s) in n.iter_mut().zip(name) {
            *d = s.to_ascii_uppercase();
        }
    }
    n
}

fn is(name: &[u8; 16], s: &str) -> bool {
    &name[..s.len()] == s.as_bytes() && (s.len() == 16 || name[s.len()] == 0)
}

/// Executes one command on `db`, logging normalised writes to `log`, and
/// says which log record its reply depends on:
/// - a read (GET, MGET, EXISTS, TTL, PTTL) depends on the records that last
///   changed the keys it shows, or last removed them if they are missing:
///   a GET of a key nobody is writing is answered at once even while other
///   keys' writes wait for their fsync;
/// - a write depends on everything logged so far (its own record, and what
///   its reply reveals, e.g. `SET NX` finding a key);
/// - DBSIZE and INFO depend on everything logged so far;
/// - the rest (PING, ECHO, CONFIG, ...) on nothing.
fn exec(db: &mut Db, log: Option<&Log>, args: &[&[u8]], out: &mut Vec<u8>) -> Flow {
    let Some((&raw, rest)) = args.split_first() else {
        return Flow::Continue(0);
    };
    let last = || log.map_or(0, |l| l.last_seq());
    let name = upper(raw);
    let read_keys: &[&[u8]] = match () {
        _ if is(&name, "GET") || is(&name, "TTL") || is(&name, "PTTL") => {
            &rest[..rest.len().min(1)]
        }
        _ if is(&name, "MGET") || is(&name, "EXISTS") => rest,
        _ => &[],
    };
    let mut need = read_keys.iter().map(|k| db.dep(k)).max().unwrap_or(0);
    if is(&name, "DBSIZE") || is(&name, "INFO") {
        need = last();
    }
    let write = is_write(&name);
    match exec_inner(db, log, args, out) {
        // A write: its own record and everything before it.
        Flow::Continue(_) if write => Flow::Continue(last()),
        Flow::Continue(_) => Flow::Continue(need),
        Flow::Close => Flow::Close,
    }
}

fn is_write(name: &[u8; 16]) -> bool {
    [
        "SET", "DEL", "INCR", "DECR", "INCRBY", "DECRBY", "MSET", "EXPIRE", "PEXPIRE",
    ]
    .iter()
    .chain(&["PEXPIREAT", "FLUSHALL", "FLUSHDB"])
    .any(|w| is(name, w))
}

/// [`exec`] without the dependency (always `Continue(0)` or `Close`).
fn exec_inner(db: &mut Db, log: Option<&Log>, args: &[&[u8]], out: &mut Vec<u8>) -> Flow {
    let Some((&raw, rest)) = args.split_first() else {
        return Flow::Continue(0);
    };
    let name = upper(raw);
    let n = rest.len();
    let is_write = is_write(&name);
    if is_write && log.is_some_and(|l| l.failed()) {
        resp::error(
            out,
            "MISCONF Errors writing to the append-only log; writes are refused",
        );
        return Flow::Continue(0);
    }
    if is_write {
        db.write_seq = log.map_or(0, |l| l.last_seq() + 1);
    }

    let logw = |a: &[&[u8]]| {
        if let Some(l) = log {
            l.append(a);
        }
    };
    match () {
        _ if is(&name, "GET") => {
            if n != 1 {
                return arity(out, raw);
            }
            resp::bulk(out, db.live(rest[0]).map(|e| &e.val[..]));
        }
        _ if is(&name, "SET") => {
            if n < 2 {
                return arity(out, raw);
            }
            let (k, v) = (rest[0], rest[1]);
            let mut exp: Option<u64> = None;
            let mut keep_ttl = false;
            let (mut nx, mut xx, mut get) = (false, false, false);
            let mut i = 2;
            while i < n {
                let opt = upper(rest[i]);
                let arg = rest.get(i + 1).and_then(|a| parse_int(a));
                let timed = ["EX", "PX", "EXAT", "PXAT"].iter().any(|o| is(&opt, o));
                if timed {
                    let Some(t) = arg else {
                        resp::error(
                            out,
                            if rest.get(i + 1).is_some() {
                                NOT_INT
                            } else {
                                SYNTAX
                            },
                        );
                        return Flow::Continue(0);
                    };
                    if t <= 0 || exp.is_some() || keep_ttl {
                        resp::error(
                            out,
                            if t <= 0 {
                                "ERR invalid expire time in 'set' command"
                            } else {
                                SYNTAX
                            },
                        );
                        return Flow::Continue(0);
                    }
                    let t = t as u64;
                    exp = Some(match () {
                        _ if is(&opt, "EX") => now_ms().saturating_add(t.saturating_mul(1000)),
                        _ if is(&opt, "PX") => now_ms().saturating_add(t),
                        _ if is(&opt, "EXAT") => t.saturating_mul(1000),
                        _ => t,
                    });
                    i += 2;
                    continue;
                }
                match () {
                    _ if is(&opt, "KEEPTTL") && exp.is_none() => keep_ttl = true,
                    _ if is(&opt, "NX") && !xx => nx = true,
                    _ if is(&opt, "XX") && !nx => xx = true,
                    _ if is(&opt, "GET") => get = true,
                    _ => {
                        resp::error(out, SYNTAX);
                        return Flow::Continue(0);
                    }
                }
                i += 1;
            }
            let old = db.live(k);
            let exists = old.is_some();
            let old_exp = old.as_ref().and_then(|e| e.exp);
            let old_val = if get {
                old.map(|e| e.val.clone())
            } else {
                None
            };
            let reply_old = |out: &mut Vec<u8>| resp::bulk(out, old_val.as_deref());
            if (nx && exists) || (xx && !exists) {
                if get {
                    reply_old(out);
                } else {
                    resp::bulk(out, None);
                }
                return Flow::Continue(0);
            }
            if keep_ttl {
                exp = old_exp;
            }
            if exp.is_some_and(|t| t <= now_ms()) {
                // Already past (a PXAT in the past, or replaying an old
                // record): the key is gone.
                if db.remove(k) {
                    logw(&[b"DEL", k]);
                }
            } else {
                db.set(k, v.to_vec(), exp);
                match exp {
                    Some(t) => logw(&[b"SET", k, v, b"PXAT", t.to_string().as_bytes()]),
                    None => logw(&[b"SET", k, v]),
                }
            }
            if get {
                reply_old(out);
            } else {
                resp::simple(out, "OK");
            }
        }
        _ if is(&name, "PING") => match n {
            0 => resp::simple(out, "PONG"),
            1 => resp::bulk(out, Some(rest[0])),
            _ => return arity(out, raw),
        },
        _ if is(&name, "ECHO") => {
            if n != 1 {
                return arity(out, raw);
            }
            resp::bulk(out, Some(rest[0]));
        }
        _ if is(&name, "DEL") => {
            if n == 0 {
                return arity(out, raw);
            }
            let mut gone = Vec::new();
            for k in rest {
                if db.live(k).is_some() {
                    db.remove(k);
                    gone.push(*k);
                }
            }
            if !gone.is_empty() {
                let mut rec: Vec<&[u8]> = vec![b"DEL"];
                rec.extend(&gone);
                logw(&rec);
            }
            resp::int(out, gone.len() as i64);
        }
        _ if is(&name, "EXISTS") => {
            if n == 0 {
                return arity(out, raw);
            }
            let c = rest.iter().filter(|k| db.live(k).is_some()).count();
            resp::int(out, c as i64);
        }
        _ if ["INCR", "DECR", "INCRBY", "DECRBY"]
            .iter()
            .any(|c| is(&name, c)) =>
        {
            let by_arg = is(&name, "INCRBY") || is(&name, "DECRBY");
            if n != 1 + by_arg as usize {
                return arity(out, raw);
            }
            let Some(mut by) = (if by_arg { parse_int(rest[1]) } else { Some(1) }) else {
                resp::error(out, NOT_INT);
                return Flow::Continue(0);
            };
            if is(&name, "DECR") || is(&name, "DECRBY") {
                let Some(neg) = by.checked_neg() else {
                    resp::error(out, NOT_INT);
                    return Flow::Continue(0);
                };
                by = neg;
            }
            let k = rest[0];
            let (cur, exp) = match db.live(k) {
                Some(e) => match parse_int(&e.val) {
                    Some(v) => (v, e.exp),
                    None => {
                        resp::error(out, NOT_INT);
                        return Flow::Continue(0);
                    }
                },
                None => (0, None),
            };
            let Some(new) = cur.checked_add(by) else {
                resp::error(out, "ERR increment or decrement would overflow");
                return Flow::Continue(0);
            };
            let val = new.to_string().into_bytes();
            logw(&[b"SET", k, &val, b"KEEPTTL"]);
            let seq = db.write_seq;
            match db.map.get_mut(k) {
                Some(e) => {
                    e.val = val;
                    e.seq = seq;
                }
                None => db.set(k, val, exp),
            }
            resp::int(out, new);
        }
        _ if is(&name, "MGET") => {
            if n == 0 {
                return arity(out, raw);
            }
            resp::array(out, n);
            for k in rest {
                resp::bulk(out, db.live(k).map(|e| &e.val[..]));
            }
        }
        _ if is(&name, "MSET") => {
            if n == 0 || n % 2 != 0 {
                return arity(out, raw);
            }
            for kv in rest.chunks(2) {
                db.set(kv[0], kv[1].to_vec(), None);
            }
            logw(args);
            resp::simple(out, "OK");
        }
        _ if ["EXPIRE", "PEXPIRE", "PEXPIREAT"]
            .iter()
            .any(|c| is(&name, c)) =>
        {
            if n != 2 {
                return arity(out, raw);
            }
            let Some(t) = parse_int(rest[1]) else {
                resp::error(out, NOT_INT);
                return Flow::Continue(0);
            };
            let k = rest[0];
            let at = match () {
                _ if is(&name, "EXPIRE") => {
                    (now_ms() as i64).saturating_add(t.saturating_mul(1000))
                }
                _ if is(&name, "PEXPIRE") => (now_ms() as i64).saturating_add(t),
                _ => t,
            };
            if db.live(k).is_none() {
                resp::int(out, 0);
            } else if at <= now_ms() as i64 {
                db.remove(k);
                logw(&[b"DEL", k]);
                resp::int(out, 1);
            } else {
                let e = db.map.get_mut(k).expect("live key is present");
                e.seq = db.write_seq;
                if e.exp.replace(at as u64).is_none() {
                    db.volatile += 1;
                }
                logw(&[b"PEXPIREAT", k, at.to_string().as_bytes()]);
                resp::int(out, 1);
            }
        }
        _ if is(&name, "TTL") || is(&name, "PTTL") => {
            if n != 1 {
                return arity(out, raw);
            }
            let v = match db.live(rest[0]) {
                None => -2,
                Some(Entry { exp: None, .. }) => -1,
                Some(Entry { exp: Some(t), .. }) => {
                    let ms = t.saturating_sub(now_ms()) as i64;
                    if is(&name, "TTL") {
                        (ms + 500) / 1000
                    } else {
                        ms
                    }
                }
            };
            resp::int(out, v);
        }
        _ if is(&name, "DBSIZE") => resp::int(out, db.map.len() as i64),
        _ if is(&name, "FLUSHALL") || is(&name, "FLUSHDB") => {
            db.map.clear();
            db.volatile = 0;
            db.del_seq = db.write_seq;
            logw(&[b"FLUSHALL"]);
            resp::simple(out, "OK");
        }
        _ if is(&name, "SELECT") => match rest {
            [b"0"] => resp::simple(out, "OK"),
            [_] => resp::error(out, "ERR DB index is out of range"),
            _ => return arity(out, raw),
        },
        _ if is(&name, "COMMAND") => {
            if rest
                .first()
                .is_some_and(|s| s.eq_ignore_ascii_case(b"COUNT"))
            {
                resp::int(out, 0);
            } else {
                resp::array(out, 0);
            }
        }
        _ if is(&name, "CONFIG") => {
            let sub = rest.first().map(|s| upper(s));
            if sub.is_some_and(|s| is(&s, "GET")) {
                // The pairs redis-benchmark reads at start; others: empty.
                let mut pairs: Vec<(&[u8], &[u8])> = Vec::new();
                for p in &rest[1..] {
                    if p.eq_ignore_ascii_case(b"save") {
                        pairs.push((b"save", b""));
                    } else if p.eq_ignore_ascii_case(b"appendonly") {
                        pairs.push((b"appendonly", if log.is_some() { b"yes" } else { b"no" }));
                    }
                }
                resp::array(out, pairs.len() * 2);
                for (k, v) in pairs {
                    resp::bulk(out, Some(k));
                    resp::bulk(out, Some(v));
                }
            } else {
                resp::simple(out, "OK");
            }
        }
        _ if is(&name, "CLIENT") => resp::simple(out, "OK"),
        _ if is(&name, "INFO") => {
            let expires = db.map.values().filter(|e| e.exp.is_some()).count();
            let persistence = match log.map(Log::rewrite_stats) {
                None => "aof_enabled:0\r\n".to_string(),
                Some(s) => format!(
                    "aof_enabled:1\r\naof_rewrite_in_progress:{}\r\naof_rewrites:{}\r\naof_rewrites_failed:{}\r\naof_last_bgrewrite_status:{}\r\naof_current_size:{}\r\naof_base_size:{}\r\n",
                    s.in_progress as u8,
                    s.rewrites,
                    s.failures,
                    if s.last_failed { "err" } else { "ok" },
                    s.current_size,
                    s.base_size
                ),
            };
            let sections = [
                (
                    "server",
                    "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nserver:handoff-kv\r\n"
                        .to_string(),
                ),
                ("persistence", format!("# Persistence\r\n{persistence}")),
                (
                    "keyspace",
                    format!(
                        "# Keyspace\r\ndb0:keys={},expires={expires},avg_ttl=0\r\n",
                        db.map.len()
                    ),
                ),
            ];
            // `INFO [section ...]`, as Redis 7: no argument, `all`,
            // `default` or `everything` is every section; an unknown one
            // adds nothing.
            let all = rest.is_empty()
                || rest.iter().any(|a| {
                    ["all", "default", "everything"]
                        .iter()
                        .any(|w| a.eq_ignore_ascii_case(w.as_bytes()))
                });
            let info: Vec<&str> = sections
                .iter()
                .filter(|(name, _)| {
                    all || rest.iter().any(|a| a.eq_ignore_ascii_case(name.as_bytes()))
                })
                .map(|(_, text)| text.as_str())
                .collect();
            resp::bulk(out, Some(info.join("\r\n").as_bytes()));
        }
        _ if is(&name, "QUIT") => {
            resp::simple(out, "OK");
            return Flow::Close;
        }
        _ => {
            let shown: String = String::from_utf8_lossy(raw).chars().take(64).collect();
            resp::error(
                out,
                &format!("ERR unknown command '{shown}', with args beginning with: "),
            );
        }
    }
    Flow::Continue(0)
}

fn arity(out: &mut Vec<u8>, name: &[u8]) -> Flow {
    wrong_args(out, name);
    Flow::Continue(0)
}

impl<R: Rt> Service for Kv<R> {
    async fn serve<S: Conn>(self: Arc<Self>, conn: S, activity: Activity) {
        let mut c = ConnBuf::new(conn, activity);
        loop {
            let mut close = false;
            let mut want = 0;
            // The log record the batch's replies depend on.
            let mut need = 0;
            // Step 1 of `crate::buf`: run every buffered command.
            while c.out.len() < OUT_HIGH_WATER {
                let (inp, out) = c.split();
                let used = match parse_command(inp) {
                    Cmd::Complete(args, len) => {
                        match self.exec(&args, out) {
                            Flow::Continue(seq) => need = need.max(seq),
                            Flow::Close => close = true,
                        }
                        len
                    }
                    Cmd::Partial(n) => {
                        want = n;
                        break;
                    }
                    Cmd::Error(msg) => {
                        resp::error(out, &format!("ERR {msg}"));
                        close = true;
                        break;
                    }
                };
                c.consume(used);
                if close {
                    break;
                }
            }
            // Acknowledge nothing that is not durable yet, and show nothing
            // that a crash could still take back.
            if let Some(log) = &self.log {
                if need > 0 && log.durable(&self.rt, need).await.is_err() {
                    return;
                }
            }
            if !c.write_then_fill(close, want).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Fsync;
    use crate::resp::{parse_reply, Reply};
    use crate::rt::Threads;

    fn run(kv: &Kv<Threads>, cmd: &str) -> Reply {
        let args: Vec<&[u8]> = cmd.split(' ').map(str::as_bytes).collect();
        let mut out = Vec::new();
        kv.exec(&args, &mut out);
        let (r, n) = parse_reply(&out).unwrap().expect("one whole reply");
        assert_eq!(n, out.len(), "exactly one reply for {cmd}");
        r
    }

    fn ok() -> Reply {
        Reply::Simple("OK".into())
    }
    fn b(s: &str) -> Reply {
        Reply::Bulk(Some(s.as_bytes().to_vec()))
    }
    fn err(r: Reply) -> String {
        match r {
            Reply::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn every_command() {
        let kv = Kv::new(Threads);
        assert_eq!(run(&kv, "PING"), Reply::Simple("PONG".into()));
        assert_eq!(run(&kv, "ping hi"), b("hi"));
        assert_eq!(run(&kv, "ECHO x"), b("x"));
        assert_eq!(run(&kv, "GET k"), Reply::Bulk(None));
        assert_eq!(run(&kv, "SET k v"), ok());
        assert_eq!(run(&kv, "get k"), b("v"));
        assert_eq!(run(&kv, "SET k w NX"), Reply::Bulk(None));
        assert_eq!(run(&kv, "SET k w XX GET"), b("v"));
        assert_eq!(run(&kv, "SET n 1 XX"), Reply::Bulk(None));
        assert_eq!(run(&kv, "EXISTS k n k"), Reply::Int(2));
        assert_eq!(run(&kv, "INCR c"), Reply::Int(1));
        assert_eq!(run(&kv, "INCRBY c 41"), Reply::Int(42));
        assert_eq!(run(&kv, "DECR c"), Reply::Int(41));
        assert_eq!(run(&kv, "DECRBY c 1"), Reply::Int(40));
        assert!(err(run(&kv, "INCR k")).contains("not an integer"));
        assert_eq!(run(&kv, "SET big 9223372036854775807"), ok());
        assert!(err(run(&kv, "INCR big")).contains("overflow"));
        assert_eq!(run(&kv, "MSET a 1 b 2"), ok());
        assert_eq!(
            run(&kv, "MGET a nope b"),
            Reply::Array(Some(vec![b("1"), Reply::Bulk(None), b("2")]))
        );
        assert_eq!(run(&kv, "DBSIZE"), Reply::Int(5));
        assert_eq!(run(&kv, "DEL a b nope"), Reply::Int(2));
        assert_eq!(run(&kv, "TTL k"), Reply::Int(-1));
        assert_eq!(run(&kv, "TTL nope"), Reply::Int(-2));
        assert_eq!(run(&kv, "EXPIRE k 100"), Reply::Int(1));
        assert!(matches!(run(&kv, "TTL k"), Reply::Int(99 | 100)));
        assert!(matches!(run(&kv, "PTTL k"), Reply::Int(t) if t > 98_000 && t <= 100_000));
        assert_eq!(run(&kv, "EXPIRE nope 100"), Reply::Int(0));
        assert_eq!(run(&kv, "SET t v EX 50"), ok());
        assert!(matches!(run(&kv, "TTL t"), Reply::Int(49 | 50)));
        assert_eq!(
            run(&kv, "SET t v PX 50000 KEEPTTL"),
            err_reply("ERR syntax error")
        );
        assert_eq!(run(&kv, "SET t v2 KEEPTTL"), ok());
        assert!(matches!(run(&kv, "TTL t"), Reply::Int(49 | 50)));
        // Deadlines already past: the key is gone at once.
        assert_eq!(run(&kv, "SET gone v PXAT 1"), ok());
        assert_eq!(run(&kv, "GET gone"), Reply::Bulk(None));
        assert_eq!(run(&kv, "PEXPIRE t -1"), Reply::Int(1));
        assert_eq!(run(&kv, "EXISTS t"), Reply::Int(0));
        assert!(err(run(&kv, "SET k v EX 0")).contains("invalid expire"));
        assert!(err(run(&kv, "SET k v EX x")).contains("not an integer"));
        assert!(err(run(&kv, "SET k v BOGUS")).contains("syntax"));
        assert!(err(run(&kv, "GET")).contains("wrong number of arguments for 'get'"));
        assert!(err(run(&kv, "MSET a")).contains("wrong number"));
        assert!(err(run(&kv, "NOSUCH x")).contains("unknown command 'NOSUCH'"));
        assert_eq!(run(&kv, "FLUSHALL"), ok());
        assert_eq!(run(&kv, "DBSIZE"), Reply::Int(0));
    }

    fn err_reply(s: &str) -> Reply {
        Reply::Error(s.into())
    }

    #[test]
    fn what_stock_clients_send_at_connect() {
        let kv = Kv::new(Threads);
        assert_eq!(run(&kv, "COMMAND DOCS"), Reply::Array(Some(vec![])));
        assert_eq!(run(&kv, "COMMAND"), Reply::Array(Some(vec![])));
        assert_eq!(run(&kv, "CONFIG GET maxmemory"), Reply::Array(Some(vec![])));
        assert_eq!(
            run(&kv, "CONFIG GET save"),
            Reply::Array(Some(vec![b("save"), b("")]))
        );
        assert_eq!(run(&kv, "CLIENT SETNAME me"), ok());
        assert_eq!(run(&kv, "SELECT 0"), ok());
        assert!(err(run(&kv, "SELECT 1")).contains("out of range"));
        assert!(err(run(&kv, "HELLO 3")).starts_with("ERR unknown command 'HELLO'"));
        assert!(matches!(run(&kv, "INFO"), Reply::Bulk(Some(i)) if i.starts_with(b"# Server")));
        // One section, or several, by name in any case; unknown ones add nothing.
        let Reply::Bulk(Some(ks)) = run(&kv, "INFO KEYSPACE") else {
            panic!("INFO KEYSPACE is a bulk string");
        };
        assert!(ks.starts_with(b"# Keyspace\r\ndb0:keys="), "{ks:?}");
        assert!(!ks.windows(8).any(|w| w == b"# Server"));
        let Reply::Bulk(Some(two)) = run(&kv, "INFO server keyspace") else {
            panic!("INFO with two sections is a bulk string");
        };
        assert!(two.starts_with(b"# Server") && two.windows(10).any(|w| w == b"# Keyspace"));
        assert!(!two.windows(13).any(|w| w == b"# Persistence"));
        assert_eq!(
            run(&kv, "INFO nosuchsection"),
            Reply::Bulk(Some(Vec::new()))
        );
        assert!(
            matches!(run(&kv, "INFO all"), Reply::Bulk(Some(i)) if i.windows(13).any(|w| w == b"# Persistence"))
        );
    }

    #[test]
    fn replies_wait_only_for_the_records_they_show() {
        let dir = crate::log::tests::temp_dir("kv-deps");
        let (kv, _) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
        let flow = |cmd: &str| {
            let args: Vec<&[u8]> = cmd.split(' ').map(str::as_bytes).collect();
            kv.exec(&args, &mut Vec::new())
        };
        assert_eq!(flow("SET a 1"), Flow::Continue(1));
        assert_eq!(flow("SET b 2"), Flow::Continue(2));
        assert_eq!(flow("GET a"), Flow::Continue(1), "shows a's record only");
        assert_eq!(flow("GET nobody"), Flow::Continue(0), "no removal yet");
        assert_eq!(flow("MGET a b"), Flow::Continue(2));
        assert_eq!(flow("INCR a"), Flow::Continue(3));
        assert_eq!(flow("TTL a"), Flow::Continue(3));
        assert_eq!(flow("DEL a"), Flow::Continue(4));
        assert_eq!(flow("GET a"), Flow::Continue(4), "the miss shows the DEL");
        assert_eq!(
            flow("SET b 9 NX"),
            Flow::Continue(4),
            "a refused write shows state"
        );
        assert_eq!(flow("DBSIZE"), Flow::Continue(4));
        assert_eq!(flow("PING"), Flow::Continue(0));
        assert_eq!(flow("QUIT"), Flow::Close);
    }

    #[test]
    fn restart_replays_normalised_writes() {
        let dir = crate::log::tests::temp_dir("kv-replay");
        let (kv, _) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
        for c in [
            "SET a 1",
            "SET ttl v EX 1000",
            "INCR a",
            "INCR a",
            "MSET b 2 c 3",
            "DEL c",
            "EXPIRE b 2000",
            "SET x y",
            "FLUSHALL",
            "SET a 10",
            "SET ttl2 v PX 900000",
            "INCR a",
            "SET n v NX",
            "SET n w NX",
        ] {
            run(&kv, c);
        }
        let log = kv.log().unwrap().clone();
        futures::executor::block_on(log.durable(&Threads, log.last_seq())).unwrap();
        drop((kv, log));
        let (kv, replay) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
        assert_eq!(replay.torn_bytes, 0);
        assert_eq!(
            run(&kv, "MGET a n x"),
            Reply::Array(Some(vec![b("11"), b("v"), Reply::Bulk(None)]))
        );
        assert_eq!(run(&kv, "DBSIZE"), Reply::Int(3));
        assert!(matches!(run(&kv, "TTL ttl2"), Reply::Int(899 | 900)));
        assert_eq!(run(&kv, "TTL a"), Reply::Int(-1));
    }
}

#[cfg(test)]
mod conn_tests {
    use super::*;
    use crate::duplex::pipe;
    use crate::rt::Threads;
    use futures::io::{AsyncReadExt, AsyncWriteExt};

    fn start() -> crate::duplex::End {
        let (client, server) = pipe(1 << 20);
        let kv = Arc::new(Kv::new(Threads));
        std::thread::spawn(move || {
            futures::executor::block_on(kv.serve(server, Activity::detached()))
        });
        client
    }

    #[test]
    fn pipelined_commands_then_quit() {
        let mut c = start();
        futures::executor::block_on(async {
            let mut req = Vec::new();
            for i in 0..1000 {
                resp::command(&mut req, &["SET", &format!("k{i}"), "v"]);
            }
            req.extend_from_slice(b"DBSIZE\r\nQUIT\r\nPING\r\n");
            c.write_all(&req).await.unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).await.unwrap();
            let expect = "+OK\r\n".repeat(1000) + ":1000\r\n+OK\r\n";
            assert_eq!(
                String::from_utf8(all).unwrap(),
                expect,
                "nothing after QUIT"
            );
        });
    }

    #[test]
    fn protocol_error_replies_and_closes() {
        let mut c = start();
        futures::executor::block_on(async {
            c.write_all(b"PING\r\n*1\r\n$99999999999\r\nPING\r\n")
                .await
                .unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).await.unwrap();
            let all = String::from_utf8(all).unwrap();
            assert!(all.starts_with("+PONG\r\n-ERR Protocol error"), "{all}");
            assert_eq!(all.matches("\r\n").count(), 2);
        });
    }
}
