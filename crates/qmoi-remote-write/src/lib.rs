//! # qmoi-remote-write
//!
//! The supervisor's push of every metric it serves on `/metrics` to Prometheus-compatible
//! stores (Prometheus, VictoriaMetrics, Mimir, Thanos receive) with the remote write 1.0
//! protocol: protobuf, snappy, one POST per batch (docs/FLEET.md).
//!
//! - A **sampler** reads the `/metrics` text every `interval`, labels each sample with
//!   `host`, `instance`, `job` and the configured labels, cuts the sampling into requests
//!   of at most `max_samples_per_send` samples, and queues each request for every
//!   receiver.
//! - Each receiver has a durable [`spool::Spool`] in `data/remote_write/<name>/` (bounded:
//!   the oldest are dropped and counted beyond `max_buffer_bytes`) and a **sender** that
//!   posts the queue in order, one request at a time: so samples reach a receiver in
//!   timestamp order per series, also after an outage.
//! - As the spec says: 2xx sent; 5xx, 429 and transport errors retried with backoff
//!   (honouring `Retry-After`, capped at `max_backoff`); any other answer dropped with a
//!   counter and a log line naming the answer.
//!
//! [`RemoteWrite::metrics`] gives the counters, which the supervisor puts in its own report
//! (and so on `/metrics`).

pub mod config;
pub mod exposition;
pub mod proto;
pub mod spool;

pub use config::RemoteWriteConfig;

use spool::Spool;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Where the samples come from: the `/metrics` text as it would be served now.
pub type Source = Arc<dyn Fn() -> String + Send + Sync>;

/// Counters of one receiver (all monotonic but `pending_*` and `last_success_ms`).
#[derive(Debug, Default)]
struct Stats {
    sent_samples: AtomicU64,
    sent_bytes: AtomicU64,
    failed_samples: AtomicU64,
    retries: AtomicU64,
    dropped_samples: AtomicU64,
    pending_bytes: AtomicU64,
    pending_requests: AtomicU64,
    last_success_ms: AtomicU64,
}

struct Receiver {
    name: String,
    url: String,
    client: reqwest::Client,
    bearer: Option<qmoi_core::config::Secret>,
    basic: Option<qmoi_core::http::BasicAuth>,
    spool: Mutex<Spool>,
    wake: Notify,
    stats: Stats,
    /// Sequence number of the request being sent (0: none), spared by trimming.
    in_flight: AtomicU64,
    /// Labels of this receiver only.
    labels: Vec<(String, String)>,
}

impl Receiver {
    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn note_pending(&self, s: &Spool) {
        self.stats.pending_bytes.store(s.bytes(), Ordering::Relaxed);
        self.stats.pending_requests.store(s.len() as u64, Ordering::Relaxed);
    }
}

