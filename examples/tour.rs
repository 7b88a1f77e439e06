//! The tour: what handoff does, in about ten seconds.
//!
//! `cargo run --release --example tour`
//!
//! Starts the HTTP server from `examples/http.rs` on an ephemeral port and
//! loads it in-process with two mixes, each on handoff and then on the very
//! same server code on tokio (once with `spawn_blocking`, once with
//! `block_in_place`):
//!
//! 1. short blocking calls: half the requests are `GET /` (fast), half read a
//!    4 KiB file that sits in the page cache (`GET /file/small.txt`: open,
//!    read and close, each a short system call through the runtime's
//!    blocking call). This is where running the call inline pays: no thread
//!    hop per call.
//! 2. long blocking calls: 90% `GET /` + 10% `GET /block?us=1000`, a 1 ms
//!    `nanosleep` inside the runtime's blocking call. Here every call needs a
//!    thread of its own for 1 ms whatever the runtime does.
//!
//! It prints requests/s, the latency of the fast requests, the requests per
//! millisecond of the server's CPU, and what handoff's scheduler did
//! (`rt.metrics()`) in each mix.
#[path = "support/compare.rs"]
mod compare;
#[path = "support/handoff_glue.rs"]
mod glue;
#[path = "../servers/tests/support/tokio_glue.rs"]
mod tokio_glue;

use std::time::Duration;

use compare::{drive, http_file_mix, http_mix, run, Server, Side};
use handoff_servers::load::Proto;

const WORKERS: usize = 2;
const CONNECTIONS: usize = 40;
const BLOCK_US: u64 = 1000;

fn main() {
    let run_for = Duration::from_millis(1300);
    let warmup = Duration::from_millis(300);
    println!(
        "handoff tour: one HTTP server, on handoff and on tokio ({WORKERS} worker threads each), \
         {CONNECTIONS} connections, {:.1} s per run\n",
        run_for.as_secs_f64()
    );
    let mixes = [
        (
            "1. short blocking calls: 50% `GET /` + 50% `GET /file/small.txt` (4 KiB, cached: open/read/close)",
            http_file_mix(1, 1),
        ),
        (
            "2. long blocking calls: 90% `GET /` + 10% `GET /block?us=1000` (a 1 ms nanosleep)",
            http_mix(9, 1, BLOCK_US),
        ),
    ];
    for (title, mix) in mixes {
        println!("{title}");
        println!(
            "  {:<24} {:>9} {:>12} {:>12} {:>11}",
            "runtime", "req/s", "fast p50", "fast p99", "req/CPU-ms"
        );
        let mut metrics = None;
        for side in [
            Side::Handoff,
            Side::TokioSpawnBlocking,
            Side::TokioBlockInPlace,
        ] {
            let mix = mix.clone();
            let out = run(side, Server::Http, WORKERS, |addr| {
                drive(addr, Proto::Http, mix, CONNECTIONS, warmup, run_for)
            });
            let r = &out.report;
            println!(
                "  {:<24} {:>9.0} {:>9.3} ms {:>9.3} ms {:>11.1}{}",
                side.label(),
                r.rps(),
                r.percentile(0, 50.0).as_secs_f64() * 1e3,
                r.percentile(0, 99.0).as_secs_f64() * 1e3,
                r.per_cpu_ms(),
                if r.errors > 0 {
                    format!("  ({} errors!)", r.errors)
                } else {
                    String::new()
                }
            );
            if side == Side::Handoff {
                metrics = out.metrics;
            }
        }
        if let Some(m) = metrics {
            println!(
                "  handoff's scheduler (rt.metrics()): {} blocking calls: {} fast exits (slot kept, no thread hop), \
                 {} retakes, {} handed off at entry, {} idle-slot + {} slow exits; {} threads spawned; {} monitor wakes\n",
                m.blocking_calls,
                m.blocking_fast_exits,
                m.retakes,
                m.long_handoffs,
                m.blocking_idle_slot_exits,
                m.blocking_slow_exits,
                m.threads_spawned,
                m.monitor_wakes
            );
        }
    }
    println!(
        "(req/CPU-ms: requests per millisecond of the server's own CPU time; unlike req/s it does not \
         depend on how busy the rest of the machine is)"
    );
    println!(
        "handoff runs a blocking call inline on the worker that polled the task: a short call costs \
         no thread hop (mix 1). A call that lasts has its worker slot moved to another thread so the \
         fast requests keep flowing; a call site that keeps blocking is handed off at entry (mix 2)."
    );
}
