//! The servers on tokio, driven over real sockets (scenarios shared with the
//! root package's tests on handoff).
mod support {
    pub mod scenarios;
    pub mod tokio_glue;
}
use std::sync::Arc;
use std::time::Duration;

use handoff_servers::http::{Http, HttpConfig};
use handoff_servers::kv::Kv;
use handoff_servers::log::Fsync;
use support::scenarios as sc;
use support::tokio_glue::{runtime, start, BlockMode};

const IDLE: Duration = Duration::from_secs(60);

fn http(
    mode: BlockMode,
    idle: Duration,
) -> (
    tokio::runtime::Runtime,
    std::net::SocketAddr,
    std::path::PathBuf,
) {
    let rt = runtime(2);
    let files = sc::temp_dir(&format!("files-{mode:?}-{}", idle.as_millis()));
    let f = files.clone();
    let addr = start(
        &rt,
        mode,
        "127.0.0.1:0",
        move |r| Arc::new(Http::new(r, HttpConfig::demo(f))),
        idle,
    );
    (rt, addr, files)
}

#[test]
fn http_routes_and_pipelining() {
    for mode in [BlockMode::SpawnBlocking, BlockMode::BlockInPlace] {
        let (_rt, addr, files) = http(mode, IDLE);
        sc::http_routes(addr, &files);
        sc::http_pipelining(addr);
    }
}

#[test]
fn http_bad_input_and_500_connections() {
    let (_rt, addr, _) = http(BlockMode::SpawnBlocking, IDLE);
    sc::http_bad_input(addr);
    sc::concurrent_http(addr, 500);
}

#[test]
fn http_idle_and_stalled_reader() {
    let (_rt, addr, _) = http(BlockMode::SpawnBlocking, Duration::from_millis(300));
    sc::idle_is_closed(addr);
    sc::slowloris_is_closed(addr);
    let (_rt2, addr, _) = http(BlockMode::SpawnBlocking, IDLE);
    sc::stalled_reader_is_bounded(addr, b"GET / HTTP/1.1\r\n\r\n");
}

fn kv(fsync: Fsync, name: &str) -> (tokio::runtime::Runtime, std::net::SocketAddr) {
    let rt = runtime(2);
    let dir = sc::temp_dir(name);
    let addr = start(
        &rt,
        BlockMode::SpawnBlocking,
        "127.0.0.1:0",
        |r| rt.block_on(async { Kv::open(r, &dir, fsync).unwrap().0 }),
        IDLE,
    );
    (rt, addr)
}

#[test]
fn kv_commands_pipelining_bad_input() {
    for (fsync, name) in [
        (Fsync::Always, "kv-always"),
        (Fsync::EverySec, "kv-everysec"),
        (Fsync::No, "kv-no"),
    ] {
        let (_rt, addr) = kv(fsync, name);
        sc::kv_commands(addr);
        sc::kv_pipelining(addr);
        sc::kv_bad_input(addr);
    }
}

#[test]
fn kv_500_connections_and_stalled_reader() {
    let (_rt, addr) = kv(Fsync::Always, "kv-500");
    sc::concurrent_kv(addr, 500);
    sc::stalled_reader_is_bounded(addr, b"PING\r\n");
}

/// Re-exec entry: serves kv with `--fsync always` on `$KV_CHILD_DIR` until
/// killed. Without the variable (a normal test run) it only checks that the
/// store opens on an empty directory.
#[test]
fn kv_crash_child() {
    let dir = match std::env::var_os("KV_CHILD_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            let d = sc::temp_dir("crash-child-dry");
            let rt = runtime(1);
            let r = support::tokio_glue::TokioRt {
                handle: rt.handle().clone(),
                mode: BlockMode::SpawnBlocking,
            };
            let (_, replay) = rt
                .block_on(async { Kv::open(r, &d, Fsync::Always) })
                .unwrap();
            assert_eq!(replay.records, 0);
            return;
        }
    };
    let rt = runtime(2);
    let mut info = None;
    let addr = start(
        &rt,
        BlockMode::SpawnBlocking,
        "127.0.0.1:0",
        |r| {
            let (kv, replay) = rt
                .block_on(async { Kv::open(r, &dir, Fsync::Always) })
                .unwrap();
            info = Some(replay);
            kv
        },
        IDLE,
    );
    let replay = info.unwrap();
    sc::announce(addr, replay.records, replay.torn_bytes);
    loop {
        std::thread::park();
    }
}

#[test]
fn kv_survives_sigkill_mid_write() {
    sc::kv_crash("kv_crash_child");
}
