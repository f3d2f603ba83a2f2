//! DNS probes through the system resolver (getaddrinfo): the name must resolve, and to the
//! `expect`ed address when one is given.

use super::ProbeResult;
use crate::config::Endpoint;
use std::time::{Duration, Instant};

pub async fn probe(e: &Endpoint, timeout: Duration) -> ProbeResult {
    let name = e.target.as_ref().map(|t| t.as_str().to_string()).unwrap_or_default();
    let started = Instant::now();
    let lookup = tokio::net::lookup_host((name.as_str(), 0));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => ProbeResult::failed(
            started.elapsed(),
            format!("{name}: no answer within {}", qmoi_core::config::ConfigDuration(timeout)),
        ),
        Ok(Err(err)) => ProbeResult::failed(started.elapsed(), format!("cannot resolve {name}: {err}")),
        Ok(Ok(addrs)) => {
            let ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            let latency = started.elapsed();
            match &e.expect {
                Some(want) if !ips.iter().any(|ip| ip == want) => {
                    ProbeResult::failed(latency, format!("{name} resolved to {}, not {want}", ips.join(", ")))
                }
                _ if ips.is_empty() => ProbeResult::failed(latency, format!("{name} resolved to no address")),
                _ => ProbeResult { ok: true, latency, ..ProbeResult::default() },
            }
        }
    }
}
