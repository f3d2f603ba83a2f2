//! TCP probes: connect, optionally send a line and expect text in the answer.

use super::ProbeResult;
use crate::config::Endpoint;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn probe(e: &Endpoint, timeout: Duration) -> ProbeResult {
    let target = e.target.as_ref().map(|t| t.as_str().to_string()).unwrap_or_default();
    let started = Instant::now();
    let work = async {
        let mut s = tokio::net::TcpStream::connect(&target)
            .await
            .map_err(|err| format!("cannot connect to {target}: {err}"))?;
        if let Some(send) = &e.send {
            s.write_all(send.as_bytes()).await.map_err(|err| format!("cannot send to {target}: {err}"))?;
        }
        if let Some(expect) = &e.expect {
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            loop {
                let n = s.read(&mut buf).await.map_err(|err| format!("reading from {target}: {err}"))?;
                if n == 0 {
                    return Err(format!(
                        "{target} closed the connection before sending '{expect}' (got '{}')",
                        String::from_utf8_lossy(&got)
                    ));
                }
                got.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&got).contains(expect.as_str()) {
                    break;
                }
                if got.len() > 64 * 1024 {
                    return Err(format!("no '{expect}' in the first 64 KiB from {target}"));
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(())) => ProbeResult { ok: true, latency: started.elapsed(), ..ProbeResult::default() },
        Ok(Err(why)) => ProbeResult::failed(started.elapsed(), why),
        Err(_) => ProbeResult::failed(
            started.elapsed(),
            format!("{target}: no answer within {}", qmoi_core::config::ConfigDuration(timeout)),
        ),
    }
}
