//! The kv store's log compaction, in process on plain threads
//! ([`Threads`]): a rewrite keeps every live key and deadline and drops the
//! history; writes made while rewrites run all survive a restart, in
//! order, under every fsync policy; FLUSHALL during a rewrite; the
//! automatic trigger; INFO and BGREWRITEAOF's replies. Failures injected
//! into a rewrite are tested next to the log (`servers/src/log.rs`); the
//! SIGKILL test (`tests/servers_kv.rs`, `servers/tests/tokio_servers.rs`)
//! forces rewrites while it writes.
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use handoff_servers::kv::{Flow, Kv};
use handoff_servers::log::{Fsync, Options, REWRITE_FILE};
use handoff_servers::resp::{parse_reply, Reply};
use handoff_servers::Threads;

const WATCHDOG: Duration = Duration::from_secs(60);

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("handoff-kv-rewrite-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `line` and, like a connection, waits until its reply may be sent.
fn cmd(kv: &Kv<Threads>, line: &str) -> Reply {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    let mut out = Vec::new();
    let flow = kv.exec(&args, &mut out);
    if let (Flow::Continue(seq @ 1..), Some(log)) = (flow, kv.log()) {
        block_on(log.durable(&Threads, seq)).unwrap();
    }
    let (reply, n) = parse_reply(&out).unwrap().expect("one whole reply");
    assert_eq!(n, out.len(), "one reply for {line}");
    reply
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

fn started() -> Reply {
    Reply::Simple("Background append only file rewriting started".into())
}

/// Waits (under the watchdog) until no rewrite runs.
fn wait_rewrite_done(kv: &Kv<Threads>) {
    let t0 = Instant::now();
    while kv.log().unwrap().rewrite_stats().in_progress {
        assert!(t0.elapsed() < WATCHDOG, "the rewrite never ended");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn log_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join(handoff_servers::log::LOG_FILE))
        .unwrap()
        .len()
}

#[test]
fn rewrite_keeps_every_key_and_deadline_and_drops_the_history() {
    let dir = temp_dir("keeps");
    let (kv, _) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
    for i in 0..400 {
        cmd(&kv, &format!("SET k{} v{i}", i % 20));
    }
    cmd(&kv, "SET ttl v PX 900000");
    cmd(&kv, "SET gone v");
    cmd(&kv, "DEL gone");
    for _ in 0..5 {
        cmd(&kv, "INCR c");
    }
    cmd(&kv, "EXPIRE c 1000");
    cmd(&kv, "SET short v PX 1");
    // `short` expires; it is not written into the snapshot whether or not
    // the sweeper removed it first.
    std::thread::sleep(Duration::from_millis(3));
    let before = log_len(&dir);
    assert_eq!(cmd(&kv, "BGREWRITEAOF"), started());
    wait_rewrite_done(&kv);
    let stats = kv.log().unwrap().rewrite_stats();
    assert_eq!((stats.rewrites, stats.failures), (1, 0));
    let after = log_len(&dir);
    assert_eq!(stats.current_size, after);
    assert!(after * 10 < before, "{before} -> {after} bytes");
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let mget = format!("MGET {}", keys.join(" "));
    let values = cmd(&kv, &mget);
    let Reply::Int(ttl_before) = cmd(&kv, "PTTL ttl") else {
        panic!()
    };
    drop(kv);

    let (kv, replay) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
    assert_eq!(
        (replay.records, replay.torn_bytes),
        (22, 0),
        "one record per live key"
    );
    assert_eq!(cmd(&kv, &mget), values);
    assert_eq!(cmd(&kv, "GET k19"), bulk("v399"));
    assert_eq!(cmd(&kv, "GET c"), bulk("5"));
    assert!(matches!(cmd(&kv, "TTL c"), Reply::Int(990..=1000)));
    let Reply::Int(ttl_after) = cmd(&kv, "PTTL ttl") else {
        panic!()
    };
    assert!(
        ttl_after <= ttl_before && ttl_after > ttl_before - 30_000,
        "same deadline: {ttl_before} then {ttl_after}"
    );
    assert_eq!(cmd(&kv, "EXISTS gone short"), Reply::Int(0));
    assert_eq!(cmd(&kv, "DBSIZE"), Reply::Int(22));
}

/// Several tasks INCR one counter and SET their own key in sequence while
/// another forces rewrites back to back: after a restart the counter is
/// the number of acknowledged INCRs and each key its writer's last value.
fn writes_during_rewrites_survive(fsync: Fsync, name: &str) {
    const WRITERS: usize = 4;
    /// Each writer writes at least this often, and on until this many
    /// rewrites have been started (so they overlap the writes).
    const EACH: u64 = 200;
    const REWRITES: u64 = 5;
    let dir = temp_dir(name);
    let (kv, _) = Kv::open(Threads, &dir, fsync).unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let started_n = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rewriter = {
        let (kv, stop, n) = (kv.clone(), stop.clone(), started_n.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match cmd(&kv, "BGREWRITEAOF") {
                    r if r == started() => {
                        n.fetch_add(1, Ordering::SeqCst);
                    }
                    Reply::Error(e) if e.contains("already in progress") => {}
                    other => panic!("BGREWRITEAOF: {other:?}"),
                }
                std::thread::yield_now();
            }
        })
    };
    let t0 = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (kv, acked, n) = (kv.clone(), acked.clone(), started_n.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while i < EACH || n.load(Ordering::SeqCst) < REWRITES {
                    assert!(t0.elapsed() < WATCHDOG, "no rewrites started");
                    i += 1;
                    assert!(matches!(cmd(&kv, "INCR counter"), Reply::Int(_)));
                    acked.fetch_add(1, Ordering::SeqCst);
                    let set = format!("SET w{w} {i}");
                    assert_eq!(cmd(&kv, &set), Reply::Simple("OK".into()));
                }
                i
            })
        })
        .collect();
    let last: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    rewriter.join().unwrap();
    wait_rewrite_done(&kv);
    let stats = kv.log().unwrap().rewrite_stats();
    assert!(stats.rewrites >= REWRITES, "{stats:?}");
    assert_eq!(stats.failures, 0);
    let total = acked.load(Ordering::SeqCst);
    assert_eq!(total, last.iter().sum::<u64>());
    assert_eq!(cmd(&kv, "GET counter"), bulk(&total.to_string()));
    drop(kv);

    let (kv, replay) = Kv::open(Threads, &dir, fsync).unwrap();
    assert_eq!(replay.torn_bytes, 0);
    assert_eq!(
        cmd(&kv, "GET counter"),
        bulk(&total.to_string()),
        "{name}: acknowledged INCRs lost or doubled"
    );
    for (w, i) in last.iter().enumerate() {
        assert_eq!(cmd(&kv, &format!("GET w{w}")), bulk(&i.to_string()));
    }
    assert!(!dir.join(REWRITE_FILE).exists());
}

