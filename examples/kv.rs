//! A Redis-protocol key-value store on handoff, durable through an
//! append-only log: every write is acknowledged only after `write` +
//! `fdatasync` (inside `handoff::blocking`, group-committed across
//! connections), and a restart replays the log.
//!
//! ```text
//! cargo run --release --example kv -- --dir /tmp/kv --fsync always
//! redis-cli -p 6380 SET greeting hello
//! redis-benchmark -p 6380 -t set,get -c 50 -P 16
//! ```
//!
//! `--fsync everysec` and `--fsync no` behave like Redis's `appendfsync`.
//! The log is compacted (rewritten as one `SET` per live key) when it has
//! doubled since the last compaction and is at least
//! `--aof-rewrite-min-size` (default 64mb), or on `BGREWRITEAOF`.
#[path = "support/handoff_glue.rs"]
mod glue;

use handoff_servers::cli::{parse_or_exit, Spec};
use handoff_servers::kv::Kv;

fn main() {
    let spec = Spec {
        name: "kv",
        about: "a Redis-protocol (RESP2) key-value store on handoff with an fsync'd log",
        default_addr: "127.0.0.1:6380",
        kv: true,
        root: false,
    };
    let o = parse_or_exit(&spec);
    if let Err(e) = std::fs::create_dir_all(&o.dir) {
        eprintln!("kv: cannot create --dir {}: {e}", o.dir.display());
        std::process::exit(1);
    }
    let rt = glue::runtime(o.threads);
    let addr = glue::start(
        &rt,
        &o.addr.to_string(),
        |r| {
            let (kv, replay) = rt
                .block_on(async { Kv::open_with(r, &o.dir, o.log_options()) })
                .unwrap_or_else(|e| {
                    eprintln!("kv: cannot open the log in {}: {e}", o.dir.display());
                    std::process::exit(1);
                });
            eprintln!(
                "kv: replayed {} records from {}{}",
                replay.records,
                kv.log()
                    .map_or_else(String::new, |l| l.path().display().to_string()),
                if replay.torn_bytes > 0 {
                    format!(" (cut a torn tail of {} bytes)", replay.torn_bytes)
                } else {
                    String::new()
                }
            );
            kv
        },
        o.idle_timeout,
    );
    eprintln!("kv: listening on {addr} (fsync {:?})", o.fsync);
    rt.block_on(std::future::pending::<()>());
}
