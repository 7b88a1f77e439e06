//! Where the CPU goes: runs one server scenario on handoff and on tokio
//! (2 workers, 50 connections, 2 s) and prints, per runtime, requests/s,
//! the fast requests' p99, the busiest threads' CPU time and context
//! switches (from `/proc/self/task`), and handoff's full `rt.metrics()`.
//! A diagnostic for the scheduler, not a benchmark (one run, no rounds).
//!
//! ```text
//! cargo run --release --example probe -- hello    # GET / only
//! cargo run --release --example probe -- file     # 50% GET / + 50% GET /file/small.txt
//! cargo run --release --example probe -- http     # 90% GET / + 10% /block?us=1000
//! cargo run --release --example probe -- short    # 50% GET / + 50% /block?us=10
//! cargo run --release --example probe -- kv       # 90% GET + 10% SET, fsync always
//! cargo run --release --example probe -- kvno     # 50% GET + 50% SET, fsync no
//! ```
#[path = "support/compare.rs"]
mod compare;
#[path = "support/handoff_glue.rs"]
mod glue;
#[path = "../servers/tests/support/tokio_glue.rs"]
mod tokio_glue;
use compare::*;
use handoff_servers::load::Proto;
use std::time::Duration;

/// (name, CPU ticks, voluntary switches, involuntary switches) per thread.
fn threads() -> Vec<(String, u64, u64, u64)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc/self/task").unwrap() {
        let p = e.unwrap().path();
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        let status = std::fs::read_to_string(p.join("status")).unwrap_or_default();
        let name = std::fs::read_to_string(p.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        let cpu = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        let vol = status
            .lines()
            .find(|l| l.starts_with("voluntary_ctxt"))
            .map(|l| l.split_whitespace().last().unwrap().parse().unwrap())
            .unwrap_or(0);
        let inv = status
            .lines()
            .find(|l| l.starts_with("nonvoluntary_ctxt"))
            .map(|l| l.split_whitespace().last().unwrap().parse().unwrap())
            .unwrap_or(0);
        v.push((name, cpu, vol, inv));
    }
    v
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or("http".into());
    for side in [Side::Handoff, Side::TokioSpawnBlocking] {
        let (server, proto, mix) = if which == "file" {
            (Server::Http, Proto::Http, http_file_mix(1, 1))
        } else if which == "hello" {
            (Server::Http, Proto::Http, http_mix(1, 0, 0))
        } else if which == "short" {
            (Server::Http, Proto::Http, http_mix(1, 1, 10))
        } else if which == "http" {
            (Server::Http, Proto::Http, http_mix(9, 1, 1000))
        } else if which == "kvno" {
            (
                Server::Kv(handoff_servers::log::Fsync::No),
                Proto::Resp,
                kv_mix(1, 1),
            )
        } else {
            (
                Server::Kv(handoff_servers::log::Fsync::Always),
                Proto::Resp,
                kv_mix(9, 1),
            )
        };
        let out = run(side, server, 2, |addr| {
            let r = drive(
                addr,
                proto,
                mix,
                50,
                Duration::from_millis(300),
                Duration::from_secs(2),
            );
            let mut t = threads();
            t.sort_by_key(|x| std::cmp::Reverse(x.1));
            let total: u64 = t.iter().map(|x| x.1).sum();
            println!(
                "{side:?}: rps {:.0} p99 {:?} threads {} total cpu ticks {total}",
                r.rps(),
                r.percentile(0, 99.0),
                t.len()
            );
            // Where the tail sits: a cluster near 10 ms would be the
            // monitor's "retake after 10 ms regardless" rule.
            let buckets = [0.1, 0.5, 1.0, 2.0, 5.0, 9.0, 11.0, 20.0, f64::INFINITY];
            let mut counts = vec![0usize; buckets.len()];
            for &ns in &r.latencies[0] {
                let ms = ns as f64 / 1e6;
                counts[buckets.iter().position(|&b| ms < b).unwrap()] += 1;
            }
            println!(
                "   fast-class latency histogram (ms upper bound: count): {}; p99.9 {:?}, max {:?}",
                buckets
                    .iter()
                    .zip(&counts)
                    .map(|(b, c)| format!("<{b}: {c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.percentile(0, 99.9),
                r.percentile(0, 100.0)
            );
            for x in t.iter().take(8) {
                println!(
                    "   {:<20} cpu {:>5} vol {:>8} invol {:>6}",
                    x.0, x.1, x.2, x.3
                );
            }
            let vol: u64 = t.iter().map(|x| x.2).sum();
            println!("   all threads: voluntary switches {vol}");
            r
        });
        if let Some(m) = out.metrics {
            println!("   {m:?}");
        }
    }
}
