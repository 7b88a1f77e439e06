//! handoff: an async runtime for Linux in which a blocking system call is cheap.
//!
//! [`blocking`] runs a blocking call inline on the worker thread that polled
//! the task (Go's `entersyscall`/`exitsyscall` for futures): no thread hop, no
//! `'static` bound. If the call lasts, a monitor thread hands the worker's
//! slot to another thread so the other tasks keep running. See the README for
//! the numbers; each crate's module headers carry the design.
//!
//! ```
//! use std::os::unix::fs::FileExt;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = handoff::Runtime::builder().worker_threads(4).build()?;
//! let path = std::env::temp_dir().join(format!("handoff-doc-{}", std::process::id()));
//! std::fs::write(&path, b"hello")?;
//! let p = path.clone();
//! // A spawned task runs on a worker; block_on's own future runs on this
//! // thread, which holds no slot (a `blocking` call there simply runs inline).
//! let task = rt.spawn(async move {
//!     let data = std::fs::File::open(&p)?;
//!     let mut buf = vec![0u8; 4096];
//!     // Borrows `data` and `buf` from the task: no 'static, no copy, no thread hop.
//!     let n = handoff::blocking(|| data.read_at(&mut buf, 0)).await?;
//!
//!     let mut log = handoff::fs::File::create(&p).await?;
//!     log.write_all(&buf[..n]).await?;
//!     log.sync_data().await?; // fdatasync, through the same bridge
//!
//!     let addrs: Vec<_> = handoff::net::lookup_host("localhost:80").await?.collect(); // getaddrinfo
//!     let sum = handoff::spawn(async move { addrs.len() + n }).await?; // JoinError -> io::Error
//!     Ok::<_, std::io::Error>(sum)
//! });
//! let sum = rt.block_on(task)??;
//! assert!(sum >= 5);
//! let m = rt.metrics(); // blocking_fast_exits, retakes, handoffs, threads_alive, ...
//! assert!(m.blocking_calls >= 3);
//! # std::fs::remove_file(&path)?;
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

// ---- reactor (handoff-reactor): timers, signals, the cooperative budget ----
pub use handoff_reactor::{coop, signal, time};

/// Sockets whose readiness comes from handoff's own epoll reactor, and DNS.
pub mod net {
    // ---- reactor sockets ----
    pub use handoff_reactor::net::*;

    // ---- blocking: dns (handoff-blocking) ----
    pub use handoff_blocking::lookup_host;
}

// ---- executor (handoff-executor) ----
pub use handoff_executor::{
    spawn, spawn_blocking, yield_now, AbortHandle, Builder, EnterGuard, Handle, Id, JoinError,
    JoinHandle, Metrics, Runtime,
};

// ---- blocking bridge (handoff-blocking) ----
pub use handoff_blocking::{
    blocking, blocking_long, call_site_learning, fs, set_call_site_learning, Blocking,
};
