//! An HTTP/1.1 server on handoff: keep-alive, pipelining, and a route that
//! makes a real blocking system call.
//!
//! ```text
//! cargo run --release --example http -- --addr 127.0.0.1:8080 --root .
//! curl http://127.0.0.1:8080/                  # Hello, world!
//! curl http://127.0.0.1:8080/file/README.md    # a file read through handoff::fs
//! curl 'http://127.0.0.1:8080/block?us=1000'   # nanosleep(1 ms) inside handoff::blocking
//! wrk -c 50 -d 10 http://127.0.0.1:8080/
//! ```
//!
//! The server logic is `handoff_servers::http` (shared with the benchmark,
//! which runs the same code on tokio); this file is the command line and the
//! handoff glue.
#[path = "support/handoff_glue.rs"]
mod glue;

use std::sync::Arc;

use handoff_servers::cli::{parse_or_exit, Spec};
use handoff_servers::http::{Http, HttpConfig};

fn main() {
    let spec = Spec {
        name: "http",
        about: "an HTTP/1.1 server on handoff (/, /file/<name>, /block?us=N)",
        default_addr: "127.0.0.1:8080",
        kv: false,
        root: true,
    };
    let o = parse_or_exit(&spec);
    let rt = glue::runtime(o.threads);
    let root = o.root.clone();
    let addr = glue::start(
        &rt,
        &o.addr.to_string(),
        |r| Arc::new(Http::new(r, HttpConfig::demo(root))),
        o.idle_timeout,
    );
    eprintln!(
        "http: listening on http://{addr}/ (files from {})",
        o.root.display()
    );
    rt.block_on(std::future::pending::<()>());
}