#[test]
fn writes_during_rewrites_survive_fsync_always() {
    writes_during_rewrites_survive(Fsync::Always, "during-always");
}

#[test]
fn writes_during_rewrites_survive_fsync_everysec() {
    writes_during_rewrites_survive(Fsync::EverySec, "during-everysec");
}

#[test]
fn writes_during_rewrites_survive_fsync_no() {
    writes_during_rewrites_survive(Fsync::No, "during-no");
}

#[test]
fn flushall_and_del_during_a_rewrite_stay_done() {
    let dir = temp_dir("flushall");
    let (kv, _) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
    for i in 0..50 {
        cmd(&kv, &format!("SET a{i} v"));
    }
    // Whether these land during the rewrite or after it, they count.
    assert_eq!(cmd(&kv, "BGREWRITEAOF"), started());
    cmd(&kv, "FLUSHALL");
    cmd(&kv, "SET b 1");
    cmd(&kv, "SET c 1");
    match cmd(&kv, "BGREWRITEAOF") {
        r if r == started() => {}
        Reply::Error(e) if e.contains("already in progress") => {}
        other => panic!("BGREWRITEAOF: {other:?}"),
    }
    cmd(&kv, "DEL c");
    wait_rewrite_done(&kv);
    drop(kv);
    let (kv, _) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
    assert_eq!(cmd(&kv, "DBSIZE"), Reply::Int(1));
    assert_eq!(cmd(&kv, "GET b"), bulk("1"));
}