/// The running push: a sampler and one sender per receiver. Dropping it stops them (what
/// is queued stays on disk for the next start).
pub struct RemoteWrite {
    receivers: Vec<Arc<Receiver>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RemoteWrite {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn describe(e: &dyn std::error::Error) -> String {
    qmoi_core::http::describe(e)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RemoteWrite {
    /// Open every receiver's buffer under `data_dir/remote_write/` and start pushing.
    /// Must be called inside a tokio runtime.
    pub fn start(cfg: &RemoteWriteConfig, data_dir: &Path, host: &str, source: Source) -> Result<Self, String> {
        let mut receivers = Vec::new();
        for r in &cfg.receivers {
            let name = r.display_name();
            let dir = data_dir.join("remote_write").join(&name);
            let spool = Spool::open(&dir).map_err(|e| format!("remote write to {name}: {}: {e}", dir.display()))?;
            if !spool.is_empty() {
                tracing::info!(receiver = %name, requests = spool.len(), bytes = spool.bytes(), "Remote-write buffer found; sending it first.");
            }
            let client = qmoi_core::http::client("qmoi-supervisor", r.timeout.get(), r.ca_file.as_deref())
                .map_err(|e| format!("remote write to {name}: {e}"))?;
            let rx = Arc::new(Receiver {
                client,
                url: r.url.to_string(),
                bearer: r.bearer_token.clone(),
                basic: r.basic_auth.clone(),
                wake: Notify::new(),
                stats: Stats::default(),
                in_flight: AtomicU64::new(0),
                labels: r.labels.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
                spool: Mutex::new(spool),
                name,
            });
            rx.note_pending(&rx.spool());
            receivers.push(rx);
        }
        let host = cfg.host.as_ref().map_or_else(|| host.to_string(), |h| h.to_string());
        let mut external: Vec<(String, String)> = cfg.labels.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        for (k, v) in [("host", host.as_str()), ("instance", host.as_str()), ("job", "qmoi")] {
            if !cfg.labels.contains_key(k) {
                external.push((k.to_string(), v.to_string()));
            }
        }
        let mut tasks: Vec<JoinHandle<()>> =
            receivers.iter().map(|r| tokio::spawn(send_loop(r.clone(), cfg.clone()))).collect();
        let sampler = Sampler { receivers: receivers.clone(), external, cfg: cfg.clone(), source };
        tasks.push(tokio::spawn(sampler.run()));
        Ok(Self { receivers, tasks })
    }

    /// The counters, as metrics of the supervisor's report (`receiver` label):
    /// `qmoi_remote_write_{sent,failed,dropped}_samples_total`, `…_retries_total`,
    /// `…_sent_bytes_total`, `…_pending_bytes`, `…_pending_requests`,
    /// `…_last_success_timestamp_seconds` (0: never).
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        for r in &self.receivers {
            let l = format!("{{receiver=\"{}\"}}", r.name);
            let s = &r.stats;
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
            for (name, v) in [
                ("sent_samples_total", get(&s.sent_samples)),
                ("sent_bytes_total", get(&s.sent_bytes)),
                ("failed_samples_total", get(&s.failed_samples)),
                ("dropped_samples_total", get(&s.dropped_samples)),
                ("retries_total", get(&s.retries)),
                ("pending_bytes", get(&s.pending_bytes)),
                ("pending_requests", get(&s.pending_requests)),
                ("last_success_timestamp_seconds", get(&s.last_success_ms) / 1000.0),
            ] {
                m.insert(format!("qmoi_remote_write_{name}{l}"), v);
            }
        }
        m
    }
}

struct Sampler {
    receivers: Vec<Arc<Receiver>>,
    external: Vec<(String, String)>,
    cfg: RemoteWriteConfig,
    source: Source,
}

impl Sampler {
    async fn run(self) {
        let this = Arc::new(self);
        let mut tick = tokio::time::interval(this.cfg.interval.get());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let s = this.clone();
            // Encoding and the buffer's file writes: off the async workers.
            let _ = tokio::task::spawn_blocking(move || s.sample(now_ms())).await;
        }
    }

    /// Take one sampling at `ts` (ms) and queue it for every receiver.
    fn sample(&self, ts: u64) {
        let text = (self.source)();
        let (lines, bad) = exposition::parse(&text);
        if bad > 0 {
            tracing::debug!(lines = bad, "Lines of /metrics not understood; not pushed.");
        }
        let ts = i64::try_from(ts).unwrap_or(i64::MAX);
        for r in &self.receivers {
            let mut all = lines.iter().map(|l| series(l, &r.labels, &self.external, ts)).peekable();
            let mut dropped = 0;
            while all.peek().is_some() {
                let req = proto::WriteRequest {
                    timeseries: all.by_ref().take(self.cfg.max_samples_per_send.max(1)).collect(),
                };
                let n = req.timeseries.len() as u64;
                let body = match proto::encode(&req) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(receiver = %r.name, error = %e, "Cannot encode a remote-write request.");
                        dropped += n;
                        continue;
                    }
                };
                let mut spool = r.spool();
                if let Err(e) = spool.push(&body, n) {
                    // A full or read-only disk: these samples are lost, and said so.
                    tracing::warn!(receiver = %r.name, error = %e, "Cannot buffer remote-write samples; dropped.");
                    dropped += n;
                }
                let in_flight = r.in_flight.load(Ordering::Relaxed);
                dropped += spool.trim(self.cfg.max_buffer_bytes, (in_flight != 0).then_some(in_flight));
                r.note_pending(&spool);
            }
            if dropped > 0 {
                r.stats.dropped_samples.fetch_add(dropped, Ordering::Relaxed);
            }
            r.wake.notify_one();
        }
    }
}

/// One sample as a remote-write series: its labels, `__name__`, then the receiver's and
/// the external labels it does not have itself; sorted by name as the spec requires.
fn series(l: &exposition::Line, own: &[(String, String)], external: &[(String, String)], ts: i64) -> proto::TimeSeries {
    let mut labels: Vec<proto::Label> = Vec::with_capacity(l.labels.len() + own.len() + external.len() + 1);
    labels.push(proto::Label { name: "__name__".into(), value: l.name.clone() });
    for (k, v) in l.labels.iter().chain(own).chain(external) {
        if !labels.iter().any(|x| x.name == *k) {
            labels.push(proto::Label { name: k.clone(), value: v.clone() });
        }
    }
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    proto::TimeSeries { labels, samples: vec![proto::Sample { value: l.value, timestamp: ts }] }
}

/// What became of one POST.
enum Outcome {
    Sent,
    /// Try the same request again after this long.
    Retry(Duration, String),
    /// The receiver refused it for good: drop it.
    Refused(String),
}

