//! The same servers on tokio, for comparing by hand with `wrk` or
//! `redis-benchmark` (the handoff versions are the root package's examples).
//!
//! ```text
//! cargo run --release -p handoff-servers --example on_tokio -- http --addr 127.0.0.1:8081
//! cargo run --release -p handoff-servers --example on_tokio -- kv --fsync always --dir /tmp
//! ```
//! Add `--block-in-place` to run blocking calls with `block_in_place`
//! instead of `spawn_blocking`.
#[path = "../tests/support/tokio_glue.rs"]
mod tokio_glue;

use std::sync::Arc;

use handoff_servers::cli::{parse_or_exit_from, Spec};
use handoff_servers::http::{Http, HttpConfig};
use handoff_servers::kv::Kv;
use tokio_glue::{runtime, start, BlockMode};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let which = if args.is_empty() {
        String::new()
    } else {
        args.remove(0)
    };
    let mode = match args.iter().position(|a| a == "--block-in-place") {
        Some(i) => {
            args.remove(i);
            BlockMode::BlockInPlace
        }
        None => BlockMode::SpawnBlocking,
    };
    let spec = match which.as_str() {
        "http" => Spec {
            name: "on_tokio http",
            about: "the demo HTTP server on tokio",
            default_addr: "127.0.0.1:8081",
            kv: false,
            root: true,
        },
        "kv" => Spec {
            name: "on_tokio kv",
            about: "the kv store on tokio",
            default_addr: "127.0.0.1:6381",
            kv: true,
            root: false,
        },
        _ => {
            eprintln!(
                "usage: on_tokio http|kv [--block-in-place] [OPTIONS] (--help for the options)"
            );
            std::process::exit(2);
        }
    };
    let o = parse_or_exit_from(&spec, args);
    let rt = runtime(o.threads.unwrap_or(2));
    let addr = o.addr.to_string();
    let bound = if which == "http" {
        let root = o.root.clone();
        start(
            &rt,
            mode,
            &addr,
            |r| Arc::new(Http::new(r, HttpConfig::demo(root))),
            o.idle_timeout,
        )
    } else {
        start(
            &rt,
            mode,
            &addr,
            |r| {
                let (kv, replay) = rt
                    .block_on(async { Kv::open_with(r, &o.dir, o.log_options()) })
                    .expect("open the log");
                eprintln!(
                    "replayed {} records ({} torn bytes cut)",
                    replay.records, replay.torn_bytes
                );
                kv
            },
            o.idle_timeout,
        )
    };
    eprintln!("{} listening on {bound} ({mode:?})", spec.name);
    loop {
        std::thread::park();
    }
}
