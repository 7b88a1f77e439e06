//! Runtime-independent test bodies for the servers, driven over real TCP by
//! plain blocking clients. The servers crate's tests run them against the
//! servers on tokio; the root package's `tests/servers_*.rs` run the same
//! bodies against the servers on handoff.
//!
//! Every socket has a read/write timeout: a server that hangs fails the
//! test with a message instead of hanging it.
#![allow(dead_code)]
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handoff_servers::resp::{self, parse_reply, Reply};

/// The longest any single read may wait before the test fails.
pub const WATCHDOG: Duration = Duration::from_secs(30);

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("handoff-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Client {
    pub s: TcpStream,
    buf: Vec<u8>,
}

pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(WATCHDOG)).unwrap();
        s.set_write_timeout(Some(WATCHDOG)).unwrap();
        s.set_nodelay(true).unwrap();
        Client { s, buf: Vec::new() }
    }

    pub fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).expect("send");
    }

    fn more(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        match self.s.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("read failed (a hung server hits the watchdog): {e}"),
        }
    }

    /// Reads one HTTP response (`head_only` for a HEAD request).
    pub fn http(&mut self, head_only: bool) -> HttpResponse {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end + 4].to_vec()).unwrap();
                let status = head[9..12].parse().unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().unwrap())
                    })
                    .expect("every response has Content-Length");
                let body_len = if head_only { 0 } else { len };
                while self.buf.len() < end + 4 + body_len {
                    assert!(self.more() > 0, "connection closed mid-body");
                }
                let body = self.buf[end + 4..end + 4 + body_len].to_vec();
                self.buf.drain(..end + 4 + body_len);
                return HttpResponse { status, head, body };
            }
            assert!(
                self.more() > 0,
                "connection closed before a response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    pub fn get(&mut self, path: &str) -> HttpResponse {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        self.http(false)
    }

    /// Reads one RESP reply.
    pub fn reply(&mut self) -> Reply {
        loop {
            if let Some((r, n)) = parse_reply(&self.buf).expect("well-formed reply") {
                self.buf.drain(..n);
                return r;
            }
            assert!(self.more() > 0, "connection closed before a reply");
        }
    }

    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        let mut b = Vec::new();
        resp::command(&mut b, args);
        self.send(&b);
        self.reply()
    }

    /// True once the server has closed the connection (after any buffered
    /// bytes, which are discarded).
    pub fn closed(&mut self) -> bool {
        self.buf.clear();
        loop {
            if self.more() == 0 {
                return true;
            }
        }
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

// ---------------------------------------------------------------- HTTP ----

/// The demo server's routes; `files` is its `--root`.
pub fn http_routes(addr: SocketAddr, files: &Path) {
    std::fs::write(files.join("hello.txt"), b"file contents\n").unwrap();
    let mut c = Client::connect(addr);
    let r = c.get("/");
    assert_eq!((r.status, &r.body[..]), (200, &b"Hello, world!\n"[..]));
    assert!(!r.head.contains("Connection: close"));
    let r = c.get("/file/hello.txt");
    assert_eq!((r.status, &r.body[..]), (200, &b"file contents\n"[..]));
    assert!(r.head.contains("Content-Type: text/plain"));
    assert_eq!(c.get("/file/missing.txt").status, 404);
    assert_eq!(c.get("/file/../Cargo.toml").status, 400);
    assert_eq!(c.get("/file/%2e%2e%2fCargo.toml").status, 400);
    assert_eq!(c.get("/file/a/b").status, 404);
    assert_eq!(c.get("/nope").status, 404);
    let r = c.get("/block?us=2000");
    assert_eq!((r.status, &r.body[..]), (200, &b"slept 2000 us\n"[..]));
    assert_eq!(c.get("/block?us=x").status, 400);
    assert_eq!(c.get("/block?us=99999999999").status, 400);
    c.send(b"HEAD / HTTP/1.1\r\n\r\n");
    let r = c.http(true);
    assert!(r.status == 200 && r.head.contains("Content-Length: 14"));
    c.send(b"DELETE / HTTP/1.1\r\n\r\n");
    let r = c.http(false);
    assert!(r.status == 405 && r.head.contains("Allow: GET, HEAD"));
    c.send(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(c.http(false).status, 405);
    // Still in step after the skipped body.
    assert_eq!(c.get("/").status, 200);
    // Connection: close is honoured.
    c.send(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    let r = c.http(false);
    assert!(r.status == 200 && r.head.contains("Connection: close"));
    assert!(c.closed());
    // HTTP/1.0: closes unless asked to keep alive.
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert!(c.http(false).head.contains("Connection: keep-alive"));
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(c.http(false).status, 200);
    assert!(c.closed());
}

/// 1000 pipelined requests in one write, answered in order.
pub fn http_pipelining(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let mut req = Vec::new();
    for i in 0..1000 {
        if i % 10 == 9 {
            req.extend_from_slice(b"GET /block?us=10 HTTP/1.1\r\n\r\n");
        } else {
            req.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        }
    }
    c.send(&req);
    for i in 0..1000 {
        let r = c.http(false);
        assert_eq!(r.status, 200);
        let want: &[u8] = if i % 10 == 9 {
            b"slept 10 us\n"
        } else {
            b"Hello, world!\n"
        };
        assert_eq!(r.body, want, "response {i}");
    }
}

/// Garbage, oversized heads: an error and a close; others unaffected.
pub fn http_bad_input(addr: SocketAddr) {
    let mut bystander = Client::connect(addr);
    let mut c = Client::connect(addr);
    c.send(b"\x00\x01\x02 garbage\r\n\r\n");
    assert_eq!(c.http(false).status, 400);
    assert!(c.closed());
    let mut c = Client::connect(addr);
    let mut big = b"GET / HTTP/1.1\r\n".to_vec();
    while big.len() < 70 * 1024 {
        big.extend_from_slice(b"X-Big: 0123456789012345678901234567890123456789\r\n");
    }
    c.send(&big);
    assert_eq!(c.http(false).status, 413);
    assert!(c.closed());
    let mut c = Client::connect(addr);
    c.send(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(c.http(false).status, 501);
    assert_eq!(bystander.get("/").status, 200);
}

/// `n` connections open at once, each served.
pub fn concurrent_http(addr: SocketAddr, n: usize) {
    let mut conns: Vec<Client> = (0..n).map(|_| Client::connect(addr)).collect();
    for c in &mut conns {
        c.send(b"GET / HTTP/1.1\r\n\r\n");
    }
    for c in &mut conns {
        assert_eq!(c.http(false).status, 200);
    }
    // And again, in reverse, on the same connections.
    for c in conns.iter_mut().rev() {
        assert_eq!(c.get("/").status, 200);
    }
}

/// A connection that says nothing is closed after the idle timeout (the
/// server must have been started with a short one).
pub fn idle_is_closed(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    assert!(c.closed());
}

/// A client that trickles a request head one byte every 50 ms is closed
/// (the server must have been started with a short idle timeout): bytes
/// are not progress, requests are.
pub fn slowloris_is_closed(addr: SocketAddr) {
    let c = Client::connect(addr);
    (&c.s).write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
    c.s.set_nonblocking(true).unwrap();
    let t0 = Instant::now();
    loop {
        assert!(
            t0.elapsed() < WATCHDOG,
            "a trickling client was never closed"
        );
        if (&c.s).write_all(b"a").is_err() {
            return;
        }
        let mut b = [0u8; 256];
        match (&c.s).read(&mut b) {
            Ok(0) => return,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return,
            Ok(_) => panic!("the server answered a request that never ended"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client that sends requests and never reads: the server stops reading
/// (bounded buffering) and keeps serving everyone else.
pub fn stalled_reader_is_bounded(addr: SocketAddr, request: &[u8]) {
    let c = Client::connect(addr);
    c.s.set_nonblocking(true).unwrap();
    let burst: Vec<u8> = request.repeat(4096 / request.len().max(1) + 1);
    let mut sent = 0usize;
    let mut stuck_since: Option<Instant> = None;
    // Keep pushing until the pipe has been full for half a second.
    loop {
        match (&c.s).write(&burst) {
            Ok(n) => {
                sent += n;
                stuck_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *stuck_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write: {e}"),
        }
        assert!(
            sent < 256 << 20,
            "server keeps reading from a client that never reads"
        );
    }
    let mut other = Client::connect(addr);
    other.s.set_read_timeout(Some(WATCHDOG)).unwrap();
    if request.starts_with(b"GET") {
        assert_eq!(other.get("/").status, 200);
    } else {
        assert_eq!(other.cmd(&["PING"]), Reply::Simple("PONG".into()));
    }
    drop(c);
}

// ------------------------------------------------------------------ kv ----

/// Every command over a real socket.
pub fn kv_commands(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let ok = Reply::Simple("OK".into());
    assert_eq!(c.cmd(&["FLUSHALL"]), ok);
    assert_eq!(c.cmd(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(c.cmd(&["ECHO", "hi"]), bulk("hi"));
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok);
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v"));
    assert_eq!(c.cmd(&["SET", "e", "v", "EX", "100"]), ok);
    assert!(matches!(c.cmd(&["TTL", "e"]), Reply::Int(99 | 100)));
    assert_eq!(c.cmd(&["SET", "p", "v", "PX", "100000", "NX"]), ok);
    assert_eq!(c.cmd(&["SET", "p", "w", "NX"]), Reply::Bulk(None));
    assert_eq!(c.cmd(&["SET", "q", "w", "XX"]), Reply::Bulk(None));
    assert_eq!(c.cmd(&["EXISTS", "k", "p", "q"]), Reply::Int(2));
    assert_eq!(c.cmd(&["INCR", "n"]), Reply::Int(1));
    assert_eq!(c.cmd(&["INCR", "n"]), Reply::Int(2));
    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]), ok);
    assert_eq!(
        c.cmd(&["MGET", "a", "b", "zz"]),
        Reply::Array(Some(vec![bulk("1"), bulk("2"), Reply::Bulk(None)]))
    );
    assert_eq!(c.cmd(&["EXPIRE", "a", "50"]), Reply::Int(1));
    assert!(matches!(c.cmd(&["TTL", "a"]), Reply::Int(49 | 50)));
    assert_eq!(c.cmd(&["TTL", "b"]), Reply::Int(-1));
    assert_eq!(c.cmd(&["DEL", "a", "b", "zz"]), Reply::Int(2));
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(4));
    assert_eq!(c.cmd(&["COMMAND", "DOCS"]), Reply::Array(Some(vec![])));
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "nothing"]),
        Reply::Array(Some(vec![]))
    );
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "t"]), ok);
    assert_eq!(c.cmd(&["SELECT", "0"]), ok);
    assert!(
        matches!(c.cmd(&["HELLO", "3"]), Reply::Error(e) if e.starts_with("ERR unknown command"))
    );
    assert!(matches!(c.cmd(&["INFO"]), Reply::Bulk(Some(_))));
    // Inline commands, as typed into nc.
    c.send(b"PING\r\n");
    assert_eq!(c.reply(), Reply::Simple("PONG".into()));
    assert_eq!(c.cmd(&["FLUSHALL"]), ok);
    assert_eq!(c.cmd(&["DBSIZE"]), Reply::Int(0));
    assert_eq!(c.cmd(&["QUIT"]), ok);
    assert!(c.closed());
}

