//! The accept loop: each TCP connection served as HTTP/1.1 by hyper, with the
//! limits a server reachable by hostile clients needs. (axum's own `serve`
//! sets no timer, so hyper's header timeout never fires there: a client that
//! sends half a header held its connection for as long as it liked.)
//!
//! - a request's headers must arrive within [`Limits::header_timeout`], and a
//!   keep-alive connection waiting for its next request is closed after the
//!   same time (hyper starts that clock whenever it waits for a head);
//! - a request body must keep arriving: [`Limits::body_timeout`] between
//!   chunks (tower-http's `RequestBodyTimeoutLayer`, applied in [`crate::app`]);
//! - at most [`Limits::max_connections`] connections are served at once; the
//!   next one waits in the listen backlog until one closes.
//!
//! On shutdown the loop stops accepting, asks every connection to finish its
//! request in flight and close, and returns when all have.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

/// Connection limits (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a request's complete headers, and for the next
    /// request on an idle keep-alive connection.
    pub header_timeout: Duration,
    /// Longest pause between two chunks of a request body.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Dropping `stop_rx`'s last holder tells connections to finish; each
    // connection holds a `done_rx`, whose last drop ends the drain.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(|req: Request<Incoming>| req.map(axum::body::Body::new));
        let service = TowerToHyperService::new(service.map_err(|e: Infallible| match e {}));
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!("connection ended: {e}");
                    }
                }
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(permit);
            drop(done);
        });
    }
    drop(listener);
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
}
