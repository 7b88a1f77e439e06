//! A static file server on handoff: every path below `--root` is served
//! through `handoff::fs` (a `read` inside `handoff::blocking`, no thread
//! hop); `/dir/` serves `dir/index.html`; `..` is refused.
//!
//! ```text
//! cargo run --release --example files -- --root ./target/doc --addr 127.0.0.1:8000
//! curl http://127.0.0.1:8000/handoff/index.html
//! ```
#[path = "support/handoff_glue.rs"]
mod glue;

use std::sync::Arc;

use handoff_servers::cli::{parse_or_exit, Spec};
use handoff_servers::http::{Http, HttpConfig};

fn main() {
    let spec = Spec {
        name: "files",
        about: "a static file server on handoff",
        default_addr: "127.0.0.1:8000",
        kv: false,
        root: true,
    };
    let o = parse_or_exit(&spec);
    if !o.root.is_dir() {
        eprintln!("files: --root {} is not a directory", o.root.display());
        std::process::exit(2);
    }
    let rt = glue::runtime(o.threads);
    let root = o.root.clone();
    let addr = glue::start(
        &rt,
        &o.addr.to_string(),
        |r| Arc::new(Http::new(r, HttpConfig::static_files(root))),
        o.idle_timeout,
    );
    eprintln!("files: serving {} on http://{addr}/", o.root.display());
    rt.block_on(std::future::pending::<()>());
}
