//! The tour: what handoff does, in about ten seconds.
//!
//! `cargo run --release --example tour`
//!
//! Starts the HTTP server from `examples/http.rs` on an ephemeral port and
//! loads it in-process: most requests are fast (`GET /`), one in ten makes
//! a 1 ms blocking system call (`GET /block?us=1000`, a `nanosleep` inside
//! the runtime's blocking call). Then the very same server code runs on
//! tokio, once with `spawn_blocking` and once with `block_in_place`, under
//! the same load. It prints requests/s and the latency of the fast
//! requests for each, and what handoff's scheduler did (`rt.metrics()`).
#[path = "support/compare.rs"]
mod compare;
#[path = "support/handoff_glue.rs"]
mod glue;
#[path = "../servers/tests/support/tokio_glue.rs"]
mod tokio_glue;

use std::time::Duration;

use compare::{drive, http_mix, run, Server, Side};
use handoff_servers::load::Proto;

const WORKERS: usize = 2;
const CONNECTIONS: usize = 40;
const BLOCK_US: u64 = 1000;

fn main() {
    let run_for = Duration::from_millis(2000);
    let warmup = Duration::from_millis(300);
    println!("handoff tour: one HTTP server, run on handoff and on tokio ({WORKERS} worker threads each)");
    println!(
        "load: {CONNECTIONS} connections, 90% `GET /` (fast) + 10% `GET /block?us={BLOCK_US}` \
         (a {} ms nanosleep inside the runtime's blocking call), {:.0} s per runtime\n",
        BLOCK_US as f64 / 1000.0,
        run_for.as_secs_f64()
    );
    println!(
        "{:<26} {:>9} {:>12} {:>12} {:>13} {:>11}",
        "runtime", "req/s", "fast p50", "fast p99", "/block served", "req/CPU-ms"
    );
    let mut metrics = None;
    for side in [
        Side::Handoff,
        Side::TokioSpawnBlocking,
        Side::TokioBlockInPlace,
    ] {
        let out = run(side, Server::Http, WORKERS, |addr| {
            drive(
                addr,
                Proto::Http,
                http_mix(9, 1, BLOCK_US),
                CONNECTIONS,
                warmup,
                run_for,
            )
        });
        let r = &out.report;
        println!(
            "{:<26} {:>9.0} {:>9.3} ms {:>9.3} ms {:>13} {:>11.1}{}",
            side.label(),
            r.rps(),
            r.percentile(0, 50.0).as_secs_f64() * 1e3,
            r.percentile(0, 99.0).as_secs_f64() * 1e3,
            r.count(1),
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
    println!(
        "(req/CPU-ms: requests per millisecond of the server's own CPU time; unlike req/s it \
         does not depend on how busy the rest of the machine is)"
    );
    if let Some(m) = metrics {
        println!("\nwhat handoff's scheduler did during its run (rt.metrics()):");
        println!("  blocking calls              {:>8}", m.blocking_calls);
        println!(
            "  fast exits                  {:>8}   call returned, its worker slot was still free: kept going, no thread hop",
            m.blocking_fast_exits
        );
        println!(
            "  retakes                     {:>8}   a call lasted > 20 us: the monitor gave its slot to another thread",
            m.retakes
        );
        println!(
            "  idle-slot / slow exits      {:>3} / {:<4}  after a retake: took a free slot, or requeued the task and parked",
            m.blocking_idle_slot_exits, m.blocking_slow_exits
        );
        println!(
            "  threads spawned / alive     {:>3} / {:<4}  slots stay at {WORKERS}; threads are what sit in the kernel",
            m.threads_spawned, m.threads_alive
        );
        println!(
            "  monitor wakes               {:>8}   the monitor thread checking for calls to retake",
            m.monitor_wakes
        );
    }
    println!(
        "\nhandoff runs a blocking call inline on the worker that polled the task (no hop to a pool); \
         if the call lasts, the worker's slot moves to another thread so the fast requests keep flowing."
    );
}
