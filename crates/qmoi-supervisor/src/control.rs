//! The control socket `run/qmoi-supervisor.sock` (mode 0600): one JSON request per
//! connection, one JSON response line back.
//!
//! ```text
//! → {"cmd":"status"}
//! → {"cmd":"restart-component","component":"system_health"}
//! → {"cmd":"restart-all"}
//! → {"cmd":"reset"}
//! → {"cmd":"restart-dashboard"}
//! → {"cmd":"reload"}
//! → {"cmd":"maintenance-add","component":"backup","for_s":7200,"reason":"disk swap","by":"alice"}
//! → {"cmd":"maintenance-end","id":3,"by":"alice"}
//! → {"cmd":"maintenance-list"}
//! ← {"ok":true,"message":"…","overview":{…}}   or   {"ok":false,"error":"…"}
//! ```

use crate::overview::Overview;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub const SOCKET_NAME: &str = "qmoi-supervisor.sock";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    RestartComponent {
        component: String,
    },
    /// Restart every enabled component (the seed's `--restart`).
    RestartAll,
    Reset,
    RestartDashboard,
    /// Read the configuration again and apply what changed (`qmoi-supervisor reload`).
    Reload,
    /// Open a maintenance window (`qmoi-supervisor maintenance add`).
    MaintenanceAdd {
        component: String,
        /// One endpoint, check or target of the component (absent: all of it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        /// Only what carries all of these labels (with no component: of every component).
        #[serde(default, skip_serializing_if = "qmoi_core::report::Labels::is_empty")]
        labels: qmoi_core::report::Labels,
        for_s: u64,
        reason: String,
        /// Who asks (the CLI's user), for the audit log.
        #[serde(default)]
        by: String,
    },
    MaintenanceEnd {
        id: i64,
        #[serde(default)]
        by: String,
    },
    MaintenanceList,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overview: Option<Box<Overview>>,
}

impl Response {
    pub fn error(e: impl Into<String>) -> Self {
        Self { ok: false, error: Some(e.into()), ..Self::default() }
    }

    pub fn message(m: impl Into<String>) -> Self {
        Self { ok: true, message: Some(m.into()), ..Self::default() }
    }
}

/// What handles requests (the running supervisor).
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> impl std::future::Future<Output = Response> + Send;
}

/// Bind the socket with mode 0600. Refuses when another supervisor answers on it;
/// removes a stale socket file left by one that died.
pub async fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "another qmoi-supervisor is already running (it answers on {}); stop it first or use `qmoi-supervisor status`",
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot set mode 0600 on {}: {e}", path.display()))?;
    Ok(listener)
}

/// Serve requests until `shutdown` resolves.
pub async fn serve<H: Handler>(
    listener: UnixListener,
    handler: std::sync::Arc<H>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let h = handler.clone();
                    tokio::spawn(async move {
                        if let Err(e) = serve_one(stream, h.as_ref()).await {
                            tracing::debug!(error = %e, "Control connection failed.");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot accept on the control socket.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn serve_one<H: Handler>(stream: UnixStream, handler: &H) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    // Bounded in size and time: a client that sends nothing or too much is dropped.
    let mut reader = BufReader::new(r).take(64 * 1024);
    tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::other("request timed out"))??;
    let resp = match serde_json::from_str::<Request>(line.trim()) {
        Ok(req) => handler.handle(req).await,
        Err(e) => Response::error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&resp).map_err(std::io::Error::other)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await
}

use tokio::io::AsyncReadExt as _;

/// Send one request; `Ok(None)` when no supervisor listens on `path`.
pub async fn request(path: &Path, req: &Request) -> Result<Option<Response>, String> {
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot connect to {}: {e}", path.display())),
    };
    let exchange = async {
        let (r, mut w) = stream.into_split();
        let mut body = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        body.push(b'\n');
        w.write_all(&body).await.map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(r).read_line(&mut line).await.map_err(|e| e.to_string())?;
        serde_json::from_str::<Response>(&line).map_err(|e| format!("bad response from the supervisor: {e}"))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("the supervisor did not answer on {} within 10s", path.display()))?
        .map(Some)
}
