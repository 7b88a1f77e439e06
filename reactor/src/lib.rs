//! handoff-reactor: epoll, eventfd, registrations, timers, sockets, signals.
//!
//! The I/O half of handoff, usable alone through [`block_on`].
//!
//! - `driver`: the epoll loop ([`Handle`], [`PollerGuard::turn`]), the
//!   cheap cross-thread [`Handle::wake`] and the minimal [`block_on`].
//! - `state`: the lock-free words (per-descriptor readiness, the wake word).
//! - `io`: registrations and the "try, clear on EAGAIN, wait" loop.
//! - `timer` / [`time`]: the deadline heap and the timer futures.
//! - [`net`]: TCP, UDP, Unix sockets and [`net::Async`] for your own fds.
//! - [`signal`]: `ctrl_c` and signal streams through a `signalfd`.
//! - [`coop`]: the cooperative budget.
//!
//! CONTRACT (used by handoff-executor; keep these names and signatures):
//! - `Handle::new() -> io::Result<Handle>`: a reactor (cheap to clone).
//! - `Handle::current()` / `Handle::try_current()`: the reactor entered on this thread.
//! - `Handle::enter(&self) -> EnterGuard`: make it current on this thread until the guard drops.
//! - `Handle::try_lock_poller(&self) -> Option<PollerGuard>`: the right to block in the reactor;
//!   only one thread at a time holds it.
//! - `PollerGuard::turn(&mut self, timeout: Option<Duration>) -> io::Result<usize>`: wait for
//!   events or timers, at most `timeout` (None = until an event, a timer or `wake`), fire wakers,
//!   return how many wakers were fired. `Some(Duration::ZERO)` never blocks.
//! - `Handle::wake(&self)`: interrupt a thread blocked in `turn` (from any thread).
//! - `coop`: the cooperative budget (the executor wraps every task poll in `coop::budget`).
//! - `block_on(fut)`: a minimal single-threaded executor that turns the reactor while pending.
//!
//! ```
//! use futures::io::{AsyncReadExt, AsyncWriteExt};
//! use handoff_reactor::{block_on, net::{TcpListener, TcpStream}, time};
//! block_on(async {
//!     let l = TcpListener::bind("127.0.0.1:0").await?;
//!     let mut c = TcpStream::connect(l.local_addr()?).await?;
//!     let (mut s, _) = l.accept().await?;
//!     c.write_all(b"ping").await?;
//!     let mut buf = [0; 4];
//!     time::timeout(std::time::Duration::from_secs(5), s.read_exact(&mut buf)).await??;
//!     assert_eq!(&buf, b"ping");
//!     Ok::<(), std::io::Error>(())
//! }).unwrap();
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[macro_use]
mod sys;
pub mod coop;
mod driver;
mod io;
mod loom;
#[cfg(all(test, loom))]
mod loom_register;
pub mod net;
pub mod signal;
mod state;
pub mod time;
mod timer;

pub use driver::{block_on, EnterGuard, Handle, PollerGuard};

/// The executor moves handles, sockets and timers between worker threads.
#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Handle>();
    is::<PollerGuard>();
    is::<net::TcpStream>();
    is::<net::TcpListener>();
    is::<net::UdpSocket>();
    is::<net::UnixStream>();
    is::<net::OwnedReadHalf>();
    is::<net::OwnedWriteHalf>();
    is::<time::Sleep>();
    is::<time::Interval>();
    is::<signal::unix::Signal>();
}
