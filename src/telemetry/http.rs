//! The admin listener: `/metrics`, `/healthz` (the process is alive) and
//! `/readyz` (rules loaded and the source running). It binds to loopback
//! unless configured otherwise.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

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
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding the admin listener on {addr}"))?;
    let local = listener.local_addr()?;
    let server = axum::serve(listener, router(health)).with_graceful_shutdown(shutdown);
    Ok((async move { server.await }, local))
}
