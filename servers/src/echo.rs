//! An echo service: every byte read is written back.
//!
//! Bounded like the other services: a read of at most [`READ_CHUNK`] bytes
//! is written back in full before the next read, so a client that sends but
//! never reads stalls its own connection (and is reaped when idle) instead
//! of growing a buffer.
use std::sync::Arc;

use futures::io::{AsyncReadExt, AsyncWriteExt};

use crate::buf::READ_CHUNK;
use crate::rt::{Activity, Conn, Service};

/// The echo service.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use handoff_servers::{echo::Echo, Activity, Service};
/// let (client, server) = handoff_servers::duplex::pipe(64);
/// let run = Arc::new(Echo).serve(server, Activity::detached());
/// let talk = async move {
///     use futures::io::{AsyncReadExt, AsyncWriteExt};
///     let mut c = client;
///     c.write_all(b"hi").await.unwrap();
///     let mut buf = [0u8; 2];
///     c.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"hi");
/// };
/// futures::executor::block_on(async {
///     futures::future::select(Box::pin(run), Box::pin(talk)).await;
/// });
/// ```
pub struct Echo;

impl Service for Echo {
    async fn serve<S: Conn>(self: Arc<Self>, mut conn: S, activity: Activity) {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            activity.touch();
            if conn.write_all(&buf[..n]).await.is_err() {
                return;
            }
            activity.touch();
        }
    }
}
