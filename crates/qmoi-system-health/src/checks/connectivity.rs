//! Connectivity: a TCP connect or a DNS resolution per configured target, concurrently,
//! each bounded by its timeout.

use super::Collected;
use crate::SystemHealthConfig;
use crate::config::{ConnectivityTarget, ProbeKind};
use qmoi_core::{CheckResult, Status};
use std::time::{Duration, Instant};

/// The result of one probe: latency on success, the reason on failure.
pub async fn probe(t: &ConnectivityTarget, timeout: Duration) -> Result<(Duration, String), String> {
    let started = Instant::now();
    let target = t.target.as_str();
    let work = async {
        match t.kind {
            ProbeKind::Tcp => tokio::net::TcpStream::connect(target)
                .await
                .map(|s| {
                    format!("connected to {}", s.peer_addr().map_or_else(|_| target.to_string(), |a| a.to_string()))
                })
                .map_err(|e| format!("cannot connect to {target}: {e}")),
            ProbeKind::Dns => match tokio::net::lookup_host((target, 0)).await {
                Ok(addrs) => {
                    let list: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                    if list.is_empty() {
                        Err(format!("{target} resolved to no address"))
                    } else {
                        Ok(format!("{target} resolved to {}", list.join(", ")))
                    }
                }
                Err(e) => Err(format!("cannot resolve {target}: {e}")),
            },
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(msg)) => Ok((started.elapsed(), msg)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!("{target}: no answer within {}", qmoi_core::config::ConfigDuration(timeout))),
    }
}

pub async fn check(cfg: &SystemHealthConfig, default_timeout: Duration, out: &mut Collected) {
    let mut set = tokio::task::JoinSet::new();
    for (i, t) in cfg.connectivity.iter().enumerate() {
        let t = t.clone();
        let timeout = t.timeout.map_or(default_timeout, |d| d.get());
        set.spawn(async move {
            let r = probe(&t, timeout).await;
            (i, t, r)
        });
    }
    let mut results = set.join_all().await;
    results.sort_by_key(|(i, _, _)| *i);
    for (_, t, r) in results {
        let name = format!("connectivity:{}", t.name);
        let labels = [("target", t.name.as_str())];
        match r {
            Ok((latency, msg)) => {
                let ms = latency.as_secs_f64() * 1000.0;
                out.checks.push(
                    CheckResult::ok(&name, format!("{msg} in {ms:.1} ms"))
                        .with_value((ms * 100.0).round() / 100.0, "ms"),
                );
                out.metric("qmoi_connectivity_up", &labels, 1.0);
                out.metric("qmoi_connectivity_latency_seconds", &labels, latency.as_secs_f64());
            }
            Err(e) => {
                let status: Status = t.level.status();
                out.checks.push(CheckResult::new(&name, status, e).with_title(format!("{} unreachable", t.name)));
                out.metric("qmoi_connectivity_up", &labels, 0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qmoi_core::Severity;

    fn target(kind: ProbeKind, target: &str) -> ConnectivityTarget {
        ConnectivityTarget { name: "t".into(), kind, target: target.into(), timeout: None, level: Severity::Critical }
    }

    #[tokio::test]
    async fn tcp_to_a_real_listener_and_to_a_closed_port() -> std::io::Result<()> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let ok = probe(&target(ProbeKind::Tcp, &addr.to_string()), Duration::from_secs(2)).await;
        assert!(ok.is_ok(), "{ok:?}");
        drop(l);
        let err = probe(&target(ProbeKind::Tcp, &addr.to_string()), Duration::from_secs(2)).await;
        assert!(err.err().unwrap_or_default().contains("cannot connect"));
        Ok(())
    }

    #[tokio::test]
    async fn dns_resolves_localhost_and_fails_on_invalid_name() {
        assert!(probe(&target(ProbeKind::Dns, "localhost"), Duration::from_secs(3)).await.is_ok());
        // `.invalid` is reserved (RFC 2606): the resolver answers NXDOMAIN without asking anyone.
        let bad = probe(&target(ProbeKind::Dns, "qmoi-test.invalid"), Duration::from_secs(3)).await;
        assert!(bad.is_err());
    }
}