/// 10 000 pipelined commands in one write.
pub fn kv_pipelining(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    let mut req = Vec::new();
    for i in 0..5000 {
        resp::command(&mut req, &["SET", &format!("pk{i}"), &i.to_string()]);
        resp::command(&mut req, &["GET", &format!("pk{i}")]);
    }
    c.send(&req);
    for i in 0..5000 {
        assert_eq!(c.reply(), Reply::Simple("OK".into()));
        assert_eq!(c.reply(), bulk(&i.to_string()));
    }
}

/// Malformed input and limits: an error reply and a close; others unaffected.
pub fn kv_bad_input(addr: SocketAddr) {
    let mut bystander = Client::connect(addr);
    for bad in [
        &b"*1\r\n$536870913\r\n"[..],
        b"*1048577\r\n",
        b"*1\r\n:5\r\n",
        b"*x\r\n",
    ] {
        let mut c = Client::connect(addr);
        c.send(bad);
        assert!(matches!(c.reply(), Reply::Error(e) if e.contains("Protocol error")));
        assert!(c.closed());
    }
    assert_eq!(bystander.cmd(&["PING"]), Reply::Simple("PONG".into()));
}

/// 500 kv connections at once.
pub fn concurrent_kv(addr: SocketAddr, n: usize) {
    let mut conns: Vec<Client> = (0..n).map(|_| Client::connect(addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let mut b = Vec::new();
        resp::command(&mut b, &["SET", &format!("c{i}"), &i.to_string()]);
        c.send(&b);
    }
    for c in &mut conns {
        assert_eq!(c.reply(), Reply::Simple("OK".into()));
    }
    for (i, c) in conns.iter_mut().enumerate().rev() {
        assert_eq!(c.cmd(&["GET", &format!("c{i}")]), bulk(&i.to_string()));
    }
}

// ------------------------------------------------------- kv crash test ----

/// What a kv child process says when it is ready.
pub struct ChildInfo {
    pub child: Child,
    pub addr: SocketAddr,
    pub replayed: u64,
    pub torn: u64,
}

/// A child left behind by a failing test would hold the test's output
/// pipe open forever: kill it on the way out.
impl Drop for ChildInfo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Prints the line `start_kv_child` waits for. Call in the child once the
/// server listens.
pub fn announce(addr: SocketAddr, replayed: u64, torn: u64) {
    println!("CHILD LISTENING {addr} REPLAYED {replayed} TORN {torn}");
}

/// Re-executes this test binary to run only `entry`, a test that serves kv
/// on `dir` when `KV_CHILD_DIR` is set; waits for its announcement.
pub fn start_kv_child(entry: &str, dir: &Path) -> ChildInfo {
    start_child(entry, "KV_CHILD_DIR", dir)
}

/// Re-executes this test binary to run only the test `entry` with the
/// environment variable `var` set to `value`; waits for its [`announce`].
pub fn start_child(entry: &str, var: &str, value: &Path) -> ChildInfo {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, value)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("re-exec the test binary");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in io::BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            // libtest prints "test name ... " before the test's own output.
            if let Some(at) = line.find("CHILD LISTENING ") {
                let rest = &line[at + "CHILD LISTENING ".len()..];
                let w: Vec<&str> = rest.split(' ').collect();
                let _ = tx.send((
                    w[0].parse().unwrap(),
                    w[2].parse().unwrap(),
                    w[4].parse().unwrap(),
                ));
            }
        }
    });
    let (addr, replayed, torn) = rx
        .recv_timeout(WATCHDOG)
        .expect("child server did not start");
    ChildInfo {
        child,
        addr,
        replayed,
        torn,
    }
}

