//! The servers on handoff vs the same servers on tokio, over loopback.
//!
//! `cargo bench --bench servers` (about 2 minutes; `HANDOFF_BENCH_ROUNDS`
//! and `HANDOFF_BENCH_SECS` change the rounds, default 5, and the seconds
//! per run, default 1.5; `HANDOFF_BENCH_FILTER=kv` runs the scenarios whose
//! name contains `kv`).
//!
//! Scenarios, 50 connections each, 2 worker threads on both runtimes:
//! - plain: HTTP `GET /`; kv 50% GET / 50% SET with `--fsync no`;
//! - mixed: HTTP 90% `GET /` + 10% `GET /block?us=1000` (a 1 ms `nanosleep`
//!   inside the runtime's blocking call); HTTP 50% `GET /` + 50% a 4 KiB
//!   cached file (short `open`/`read`/`close` calls through the runtime's
//!   file API); kv 90% GET + 10% SET with `--fsync always` (an
//!   `fdatasync` per group commit).
//!   handoff runs blocking calls with `handoff::blocking`; tokio once with
//!   `spawn_blocking` and once with `block_in_place`.
//!
//! Fairness (see `examples/support/compare.rs`): same server code, same
//! worker count, a fresh runtime per run, the same closed-loop load
//! generator on its own thread, the runtimes interleaved round by round so
//! drift in machine load hits all of them. Reported: medians over rounds of
//! requests/s (all classes), the p50/p99 latency (of every request in the
//! plain scenarios, of the fast class in the mixed ones; each class's own
//! p50/p99 follows the table), and requests per millisecond of server CPU
//! time (process CPU minus the load generator's, over the measured window). On a machine shared with other
//! work, requests/s also measures how much CPU the kernel hands each
//! runtime (a runtime that spreads work over many briefly-running threads
//! gets more of a contended machine); requests per CPU-ms does not.
#[path = "../examples/support/compare.rs"]
mod compare;
#[path = "../examples/support/handoff_glue.rs"]
mod glue;
#[path = "../servers/tests/support/tokio_glue.rs"]
mod tokio_glue;

use std::time::Duration;

use compare::{drive, http_file_mix, http_mix, kv_mix, median, run, Server, Side};
use handoff_servers::load::Proto;
use handoff_servers::log::Fsync;

const WORKERS: usize = 2;
const CONNECTIONS: usize = 50;

struct Scenario {
    name: &'static str,
    server: Server,
    proto: Proto,
    mix: Vec<handoff_servers::load::Class>,
    sides: Vec<Side>,
    /// Whose latency the table's p50/p99 columns show: every request
    /// (plain scenarios, where no class is "the fast one") or only the
    /// first class (mixed scenarios: the fast requests the issue asks
    /// about, which the blocking ones must not hold up).
    headline: Headline,
}

#[derive(Clone, Copy, PartialEq)]
enum Headline {
    AllRequests,
    FastClass,
}

#[derive(Default)]
struct Samples {
    rps: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    eff: Vec<f64>,
    errors: u64,
    fast_exits: Vec<f64>,
    slow_exits: Vec<f64>,
    retakes: Vec<f64>,
    /// Per class: p50 and p99 (ms) of each run.
    class_p50: Vec<Vec<f64>>,
    class_p99: Vec<Vec<f64>>,
}

