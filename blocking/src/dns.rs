//! Name resolution: `getaddrinfo` (through std's `ToSocketAddrs`) as one
//! [`blocking`](crate::blocking) call.
//!
//! `getaddrinfo` has no asynchronous form in glibc worth using (`getaddrinfo_a`
//! runs a thread per request), so Go calls it through cgo inside
//! `entersyscall`, and tokio ships it to a pool thread. Here it runs inline on
//! the worker; a slow lookup (a network round trip) has its slot retaken by the
//! monitor after `retake_after`, so other tasks keep running meanwhile.
//! Literal addresses ("127.0.0.1:80") never reach `getaddrinfo`: std parses them.
//!
//! [`lookup_host`] is a `#[track_caller]` function returning `impl Future`
//! rather than an `async fn` (which cannot be `#[track_caller]`), so each line
//! that calls it is a learning site of its own (`crate::learn`): lookups of a
//! name in /etc/hosts on one line do not learn from network lookups on another.
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::Location;

use crate::call::blocking_at;

/// Resolves `host` to socket addresses, like `std::net::ToSocketAddrs` but
/// as a handoff system call.
///
/// `host` is anything std can resolve: `"host:port"`, `("host", port)`,
/// `"[::1]:443"`, a `SocketAddr`, ...
///
/// # Errors
///
/// Whatever resolution returns: an invalid `"host:port"` string, or a name
/// `getaddrinfo` cannot resolve.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// let addrs: Vec<_> = handoff_blocking::lookup_host("localhost:80").await?.collect();
/// assert!(addrs.iter().all(|a| a.port() == 80 && a.ip().is_loopback()));
/// let addrs: Vec<_> = handoff_blocking::lookup_host(("127.0.0.1", 8080)).await?.collect();
/// assert_eq!(addrs, ["127.0.0.1:8080".parse().unwrap()]);
/// # std::io::Result::Ok(()) }).unwrap();
/// ```
#[track_caller]
pub fn lookup_host<T>(host: T) -> impl Future<Output = io::Result<impl Iterator<Item = SocketAddr>>>
where
    T: ToSocketAddrs,
{
    // The caller's line is the learning site (`crate::learn`): a lookup of a
    // name in /etc/hosts and one that goes to the network learn apart.
    let site = Location::caller();
    async move {
        // Move `host` in and collect inside the call, so the future is `Send`
        // whenever `T` is, whatever `T::Iter` is.
        let addrs = blocking_at(site, move || {
            host.to_socket_addrs().map(Iterator::collect::<Vec<_>>)
        });
        Ok(addrs.await?.into_iter())
    }
}
