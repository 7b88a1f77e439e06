//! The kv store on handoff, over real sockets: every command, pipelining,
//! malformed input and limits, 500 connections, a client that never reads,
//! every fsync policy, and the crash test (a child process SIGKILLed
//! mid-write, while its log is rewritten back to back, keeps every
//! acknowledged write). The same scenarios run on
//! tokio in `servers/tests/tokio_servers.rs`.
#[path = "../examples/support/handoff_glue.rs"]
mod glue;
#[path = "../servers/tests/support/scenarios.rs"]
mod sc;

use std::time::Duration;

use handoff_servers::kv::Kv;
use handoff_servers::log::Fsync;

const IDLE: Duration = Duration::from_secs(60);

fn kv(fsync: Fsync, name: &str) -> (handoff::Runtime, std::net::SocketAddr) {
    let rt = glue::runtime(Some(2));
    let dir = sc::temp_dir(name);
    let addr = glue::start(
        &rt,
        "127.0.0.1:0",
        |r| rt.block_on(async { Kv::open(r, &dir, fsync) }).unwrap().0,
        IDLE,
    );
    (rt, addr)
}

#[test]
fn kv_commands_pipelining_bad_input_each_fsync_policy() {
    for (fsync, name) in [
        (Fsync::Always, "always"),
        (Fsync::EverySec, "everysec"),
        (Fsync::No, "no"),
    ] {
        let (_rt, addr) = kv(fsync, name);
        sc::kv_commands(addr);
        sc::kv_pipelining(addr);
        sc::kv_bad_input(addr);
    }
}

#[test]
fn kv_500_connections() {
    let (_rt, addr) = kv(Fsync::Always, "500");
    sc::concurrent_kv(addr, 500);
}

#[test]
fn kv_client_that_never_reads_is_bounded() {
    let (_rt, addr) = kv(Fsync::No, "stalled");
    sc::stalled_reader_is_bounded(addr, b"PING\r\n");
}

/// Re-exec entry: serves kv with `--fsync always` on `$KV_CHILD_DIR` until
/// killed. Without the variable (a normal test run) it checks that the
/// store opens on an empty directory with nothing to replay.
#[test]
fn kv_crash_child() {
    let Some(dir) = std::env::var_os("KV_CHILD_DIR").map(std::path::PathBuf::from) else {
        let d = sc::temp_dir("crash-child-dry");
        let rt = glue::runtime(Some(1));
        let r = glue::HandoffRt {
            handle: rt.handle().clone(),
        };
        let (_, replay) = rt
            .block_on(async { Kv::open(r, &d, Fsync::Always) })
            .unwrap();
        assert_eq!((replay.records, replay.torn_bytes), (0, 0));
        return;
    };
    let rt = glue::runtime(Some(2));
    let mut info = None;
    let addr = glue::start(
        &rt,
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