/// The crash test: writers hammer a child with `--fsync always` while
/// another client forces log rewrites back to back (BGREWRITEAOF); it is
/// SIGKILLed mid-write, perhaps mid-rewrite; a torn record is appended to
/// the log for good measure; after a restart every acknowledged write is
/// there and no rewrite file is left.
pub fn kv_crash(entry: &str) {
    let dir = temp_dir(&format!("crash-{entry}"));
    let mut first = start_kv_child(entry, &dir);
    let addr = first.addr;
    const WRITERS: usize = 8;
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..WRITERS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut i = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    // Every 16th value is big, so the kill often lands in
                    // the middle of a large record.
                    let val = if i & 15 == 0 {
                        format!("{i}:{}", "x".repeat(200_000))
                    } else {
                        i.to_string()
                    };
                    let mut b = Vec::new();
                    resp::command(&mut b, &["SET", &format!("w{w}:{i}"), &val]);
                    if (&c.s).write_all(&b).is_err() {
                        return;
                    }
                    match parse_until_reply(&mut c) {
                        Some(Reply::Simple(s)) if s == "OK" => acked[w].store(i, Ordering::SeqCst),
                        _ => return,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // Rewrites the log again as soon as the last one ends; counts those done.
    let rewrites = Arc::new(AtomicU64::new(0));
    let rewriter = {
        let (rewrites, stop) = (rewrites.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            while !stop.load(Ordering::Relaxed) {
                for args in [&["BGREWRITEAOF"][..], &["INFO"]] {
                    let mut b = Vec::new();
                    resp::command(&mut b, args);
                    if (&c.s).write_all(&b).is_err() {
                        return;
                    }
                    match parse_until_reply(&mut c) {
                        Some(Reply::Bulk(Some(info))) => {
                            let info = String::from_utf8(info).unwrap();
                            let n = info
                                .lines()
                                .find_map(|l| l.strip_prefix("aof_rewrites:"))
                                .and_then(|n| n.parse().ok())
                                .expect("INFO shows aof_rewrites");
                            rewrites.store(n, Ordering::SeqCst);
                        }
                        // Started, or one runs already.
                        Some(Reply::Simple(_) | Reply::Error(_)) => {}
                        _ => return,
                    }
                }
            }
        })
    };
    // Kill once every writer has had a few writes acknowledged and a few
    // rewrites have switched the log.
    let t0 = Instant::now();
    while acked.iter().any(|a| a.load(Ordering::SeqCst) < 20) || rewrites.load(Ordering::SeqCst) < 3
    {
        assert!(
            t0.elapsed() < WATCHDOG,
            "writers or rewrites made no progress: {} rewrites",
            rewrites.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.child.kill().expect("SIGKILL the kv child");
    first.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    rewriter.join().unwrap();
    // A torn record, as if the kill had cut one in half.
    let log = dir.join(handoff_servers::log::LOG_FILE);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'*', b'3'])
        .unwrap();
    drop(f);

    let mut second = start_kv_child(entry, &dir);
    assert!(
        !dir.join(handoff_servers::log::REWRITE_FILE).exists(),
        "a rewrite file the kill left is removed at open"
    );
    assert!(
        second.torn >= 10,
        "the torn tail was noticed: {}",
        second.torn
    );
    let total: u64 = acked.iter().map(|a| a.load(Ordering::SeqCst)).sum();
    assert!(
        second.replayed >= total,
        "replayed {} < acknowledged {total}",
        second.replayed
    );
    let mut c = Client::connect(second.addr);
    for (w, a) in acked.iter().enumerate() {
        for i in 1..=a.load(Ordering::SeqCst) {
            match c.cmd(&["GET", &format!("w{w}:{i}")]) {
                Reply::Bulk(Some(v)) => {
                    let v = String::from_utf8(v).unwrap();
                    assert!(
                        v == i.to_string() || v.starts_with(&format!("{i}:")),
                        "w{w}:{i} = {v}"
                    );
                }
                other => panic!("acknowledged write w{w}:{i} lost: {other:?}"),
            }
        }
    }
    // New writes go after the cut; a third start replays them, no tail.
    assert_eq!(
        c.cmd(&["SET", "after", "restart"]),
        Reply::Simple("OK".into())
    );
    second.child.kill().unwrap();
    second.child.wait().unwrap();
    let mut third = start_kv_child(entry, &dir);
    assert_eq!(third.torn, 0);
    assert_eq!(
        Client::connect(third.addr).cmd(&["GET", "after"]),
        bulk("restart")
    );
    third.child.kill().unwrap();
    third.child.wait().unwrap();
}

fn parse_until_reply(c: &mut Client) -> Option<Reply> {
    loop {
        if let Ok(Some((r, n))) = parse_reply(&c.buf) {
            c.buf.drain(..n);
            return Some(r);
        }
        let mut chunk = [0u8; 4096];
        match c.s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
        }
    }
}
