//! Sockets whose readiness comes from this reactor: TCP, UDP, Unix stream
//! sockets, and [`Async`] for descriptors you bring.
//!
//! Every socket is registered once, edge-triggered, with the reactor current
//! on the thread that creates it, and may then be used from any thread (the
//! executor moves tasks between workers). Dropping a socket deregisters it
//! and drops the wakers it holds. Reads and writes spend the cooperative
//! budget (`coop`), so an always-ready socket cannot starve other tasks.
mod async_fd;
mod stream;
pub mod tcp;
mod udp;
pub mod unix;

pub use async_fd::Async;
pub use tcp::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};
