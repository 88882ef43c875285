//! HTTP edge of a worker: `GET /metrics` renders [`Metrics`] in the Prometheus text
//! format, `GET /healthz` says the process is alive, `GET /readyz` asks the mode's
//! [`Probe`] whether it is doing its job (partitions held and consuming, input open).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use omnimeter_metrics::Metrics;

/// What the running mode tells the endpoints.
pub trait Probe: Send + Sync + 'static {
    /// Brings read-on-demand gauges (lag, checkpoint age) up to date before a scrape.
    fn refresh(&self, _metrics: &Metrics) {}
    /// `Ok(what is going on)` when ready to be counted on, `Err(why not)` otherwise.
    fn readiness(&self) -> Result<String, String>;
}

#[derive(Clone)]
struct Endpoints {
    metrics: Arc<Metrics>,
    probe: Arc<dyn Probe>,
}

fn router(metrics: Arc<Metrics>, probe: Arc<dyn Probe>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Endpoints { metrics, probe })
}

async fn metrics_text(State(e): State<Endpoints>) -> Response {
    e.probe.refresh(&e.metrics);
    ([(header::CONTENT_TYPE, e.metrics.content_type())], e.metrics.encode()).into_response()
}

async fn ready(State(e): State<Endpoints>) -> Response {
    match e.probe.readiness() {
        Ok(detail) => (StatusCode::OK, format!("ready: {detail}\n")).into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")).into_response(),
    }
}

/// Binds now, so a taken or invalid address fails at start-up with a clear error.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot serve metrics on {addr}: {e}")))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Serves the endpoints on the caller's tokio runtime until `shutdown` resolves.
pub async fn serve(
    listener: std::net::TcpListener,
    metrics: Arc<Metrics>,
    probe: Arc<dyn Probe>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    if let Ok(a) = listener.local_addr() {
        tracing::info!(addr = %a, "serving /metrics, /healthz and /readyz");
    }
    axum::serve(listener, router(metrics, probe)).with_graceful_shutdown(shutdown).await
}

/// The endpoints on a thread of their own, for modes without a runtime (file mode).
/// Stops when dropped.
pub struct BackgroundServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

impl BackgroundServer {
    pub fn start(addr: SocketAddr, metrics: Arc<Metrics>, probe: Arc<dyn Probe>) -> io::Result<Self> {
        let listener = bind(addr)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("omnimeter-http".into()).spawn(move || {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = runtime.block_on(serve(listener, metrics, probe, shutdown)) {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        })?;
        Ok(BackgroundServer { stop: Some(tx), thread: Some(thread), addr })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
