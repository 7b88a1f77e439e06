//! tokio glue for handoff-servers: the comparison baseline. Included by the
//! servers crate's tests and by `benches/servers.rs` (with `#[path]`), so
//! both run the very same adapter.
//!
//! tokio's `TcpStream` speaks `tokio::io`, the servers speak `futures::io`:
//! [`TokioConn`] forwards one to the other (what `tokio-util`'s `compat`
//! does, which is not a dependency here).
#![allow(dead_code)]
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use handoff_servers::{Listener, Rt};

/// How tokio runs a blocking call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockMode {
    /// `spawn_blocking`: hop to the blocking pool and back.
    SpawnBlocking,
    /// `block_in_place`: run here, after handing this worker's other tasks
    /// to a new thread.
    BlockInPlace,
}

/// A tokio runtime handle as a [`Rt`].
#[derive(Clone)]
pub struct TokioRt {
    pub handle: tokio::runtime::Handle,
    pub mode: BlockMode,
}

impl Rt for TokioRt {
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, fut: F) {
        self.handle.spawn(fut);
    }

    fn blocking<F, R>(&self, f: F) -> impl Future<Output = R> + Send
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (mode, handle) = (self.mode, self.handle.clone());
        async move {
            match mode {
                BlockMode::SpawnBlocking => match handle.spawn_blocking(f).await {
                    Ok(r) => r,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    // The runtime is shutting down and dropped the call; so
                    // is this task: never complete.
                    Err(_) => std::future::pending().await,
                },
                BlockMode::BlockInPlace => tokio::task::block_in_place(f),
            }
        }
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
}

/// A tokio `TcpStream` as a `futures::io` stream.
pub struct TokioConn(pub tokio::net::TcpStream);

impl futures::io::AsyncRead for TokioConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut rb = tokio::io::ReadBuf::new(buf);
        match tokio::io::AsyncRead::poll_read(Pin::new(&mut self.0), cx, &mut rb) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures::io::AsyncWrite for TokioConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
    }
}

/// A tokio listener as a [`Listener`]; accepted sockets get `TCP_NODELAY`.
pub struct TokioListener(pub tokio::net::TcpListener);

impl Listener for TokioListener {
    type Conn = TokioConn;
    async fn accept(&mut self) -> io::Result<TokioConn> {
        let (s, _) = self.0.accept().await?;
        s.set_nodelay(true)?;
        Ok(TokioConn(s))
    }
}

/// A multi-thread tokio runtime with `workers` workers.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Binds `addr` on `rt` and serves `svc` there; returns the bound address.
pub fn start<S: handoff_servers::Service>(
    rt: &tokio::runtime::Runtime,
    mode: BlockMode,
    addr: &str,
    svc: impl FnOnce(TokioRt) -> std::sync::Arc<S>,
    idle: Duration,
) -> std::net::SocketAddr {
    let trt = TokioRt {
        handle: rt.handle().clone(),
        mode,
    };
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .expect("bind");
    let local = listener.local_addr().unwrap();
    let svc = svc(trt.clone());
    rt.spawn(handoff_servers::serve(
        trt,
        TokioListener(listener),
        svc,
        idle,
    ));
    local
}
