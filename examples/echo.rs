//! A TCP echo server on handoff.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000
//! nc 127.0.0.1 7000
//! ```
#[path = "support/handoff_glue.rs"]
mod glue;

use std::sync::Arc;

use handoff_servers::cli::{parse_or_exit, Spec};
use handoff_servers::echo::Echo;

fn main() {
    let spec = Spec {
        name: "echo",
        about: "a TCP echo server on handoff",
        default_addr: "127.0.0.1:7000",
        kv: false,
        root: false,
    };
    let o = parse_or_exit(&spec);
    let rt = glue::runtime(o.threads);
    let addr = glue::start(&rt, &o.addr.to_string(), |_| Arc::new(Echo), o.idle_timeout);
    eprintln!("echo: listening on {addr}");
    rt.block_on(std::future::pending::<()>());
}