/// The `p`-th percentile (ms) of the given classes' latencies together.
fn percentile_ms(r: &handoff_servers::load::Report, classes: &[usize], p: f64) -> f64 {
    let mut all: Vec<u64> = classes
        .iter()
        .flat_map(|&c| r.latencies[c].iter().copied())
        .collect();
    if all.is_empty() {
        return 0.0;
    }
    all.sort_unstable();
    let i = ((p / 100.0) * (all.len() - 1) as f64).round() as usize;
    all[i] as f64 / 1e6
}

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    let rounds: usize = env_or("HANDOFF_BENCH_ROUNDS", 5);
    let secs: f64 = env_or("HANDOFF_BENCH_SECS", 1.5);
    let duration = Duration::from_secs_f64(secs);
    let warmup = Duration::from_millis(300);
    let both = vec![Side::Handoff, Side::TokioSpawnBlocking];
    let all = vec![
        Side::Handoff,
        Side::TokioSpawnBlocking,
        Side::TokioBlockInPlace,
    ];
    let scenarios = [
        Scenario {
            name: "plain: HTTP GET /",
            server: Server::Http,
            proto: Proto::Http,
            mix: http_mix(1, 0, 0),
            sides: both.clone(),
            headline: Headline::AllRequests,
        },
        Scenario {
            name: "plain: kv 50% GET + 50% SET, fsync no",
            server: Server::Kv(Fsync::No),
            proto: Proto::Resp,
            mix: kv_mix(1, 1),
            sides: both,
            headline: Headline::AllRequests,
        },
        Scenario {
            name: "mixed: HTTP 90% GET / + 10% /block?us=1000",
            server: Server::Http,
            proto: Proto::Http,
            mix: http_mix(9, 1, 1000),
            sides: all.clone(),
            headline: Headline::FastClass,
        },
        Scenario {
            name: "mixed: HTTP 50% GET / + 50% GET /file/small.txt (4 KiB, cached)",
            server: Server::Http,
            proto: Proto::Http,
            mix: http_file_mix(1, 1),
            sides: all.clone(),
            headline: Headline::FastClass,
        },
        Scenario {
            name: "mixed: kv 90% GET + 10% SET, fsync always",
            server: Server::Kv(Fsync::Always),
            proto: Proto::Resp,
            mix: kv_mix(9, 1),
            sides: all,
            headline: Headline::FastClass,
        },
    ];
    println!(
        "servers: {CONNECTIONS} connections, {WORKERS} workers each, {rounds} rounds x {secs:.1} s (+{} ms warmup), medians; load generator: 1 thread, closed loop",
        warmup.as_millis()
    );
    let filter = std::env::var("HANDOFF_BENCH_FILTER").unwrap_or_default();
    // The best plain-HTTP throughput of this run (any runtime): a mixed
    // HTTP scenario cannot beat it, since a mixed request costs at least
    // what a fast one does.
    let mut plain_http_rps: Option<f64> = None;
    for sc in scenarios.iter().filter(|s| s.name.contains(&filter)) {
        let mut samples: Vec<Samples> = sc.sides.iter().map(|_| Samples::default()).collect();
        for round in 0..rounds {
            // Alternate the order so neither runtime always goes first.
            let mut order: Vec<usize> = (0..sc.sides.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let mix = sc.mix.clone();
                let out = run(sc.sides[i], sc.server, WORKERS, |addr| {
                    drive(addr, sc.proto, mix, CONNECTIONS, warmup, duration)
                });
                let s = &mut samples[i];
                s.rps.push(out.report.rps());
                let headline: Vec<usize> = match sc.headline {
                    Headline::AllRequests => (0..sc.mix.len()).collect(),
                    Headline::FastClass => vec![0],
                };
                s.p50.push(percentile_ms(&out.report, &headline, 50.0));
                s.p99.push(percentile_ms(&out.report, &headline, 99.0));
                s.class_p50.resize(sc.mix.len(), Vec::new());
                s.class_p99.resize(sc.mix.len(), Vec::new());
                for c in 0..sc.mix.len() {
                    s.class_p50[c].push(percentile_ms(&out.report, &[c], 50.0));
                    s.class_p99[c].push(percentile_ms(&out.report, &[c], 99.0));
                }
                s.eff.push(out.report.per_cpu_ms());
                s.errors += out.report.errors;
                if let Some(m) = out.metrics {
                    s.fast_exits.push(m.blocking_fast_exits as f64);
                    s.slow_exits.push(m.blocking_slow_exits as f64);
                    s.retakes.push(m.retakes as f64);
                }
            }
        }
        println!(
            "\n== {} (p50/p99: {})",
            sc.name,
            match sc.headline {
                Headline::AllRequests => "every request",
                Headline::FastClass => "the fast class",
            }
        );
        println!(
            "{:<24} {:>9} {:>11} {:>11} {:>11} {:>6}   {:>9} {:>9} {:>9}",
            "runtime", "req/s", "p50", "p99", "req/CPU-ms", "errors", "req/s", "p99", "req/CPU"
        );
        let med: Vec<[f64; 4]> = samples
            .iter()
            .map(|s| {
                [
                    median(s.rps.clone()),
                    median(s.p50.clone()),
                    median(s.p99.clone()),
                    median(s.eff.clone()),
                ]
            })
            .collect();
        // The best tokio variant on each measure separately: highest
        // throughput, lowest p99, highest efficiency.
        let tokio: Vec<&[f64; 4]> = sc
            .sides
            .iter()
            .zip(&med)
            .filter(|(s, _)| **s != Side::Handoff)
            .map(|(_, m)| m)
            .collect();
        let best_rps = tokio.iter().map(|m| m[0]).fold(0.0, f64::max);
        let all_rps = med.iter().map(|m| m[0]).fold(0.0, f64::max);
        let is_plain_http = sc.server == Server::Http && sc.mix.len() == 1;
        let best_p99 = tokio.iter().map(|m| m[2]).fold(f64::INFINITY, f64::min);
        let best_eff = tokio.iter().map(|m| m[3]).fold(0.0, f64::max);
        for (i, side) in sc.sides.iter().enumerate() {
            let [rps, p50, p99, eff] = med[i];
            let ratio = if *side == Side::Handoff {
                format!(
                    "{:>8.2}x {:>8.2}x {:>8.2}x",
                    rps / best_rps,
                    p99 / best_p99,
                    eff / best_eff
                )
            } else {
                String::new()
            };
            println!(
                "{:<24} {:>9.0} {:>8.3} ms {:>8.3} ms {:>11.1} {:>6}   {ratio}",
                side.label(),
                rps,
                p50,
                p99,
                eff,
                samples[i].errors
            );
        }
        if sc.mix.len() > 1 {
            for (c, class) in sc.mix.iter().enumerate() {
                let line: Vec<String> = sc
                    .sides
                    .iter()
                    .zip(&samples)
                    .map(|(side, s)| {
                        format!(
                            "{} {:.3} / {:.3} ms",
                            side.label()
                                .split_whitespace()
                                .collect::<Vec<_>>()
                                .join(" "),
                            median(s.class_p50[c].clone()),
                            median(s.class_p99[c].clone())
                        )
                    })
                    .collect();
                println!("  {} p50 / p99: {}", class.name, line.join(", "));
            }
        }
        if is_plain_http {
            plain_http_rps = Some(all_rps);
        } else if let (Server::Http, Some(ceiling)) = (sc.server, plain_http_rps) {
            println!(
                "  ceiling: plain HTTP reached {ceiling:.0} req/s in this run, {:.2}x tokio's best \
                 here: the most any runtime could reach if the slow requests cost no more CPU \
                 (server, load generator and kernel) than a fast one",
                ceiling / best_rps
            );
        }
        let h = &samples[0];
        if !h.fast_exits.is_empty() {
            println!(
                "handoff metrics (median per run): blocking_fast_exits {:.0}, blocking_slow_exits {:.0}, retakes {:.0}",
                median(h.fast_exits.clone()),
                median(h.slow_exits.clone()),
                median(h.retakes.clone())
            );
        }
    }
    println!(
        "\n(last three columns: handoff / the best tokio variant on that measure; req/s and \
         req/CPU higher is better, p99 lower is better. req/CPU-ms: requests per millisecond of \
         the server's own CPU time, the measure least affected by other load on the machine)"
    );
}