#[test]
fn automatic_rewrite_keeps_an_overwritten_key_s_log_small() {
    const MIN: u64 = 4096;
    let dir = temp_dir("auto");
    let opts = Options {
        rewrite_min_size: MIN,
        ..Options::new(Fsync::Always)
    };
    let (kv, _) = Kv::open_with(Threads, &dir, opts).unwrap();
    let log = kv.log().unwrap().clone();
    let t0 = Instant::now();
    let mut i = 0u64;
    // The sweeper checks every 100 ms: write until it has rewritten the
    // log three times.
    while log.rewrite_stats().rewrites < 3 {
        assert!(
            t0.elapsed() < WATCHDOG,
            "no automatic rewrite: {:?}",
            log.rewrite_stats()
        );
        i += 1;
        cmd(&kv, &format!("SET k {i}"));
    }
    wait_rewrite_done(&kv);
    let stats = log.rewrite_stats();
    assert_eq!(stats.failures, 0);
    assert_eq!(stats.current_size, log_len(&dir));
    drop((kv, log));
    let (kv, replay) = Kv::open_with(Threads, &dir, opts).unwrap();
    assert!(replay.records < i, "{} of {i} records", replay.records);
    assert_eq!(cmd(&kv, "GET k"), bulk(&i.to_string()));
}

#[test]
fn info_and_bgrewriteaof_replies() {
    let plain = Kv::new(Threads);
    assert_eq!(
        cmd(&plain, "BGREWRITEAOF"),
        Reply::Error("ERR no append-only log to rewrite".into())
    );
    let Reply::Bulk(Some(info)) = cmd(&plain, "INFO") else {
        panic!()
    };
    assert!(String::from_utf8(info)
        .unwrap()
        .contains("aof_enabled:0\r\n"));

    let dir = temp_dir("info");
    let (kv, _) = Kv::open(Threads, &dir, Fsync::No).unwrap();
    assert!(matches!(cmd(&kv, "bgrewriteaof x"), Reply::Error(e) if e.contains("wrong number")));
    cmd(&kv, "SET a 1");
    cmd(&kv, "SET a 2");
    // A rewrite held open here makes BGREWRITEAOF refuse.
    let held = kv.log().unwrap().begin_rewrite().unwrap();
    assert_eq!(
        cmd(&kv, "BGREWRITEAOF"),
        Reply::Error("ERR Background append only file rewriting already in progress".into())
    );
    drop(held);
    assert_eq!(cmd(&kv, "BGREWRITEAOF"), started());
    wait_rewrite_done(&kv);
    let Reply::Bulk(Some(info)) = cmd(&kv, "INFO") else {
        panic!()
    };
    let info = String::from_utf8(info).unwrap();
    let size = log_len(&dir);
    for want in [
        "aof_enabled:1\r\n".to_string(),
        "aof_rewrite_in_progress:0\r\n".into(),
        "aof_rewrites:1\r\n".into(),
        "aof_last_bgrewrite_status:ok\r\n".into(),
        format!("aof_current_size:{size}\r\n"),
        format!("aof_base_size:{size}\r\n"),
    ] {
        assert!(info.contains(&want), "{want:?} in {info}");
    }
}

#[test]
fn a_failed_rewrite_is_reported_and_the_store_keeps_serving() {
    let dir = temp_dir("failed");
    let (kv, _) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
    cmd(&kv, "SET a 1");
    // A directory where the rewrite file goes: a real error, even as root.
    std::fs::create_dir(dir.join(REWRITE_FILE)).unwrap();
    assert_eq!(cmd(&kv, "BGREWRITEAOF"), started());
    cmd(&kv, "SET b 2");
    wait_rewrite_done(&kv);
    let Reply::Bulk(Some(info)) = cmd(&kv, "INFO") else {
        panic!()
    };
    let info = String::from_utf8(info).unwrap();
    assert!(info.contains("aof_rewrites:0\r\n"), "{info}");
    assert!(info.contains("aof_rewrites_failed:1\r\n"), "{info}");
    assert!(info.contains("aof_last_bgrewrite_status:err\r\n"), "{info}");
    assert_eq!(cmd(&kv, "SET c 3"), Reply::Simple("OK".into()));
    std::fs::remove_dir(dir.join(REWRITE_FILE)).unwrap();
    assert_eq!(
        cmd(&kv, "BGREWRITEAOF"),
        started(),
        "retried by hand at once"
    );
    wait_rewrite_done(&kv);
    assert_eq!(kv.log().unwrap().rewrite_stats().rewrites, 1);
    drop(kv);
    let (kv, _) = Kv::open(Threads, &dir, Fsync::Always).unwrap();
    assert_eq!(
        cmd(&kv, "MGET a b c"),
        Reply::Array(Some(vec![bulk("1"), bulk("2"), bulk("3")]))
    );
}