async fn post(r: &Receiver, body: Vec<u8>, attempt: u32, cfg: &RemoteWriteConfig) -> Outcome {
    let backoff = qmoi_core::retry::backoff(cfg.min_backoff.get(), cfg.max_backoff.get(), attempt, 0.2);
    let mut req = r
        .client
        .post(&r.url)
        .header(reqwest::header::CONTENT_ENCODING, "snappy")
        .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    req = qmoi_core::http::authorize(req, r.bearer.as_ref(), r.basic.as_ref());
    let mut resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) => return Outcome::Retry(backoff, describe(&e)),
    };
    let status = resp.status();
    if status.is_success() {
        return Outcome::Sent;
    }
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| qmoi_core::retry::retry_after(v, cfg.max_backoff.get()));
    // The first 512 bytes of what the receiver said, for the log line.
    let mut said = Vec::new();
    while said.len() < 512 {
        match resp.chunk().await {
            Ok(Some(c)) => said.extend_from_slice(&c[..c.len().min(512 - said.len())]),
            _ => break,
        }
    }
    let said = String::from_utf8_lossy(&said).trim().to_string();
    let what = if said.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {said}") };
    if status.as_u16() == 429 || status.is_server_error() {
        Outcome::Retry(retry_after.unwrap_or(backoff), what)
    } else {
        Outcome::Refused(what)
    }
}

/// Post the receiver's queue in order, one request at a time, for ever.
async fn send_loop(r: Arc<Receiver>, cfg: RemoteWriteConfig) {
    let mut attempt = 0u32;
    loop {
        // Marked in flight under the buffer's lock, so trimming cannot take it meanwhile.
        let head = {
            let s = r.spool();
            let h = s.head();
            r.in_flight.store(h.map_or(0, |e| e.seq), Ordering::Relaxed);
            h
        };
        let Some(e) = head else {
            r.wake.notified().await;
            continue;
        };
        let body = match r.spool().read(&e) {
            Ok(b) => b,
            Err(err) => {
                tracing::warn!(receiver = %r.name, error = %err, "Cannot read a buffered remote-write request; dropped.");
                r.stats.failed_samples.fetch_add(e.samples, Ordering::Relaxed);
                finish(&r, &e);
                continue;
            }
        };
        let len = body.len() as u64;
        match post(&r, body, attempt + 1, &cfg).await {
            Outcome::Sent => {
                if attempt > 0 {
                    tracing::info!(receiver = %r.name, failures = attempt, queued = r.spool().len(), "Remote write works again; sending what was buffered.");
                }
                attempt = 0;
                r.stats.sent_samples.fetch_add(e.samples, Ordering::Relaxed);
                r.stats.sent_bytes.fetch_add(len, Ordering::Relaxed);
                r.stats.last_success_ms.store(now_ms(), Ordering::Relaxed);
                finish(&r, &e);
            }
            Outcome::Refused(why) => {
                tracing::warn!(receiver = %r.name, url = %r.url, samples = e.samples, answer = %why, "Remote-write request refused; dropped.");
                r.stats.failed_samples.fetch_add(e.samples, Ordering::Relaxed);
                finish(&r, &e);
            }
            Outcome::Retry(wait, why) => {
                attempt = attempt.saturating_add(1);
                r.stats.retries.fetch_add(1, Ordering::Relaxed);
                r.in_flight.store(0, Ordering::Relaxed);
                // One warning per outage (and one a few minutes into it); the rest at debug.
                if attempt == 1 || attempt == 10 {
                    tracing::warn!(receiver = %r.name, url = %r.url, error = %why, retry_in_ms = wait.as_millis() as u64, "Remote write failed; buffering on disk and retrying.");
                } else {
                    tracing::debug!(receiver = %r.name, error = %why, "Remote write failed again.");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

fn finish(r: &Receiver, e: &spool::Entry) {
    let mut s = r.spool();
    s.remove(e);
    r.note_pending(&s);
    r.in_flight.store(0, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_have_sorted_unique_labels_with_the_samples_own_winning() {
        let l = exposition::Line {
            name: "qmoi_disk_used_ratio".into(),
            labels: vec![("mount".into(), "/".into()), ("component".into(), "system_health".into())],
            value: 0.5,
        };
        let ext = vec![("host".into(), "web1".into()), ("component".into(), "nope".into())];
        let s = series(&l, &[("dc".into(), "eu".into())], &ext, 1234);
        let names: Vec<(&str, &str)> = s.labels.iter().map(|x| (x.name.as_str(), x.value.as_str())).collect();
        assert_eq!(
            names,
            vec![
                ("__name__", "qmoi_disk_used_ratio"),
                ("component", "system_health"),
                ("dc", "eu"),
                ("host", "web1"),
                ("mount", "/")
            ]
        );
        assert_eq!(s.samples, vec![proto::Sample { value: 0.5, timestamp: 1234 }]);
    }
}
