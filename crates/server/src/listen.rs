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
//! Shutdown drains: from the signal on, requests in flight run to their end
//! while new ones are answered 503 (see [`crate::app`]'s `track` and
//! `/ready`), so a load balancer sends them elsewhere. When the last request
//! in flight ends, or after the drain timeout (then `cancel` ends what still
//! runs), every connection is asked to close and the loop returns.

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

/// Requests in flight: counted from when a request enters the router until
/// its response body has been sent (or dropped), so that a drain waits for
/// streams to end.
#[derive(Debug)]
pub struct InFlight {
    count: watch::Sender<usize>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            count: watch::Sender::new(0),
        }
    }
}

impl InFlight {
    /// Counts one request until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.send_modify(|n| *n += 1);
        InFlightGuard(self.clone())
    }

    /// Completes when no request is in flight.
    async fn idle(&self) {
        let mut rx = self.count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// One request in flight (see [`InFlight::enter`]).
#[derive(Debug)]
pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.count.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// How the server stops: the signal, the drain and what ends it.
pub(crate) struct Shutdown<S, C> {
    /// Completes when shutdown begins (after marking the server draining).
    pub signal: S,
    /// The requests the drain waits for.
    pub in_flight: Arc<InFlight>,
    /// The longest drain.
    pub drain: Duration,
    /// Cancels what still runs when the drain times out.
    pub cancel: C,
}

/// Serves `router` on `listener` until `shutdown.signal` completes, then
/// drains (module docs).
pub(crate) async fn serve<S, C>(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: Shutdown<S, C>,
) where
    S: Future<Output = ()> + Send + 'static,
    C: FnOnce(),
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Dropping `stop_tx` tells connections to finish; each connection holds
    // a `done_rx`, whose last drop ends the wait for them.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    let mut signal = std::pin::pin!(shutdown.signal);
    let mut signalled = false;
    // Armed when the signal comes.
    let drain_end = tokio::time::sleep(Duration::from_secs(1 << 30));
    let mut drain_end = std::pin::pin!(drain_end);
    let mut cancel = Some(shutdown.cancel);
    // A connection slot, then a connection (both cancel-safe: a slot taken
    // by a future another branch wins over is given back).
    let accept = || async {
        let permit = permits.clone().acquire_owned().await;
        (permit, listener.accept().await)
    };
    loop {
        let (permit, accepted) = tokio::select! {
            () = &mut signal, if !signalled => {
                signalled = true;
                drain_end.as_mut().reset(tokio::time::Instant::now() + shutdown.drain);
                continue;
            }
            () = shutdown.in_flight.idle(), if signalled => break,
            () = &mut drain_end, if signalled => {
                tracing::warn!(
                    "requests still running after the drain timeout of {:?}; cancelling them",
                    shutdown.drain
                );
                if let Some(cancel) = cancel.take() {
                    cancel();
                }
                break;
            }
            next = accept() => next,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, don't spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
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
    // Idle connections close at once, busy ones after their response; one
    // whose client stops reading is dropped with the runtime.
    let _ = tokio::time::timeout(Duration::from_secs(10), done_tx.closed()).await;
}
