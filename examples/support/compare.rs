//! Runs one of the servers on handoff or on tokio and puts a load on it:
//! the shared core of the tour (`examples/tour.rs`) and the servers
//! benchmark (`benches/servers.rs`).
//!
//! Fairness: both runtimes get the same number of worker threads and run
//! the very same server code (`handoff_servers`); the load comes from
//! `handoff_servers::load`, a closed-loop generator on its own plain
//! threads (epoll, one request in flight per connection), identical for
//! both; every run starts from a fresh runtime and a fresh data directory.
#![allow(dead_code)]
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use handoff_servers::http::{Http, HttpConfig};
use handoff_servers::kv::Kv;
use handoff_servers::load::{self, Class, Proto};
use handoff_servers::log::Fsync;

use crate::glue;
use crate::tokio_glue::{self, BlockMode};

/// Which runtime, and for tokio how it runs blocking calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// handoff, `handoff::blocking` (inline, slot retaken if it lasts).
    Handoff,
    /// tokio, `spawn_blocking` (hop to the blocking pool).
    TokioSpawnBlocking,
    /// tokio, `block_in_place` (this worker's other tasks move away).
    TokioBlockInPlace,
}

impl Side {
    pub fn label(self) -> &'static str {
        match self {
            Side::Handoff => "handoff  blocking",
            Side::TokioSpawnBlocking => "tokio    spawn_blocking",
            Side::TokioBlockInPlace => "tokio    block_in_place",
        }
    }
}

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Http,
    Kv(Fsync),
}

/// A run's load report, plus handoff's metrics when it ran on handoff.
pub struct Outcome {
    pub report: load::Report,
    pub metrics: Option<handoff::Metrics>,
}

fn scratch_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "handoff-compare-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

const IDLE: Duration = Duration::from_secs(60);

/// Starts `server` on `side` with `workers` workers, runs `drive` against
/// it, and shuts everything down.
pub fn run(
    side: Side,
    server: Server,
    workers: usize,
    drive: impl FnOnce(SocketAddr) -> load::Report,
) -> Outcome {
    let dir = scratch_dir();
    // What `GET /file/small.txt` serves: 4 KiB, in the page cache after
    // the first read, so each read is a short system call.
    std::fs::write(dir.join("small.txt"), vec![b'x'; 4096]).expect("write small.txt");
    let out = match side {
        Side::Handoff => {
            let rt = glue::runtime(Some(workers));
            let addr = match server {
                Server::Http => {
                    let d = dir.clone();
                    glue::start(
                        &rt,
                        "127.0.0.1:0",
                        move |r| Arc::new(Http::new(r, HttpConfig::demo(d))),
                        IDLE,
                    )
                }
                Server::Kv(fsync) => glue::start(
                    &rt,
                    "127.0.0.1:0",
                    |r| {
                        rt.block_on(async { Kv::open(r, &dir, fsync) })
                            .expect("open kv")
                            .0
                    },
                    IDLE,
                ),
            };
            prime(server, addr);
            let report = drive(addr);
            let metrics = rt.metrics();
            rt.shutdown_timeout(Duration::from_millis(500));
            Outcome {
                report,
                metrics: Some(metrics),
            }
        }
        Side::TokioSpawnBlocking | Side::TokioBlockInPlace => {
            let mode = if side == Side::TokioSpawnBlocking {
                BlockMode::SpawnBlocking
            } else {
                BlockMode::BlockInPlace
            };
            let rt = tokio_glue::runtime(workers);
            let addr = match server {
                Server::Http => {
                    let d = dir.clone();
                    tokio_glue::start(
                        &rt,
                        mode,
                        "127.0.0.1:0",
                        move |r| Arc::new(Http::new(r, HttpConfig::demo(d))),
                        IDLE,
                    )
                }
                Server::Kv(fsync) => tokio_glue::start(
                    &rt,
                    mode,
                    "127.0.0.1:0",
                    |r| {
                        rt.block_on(async { Kv::open(r, &dir, fsync) })
                            .expect("open kv")
                            .0
                    },
                    IDLE,
                ),
            };
            prime(server, addr);
            let report = drive(addr);
            rt.shutdown_timeout(Duration::from_millis(500));
            Outcome {
                report,
                metrics: None,
            }
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Puts the key the kv GETs read in place (before the measured load).
fn prime(server: Server, addr: SocketAddr) {
    use std::io::{Read, Write};
    if let Server::Kv(_) = server {
        let mut s = std::net::TcpStream::connect(addr).expect("connect to prime");
        let mut b = Vec::new();
        handoff_servers::resp::command(&mut b, &["SET", "key:read", "0123456789abcdef"]);
        s.write_all(&b).unwrap();
        let mut reply = [0u8; 5];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+OK\r\n");
    }
}

/// HTTP: `GET /` with weight `fast`, `GET /block?us=<us>` with weight `slow`.
pub fn http_mix(fast: u32, slow: u32, us: u64) -> Vec<Class> {
    let mut mix = vec![Class {
        name: "GET /".into(),
        weight: fast,
        request: b"GET / HTTP/1.1\r\nHost: b\r\n\r\n".to_vec(),
    }];
    if slow > 0 {
        mix.push(Class {
            name: format!("GET /block?us={us}"),
            weight: slow,
            request: format!("GET /block?us={us} HTTP/1.1\r\nHost: b\r\n\r\n").into_bytes(),
        });
    }
    mix
}

/// HTTP: `GET /` with weight `fast`, `GET /file/small.txt` (a 4 KiB file
/// read through the runtime's file API: open, read, close, each short)
/// with weight `file`.
pub fn http_file_mix(fast: u32, file: u32) -> Vec<Class> {
    vec![
        Class {
            name: "GET /".into(),
            weight: fast,
            request: b"GET / HTTP/1.1\r\nHost: b\r\n\r\n".to_vec(),
        },
        Class {
            name: "GET /file/small.txt".into(),
            weight: file,
            request: b"GET /file/small.txt HTTP/1.1\r\nHost: b\r\n\r\n".to_vec(),
        },
    ]
}

/// kv: `GET` with weight `get` of a key that is there and not being
/// written, `SET` with weight `set` of another key (16-byte values). Under
/// `--fsync always` a GET waits for no fsync (it shows no pending record),
/// a SET waits for its group commit.
pub fn kv_mix(get: u32, set: u32) -> Vec<Class> {
    let cmd = |args: &[&str]| {
        let mut b = Vec::new();
        handoff_servers::resp::command(&mut b, args);
        b
    };
    let mut mix = Vec::new();
    if get > 0 {
        mix.push(Class {
            name: "GET".into(),
            weight: get,
            request: cmd(&["GET", "key:read"]),
        });
    }
    if set > 0 {
        mix.push(Class {
            name: "SET".into(),
            weight: set,
            request: cmd(&["SET", "key:write", "0123456789abcdef"]),
        });
    }
    mix
}

/// A closed-loop load of `connections` on `addr`.
pub fn drive(
    addr: SocketAddr,
    proto: Proto,
    mix: Vec<Class>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> load::Report {
    load::run(&load::Spec {
        addr,
        connections,
        threads: 1,
        duration,
        warmup,
        proto,
        mix,
    })
    .expect("load generator")
}

/// Median of a list of numbers.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}
