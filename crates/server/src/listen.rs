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
//! With a certificate (`HEARTH_TLS_CERT` and `HEARTH_TLS_KEY`, PEM) every
//! connection is TLS (rustls, TLS 1.2 and 1.3); the handshake runs on the
//! connection's own task and must finish within the header timeout.
//!
//! Shutdown drains: from the signal on, requests in flight run to their end
//! while new ones are answered 503 (see [`crate::app`]'s `track` and
//! `/ready`), so a load balancer sends them elsewhere. When the last request
//! in flight ends, or after the drain timeout (then `cancel` ends what still
//! runs), every connection is asked to close and the loop returns.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
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

/// The TLS settings from a certificate chain and a private key in PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    // ring, as reqwest's TLS in this build uses: it compiles with only a C
    // compiler (aws-lc needs more). rustls marks it deprecated because ring
    // has no post-quantum key exchange; classical ECDHE is what it offers.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The address of the client a request came from (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The router as hyper calls it for a connection from `peer`: requests with
/// hyper's body turned into axum's and the client's address attached.
fn connection_service(
    router: Router,
    peer: std::net::SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(ClientAddr(peer));
        router.clone().oneshot(request)
    })
}

/// Serves one connection until it closes, or until `stop` asks it to finish
/// its request in flight.
async fn serve_connection<IO, S>(io: IO, service: S, limits: Limits, mut stop: watch::Receiver<()>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
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
}

/// Serves `router` on `listener` (over TLS with `tls`) until
/// `shutdown.signal` completes, then drains (module docs).
pub(crate) async fn serve<S, C>(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
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
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait, don't spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = connection_service(router.clone(), peer);
        let stop = stop_rx.clone();
        let done = done_rx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, service, limits, stop).await,
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => serve_connection(stream, service, limits, stop).await,
                        Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
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
