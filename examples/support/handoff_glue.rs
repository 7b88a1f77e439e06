//! handoff glue for handoff-servers: the runtime seam ([`HandoffRt`]), the
//! listener, and a `start` helper. Included with `#[path]` by the examples,
//! the root tests and the servers benchmark, so all of them run the servers
//! the same way.
//!
//! `blocking` is `handoff::blocking`: the call runs inline on the worker that
//! polled the task, no thread hop; a long call gets its slot retaken by the
//! monitor so the other connections keep being served.
#![allow(dead_code)]
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use handoff_servers::{Listener, Rt, Service};

/// handoff as a [`Rt`].
#[derive(Clone)]
pub struct HandoffRt {
    pub handle: handoff::Handle,
}

impl Rt for HandoffRt {
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        // Detached: the JoinHandle is dropped.
        drop(self.handle.spawn(fut));
    }

    fn blocking<F, R>(&self, f: F) -> impl Future<Output = R> + Send
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        handoff::blocking(f)
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        handoff::time::sleep(d)
    }

    // Own `blocking` lines, so that opening and reading files learn apart
    // from each other and from the `/block` route (call-site learning).
    fn open_file(
        &self,
        path: PathBuf,
        first: usize,
    ) -> impl Future<Output = io::Result<handoff_servers::rt::OpenedFile>> + Send {
        handoff::blocking(move || handoff_servers::rt::OpenedFile::open(&path, first))
    }

    fn read_file_at(
        &self,
        file: std::sync::Arc<std::fs::File>,
        offset: u64,
        max: usize,
    ) -> impl Future<Output = io::Result<Vec<u8>>> + Send {
        handoff::blocking(move || handoff_servers::rt::read_at(&file, offset, max))
    }
}

/// A handoff listener as a [`Listener`]; accepted sockets get `TCP_NODELAY`
/// (responses are written whole, so Nagle only adds delay).
pub struct HandoffListener(pub handoff::net::TcpListener);

impl Listener for HandoffListener {
    type Conn = handoff::net::TcpStream;
    async fn accept(&mut self) -> io::Result<handoff::net::TcpStream> {
        let (s, _) = self.0.accept().await?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

/// A runtime with `threads` worker slots (default: one per core).
pub fn runtime(threads: Option<usize>) -> handoff::Runtime {
    let mut b = handoff::Runtime::builder();
    if let Some(n) = threads {
        b.worker_threads(n);
    }
    b.build().expect("build the handoff runtime")
}

/// Binds `addr` and serves `svc` on `rt`; returns the bound address.
///
/// # Panics
///
/// If the address cannot be bound.
pub fn start<S: Service>(
    rt: &handoff::Runtime,
    addr: &str,
    svc: impl FnOnce(HandoffRt) -> Arc<S>,
    idle: Duration,
) -> SocketAddr {
    let hrt = HandoffRt {
        handle: rt.handle().clone(),
    };
    let listener = rt
        .block_on(handoff::net::TcpListener::bind(addr))
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    let local = listener.local_addr().expect("local address");
    let svc = svc(hrt.clone());
    drop(rt.spawn(handoff_servers::serve(
        hrt,
        HandoffListener(listener),
        svc,
        idle,
    )));
    local
}
