//! The admin listener: `/metrics`, `/healthz` (the process is alive) and
//! `/readyz` (rules loaded and the source running). It binds to loopback
//! unless configured otherwise.
//!
//! Whoever can reach the port must not be able to take vigil's file
//! descriptors (the alert log, webhooks and reloads need them): at most
//! [`MAX_CONNECTIONS`] connections are open at once, a new one closing the
//! oldest (so a probe is answered even while idle connections pile up), a
//! connection that sends nothing for [`IDLE`] is closed, and none lives
//! past [`LIFETIME`].

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use super::metrics::Metrics;

#[derive(Clone)]
pub struct Health {
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(health)
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], health.metrics.render())
}

async fn ready(State(health): State<Health>) -> impl IntoResponse {
    if health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

/// Binds the listener now (so a bad address fails at start-up) and returns
/// the server future and the bound address.
pub async fn bind(
    addr: SocketAddr,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(impl std::future::Future<Output = std::io::Result<()>>, SocketAddr)> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the admin listener on {addr}"))?;
    let local = listener.local_addr()?;
    let guarded = Guarded { listener, open: Arc::default() };
    let server = axum::serve(guarded, router(health)).with_graceful_shutdown(shutdown);
    Ok((async move { server.await }, local))
}

/// Connections the admin listener holds at once; a new one past this
/// closes the oldest, so that probes and scrapes are always answered.
pub const MAX_CONNECTIONS: usize = 32;
/// A connection that sends nothing for this long is closed (a scraper's
/// keep-alive reconnects).
pub const IDLE: Duration = Duration::from_secs(10);
/// No connection lives longer, whatever it sends.
pub const LIFETIME: Duration = Duration::from_secs(60);

struct Guarded {
    listener: TcpListener,
    open: Arc<Mutex<VecDeque<Arc<Closing>>>>,
}

/// Tells a connection to end; shared between it and the listener.
#[derive(Default)]
struct Closing {
    now: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Closing {
    fn close(&self) {
        self.now.store(true, Ordering::Relaxed);
        if let Some(waker) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            waker.wake();
        }
    }
}

impl axum::serve::Listener for Guarded {
    type Io = Timed;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Timed, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let closing = Arc::new(Closing::default());
                    let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                    open.retain(|c| !c.now.load(Ordering::Relaxed));
                    while open.len() >= MAX_CONNECTIONS {
                        if let Some(oldest) = open.pop_front() {
                            oldest.close();
                        }
                    }
                    open.push_back(closing.clone());
                    return (Timed::new(stream, closing), addr);
                }
                // Out of descriptors, or a reset before accept: wait a
                // little rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// A connection that ends (reads as closed) once idle for [`IDLE`], older
/// than [`LIFETIME`], or closed to make room.
struct Timed {
    stream: TcpStream,
    idle: Pin<Box<Sleep>>,
    ends: Instant,
    closing: Arc<Closing>,
}

impl Timed {
    fn new(stream: TcpStream, closing: Arc<Closing>) -> Timed {
        let now = Instant::now();
        Timed { stream, idle: Box::pin(tokio::time::sleep(IDLE)), ends: now + LIFETIME, closing }
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        self.closing.now.store(true, Ordering::Relaxed);
    }
}

impl AsyncRead for Timed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Reads as the end of the stream: the server closes the connection.
        if self.closing.now.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let next = (Instant::now() + IDLE).min(self.ends);
                self.idle.as_mut().reset(next);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                *self.closing.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
                if self.closing.now.load(Ordering::Relaxed) {
                    return Poll::Ready(Ok(()));
                }
                match self.idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for Timed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
