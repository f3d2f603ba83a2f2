//! # qmoi-grpc
//!
//! The gRPC API (`proto/qmoi/v1/monitor.proto`, package `qmoi.v1`) on its own listener,
//! beside the REST API and over the same things: the dashboard's [`Hub`] (cached overview,
//! reports, firing alerts, the event broadcast), its history store, its authentication,
//! rate limits, supervisor actions and audit log. Nothing here computes what the REST API
//! computes differently: it converts.
//!
//! - [`service`]: the `qmoi.v1.Monitor` service.
//! - The standard `grpc.health.v1.Health` service: `""` and `qmoi.v1.Monitor` are SERVING
//!   once the supervisor has an overview; each component id is a service name, SERVING
//!   while the component runs with fresh reports.
//! - Server reflection (v1 and v1alpha), so tools work without the proto file.
//! - [`config`]: the `grpc` table of `master_monitor.toml`; TLS (`[grpc.tls]`) is served
//!   by `tls`, which hands tonic connections whose handshake is done.

pub mod config;
mod convert;
pub mod service;
mod tls;

pub use config::GrpcConfig;

use qmoi_dashboard::Shared;
use qmoi_dashboard::hub::Hub;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The code generated from the proto.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("qmoi.v1");
}

/// The encoded descriptor set of the proto, for reflection.
pub const DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/qmoi_v1_descriptor.bin"));

/// A running gRPC server.
pub struct Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stop accepting and end the streams; wait at most 3 s for calls in flight.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut join = self.join;
        if tokio::time::timeout(Duration::from_secs(3), &mut join).await.is_err() {
            join.abort();
        }
    }
}

/// Bind `[grpc]`'s address; a clear message when it cannot be had.
pub async fn bind(cfg: &GrpcConfig) -> Result<TcpListener, String> {
    let addr = cfg.addr();
    TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} for gRPC: {e} (another program on that port? change grpc.port)"))
}

/// Serve the monitor, health and reflection services on `listener` until stopped, over
/// TLS when `tls` is given (from [`qmoi_dashboard::tls::load`] with ALPN `h2`).
pub fn serve(
    listener: TcpListener,
    shared: Shared,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) -> Result<Server, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("gRPC reflection: {e}"))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTOR)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| format!("gRPC reflection: {e}"))?;
    let monitor = service::MonitorService::new(shared.clone(), stop_rx.clone());
    tokio::spawn(follow_health(shared.hub.clone(), health_reporter, stop_rx.clone()));
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .add_service(pb::monitor_server::MonitorServer::new(monitor))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let mut stop = stop_rx;
    let stopped = async move {
        let _ = stop.wait_for(|v| *v).await;
    };
    let join = match &tls {
        None => {
            // Every accepted connection without Nagle's delay: a unary answer is several
            // small writes (headers, message, trailers), and with Nagle the last one waited
            // for the client's delayed ACK: 44 ms per call, 2,901 calls/s (tonic's own
            // `tcp_nodelay` applies only to listeners it binds itself).
            let incoming =
                tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |s| {
                    s.inspect(no_delay)
                });
            tokio::spawn(async move { report(router.serve_with_incoming_shutdown(incoming, stopped).await) })
        }
        Some(config) => {
            let incoming = tls::incoming(listener, config.clone());
            tokio::spawn(async move { report(router.serve_with_incoming_shutdown(incoming, stopped).await) })
        }
    };
    tracing::info!(%addr, tls = tls.is_some(), "gRPC listening.");
    Ok(Server { addr, stop: stop_tx, join })
}

fn no_delay(s: &tokio::net::TcpStream) {
    if let Err(e) = s.set_nodelay(true) {
        tracing::debug!(error = %e, "Cannot set TCP_NODELAY on a gRPC connection.");
    }
}

fn report(r: Result<(), tonic::transport::Error>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "The gRPC server stopped.");
    }
}

/// Keep the health service in step with the overview: on every event of the hub, and
/// every 5 s (a component that went stale without an event).
async fn follow_health(hub: Arc<Hub>, reporter: tonic_health::server::HealthReporter, mut stop: watch::Receiver<bool>) {
    use tonic_health::ServingStatus;
    let mut events = hub.subscribe();
    loop {
        if let Some(o) = hub.overview() {
            for name in ["", "qmoi.v1.Monitor"] {
                reporter.set_service_status(name, ServingStatus::Serving).await;
            }
            for c in &o.components {
                let serving = c.state == qmoi_core::overview::State::Running && c.report_error.is_none();
                let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
                reporter.set_service_status(&c.id, status).await;
            }
        } else {
            reporter.set_service_status("", ServingStatus::NotServing).await;
        }
        tokio::select! {
            _ = events.recv() => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.wait_for(|v| *v) => break,
        }
    }
}
