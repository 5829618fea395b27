//! Connections: the accept loop and the limits that keep slow or hostile clients from holding
//! the server (Go's `http.Server` timeouts, which Prometheus sets, are the model).
//!
//! - At most `max_connections` are open; further ones wait in the kernel's backlog until one
//!   closes (as Prometheus's `--web.max-connections`).
//! - A client has `read_header_timeout` to send a request's head (and the TLS handshake), from
//!   connecting or from the first byte of each later request (Go's `ReadHeaderTimeout`).
//! - A keep-alive connection with no request in flight and no bytes moving for `idle_timeout`
//!   is closed: between requests, and while a response waits for a client that does not read
//!   it (Go's `IdleTimeout`). The two are independent: an idle keep-alive connection is not
//!   closed by the header timeout.
//!
//! hyper's own header timeout runs while a keep-alive connection waits for its next request,
//! which would make the idle timeout the header timeout, so both are kept here, by a watchdog
//! per connection that sees the bytes move ([`Watched`]) and the requests begin and end.
//! - A request's body must arrive within `read_body_timeout` ([`BodyDeadline`]).
//! - On shutdown the listener stops, idle connections close, requests in flight finish (for at
//!   most [`GRACE`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long requests in flight may take to finish once the server stops.
pub(crate) const GRACE: Duration = Duration::from_secs(10);

/// The largest request head (request line and headers) read, as Go's `DefaultMaxHeaderBytes`:
/// a long PromQL query in a GET's query string fits.
const MAX_HEAD_BYTES: usize = 1 << 20;

/// The connection limits (`server:` in `vigil.yaml`).
#[derive(Debug, Clone)]
pub(crate) struct ConnLimits {
    pub(crate) read_header_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// The TLS settings new connections take; replaced on reload (a new certificate, key or client
/// CA applies to the connections that follow).
pub(crate) type TlsSettings = Arc<parking_lot::RwLock<Arc<rustls::ServerConfig>>>;

/// Serves `router` on `listener` until `shutdown` completes, then lets the connections finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    tls: Option<TlsSettings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopped) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let tls = tls.as_ref().map(|t| tokio_rustls::TlsAcceptor::from(t.read().clone()));
        let (router, limits, stopped) = (router.clone(), limits.clone(), stopped.clone());
        conns.spawn(async move {
            let _ = stream.set_nodelay(true);
            // The first request's head is awaited from here, the TLS handshake included.
            let activity = Arc::new(Activity::new());
            match tls {
                None => connection(stream, activity, router, &limits, stopped).await,
                Some(tls) => match tokio::time::timeout(limits.read_header_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection(stream, activity, router, &limits, stopped).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                },
            }
            drop(slot);
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = stop.send(true);
    let finished = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(GRACE, finished).await.is_err() {
        tracing::warn!(left = conns.len(), "requests still in flight at shutdown; closing them");
        conns.abort_all();
    }
}

/// Serves one connection until it closes, is idle too long, or the server stops.
async fn connection<S>(
    stream: S,
    activity: Arc<Activity>,
    router: Router,
    limits: &ConnLimits,
    mut stopped: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched {
        io: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = requests.begin();
        let router = router.clone();
        async move {
            // The request is in flight until its response's body has been handed to the
            // connection whole (or dropped).
            let response = router.oneshot(req.map(Body::new)).await;
            response.map(|r| {
                r.map(|body| {
                    Body::new(Answering {
                        inner: body,
                        in_flight: Some(in_flight),
                    })
                })
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's header timeout (30 s unless set) would also run while a keep-alive connection
    // waits for its next request; the watchdog below keeps both timeouts instead.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let shortest = limits.idle_timeout.min(limits.read_header_timeout);
    let mut check = tokio::time::interval((shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)));
    let mut closing = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            changed = stopped.changed(), if !closing => {
                // Requests in flight finish; the server aborts what is left after GRACE.
                let _ = changed;
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = check.tick() => {
                if activity.head_waiting_for() >= limits.read_header_timeout {
                    tracing::debug!("request head not received within server.read_header_timeout; closing");
                    return;
                }
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!("connection idle for server.idle_timeout; closing");
                    return;
                }
            }
        }
    }
}

/// When a connection last moved bytes, how many of its requests are in flight, and since when
/// it has been waiting for a request head whose first bytes came.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds since `start` plus one at which the head now awaited began (the
    /// connection, or the first byte after the previous request); 0: no head is awaited.
    head_since: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            // The first request's head is awaited from the connection on.
            head_since: AtomicU64::new(1),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes came in: between requests they begin the next request's head.
    fn read(&self) {
        self.touch();
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self
                .head_since
                .compare_exchange(0, self.now_ms() + 1, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// How long a request head has been awaited: zero when none is.
    fn head_waiting_for(&self) -> Duration {
        match self.head_since.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since - 1)),
        }
    }

    /// How long the connection has been idle: zero while a request is in flight.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(0, Ordering::Release);
        InFlight(self.clone())
    }
}

/// A request in flight on a connection.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request in flight until the last frame is taken.
struct Answering {
    inner: Body,
    in_flight: Option<InFlight>,
}

impl http_body::Body for Answering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A stream that notes when bytes move.
struct Watched<S> {
    io: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Middleware: the request's whole body must arrive within the given time; after it, reading
/// the body fails (the handler answers 400 and the connection closes).
pub(crate) async fn body_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = Body::new(BodyDeadline {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(limit)),
        limit,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// A request body that fails once its deadline passes.
struct BodyDeadline {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl http_body::Body for BodyDeadline {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(format!(
                "request body not received within {limit:?} (server.read_body_timeout)"
            )
            .into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
