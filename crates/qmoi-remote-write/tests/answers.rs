//! The sender against a receiver that answers what a test tells it to (429 with
//! `Retry-After`, 503, 400, then 204): the answers a real Prometheus gives only under
//! load or misconfiguration, so a small loopback server plays them here. Checks the
//! headers of the spec, the retry/drop rules, and timestamp order per series.

use qmoi_remote_write::{RemoteWrite, RemoteWriteConfig, Source, proto};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Seen {
    status: u16,
    headers: Vec<String>,
    body: Vec<u8>,
    at: Instant,
}

/// Serve one answer per request from `script` (the last one repeats).
fn receiver(script: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!("http://{}/api/v1/write", l.local_addr().unwrap_or_else(|e| panic!("addr: {e}")));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let Ok(clone) = s.try_clone() else { continue };
            let mut r = BufReader::new(clone);
            loop {
                let mut headers = Vec::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end().to_string();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    headers.push(line);
                }
                if headers.is_empty() {
                    break;
                }
                let mut body = vec![0; len];
                if r.read_exact(&mut body).is_err() {
                    break;
                }
                let mut seen = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let (status, extra) = script[seen.len().min(script.len() - 1)];
                seen.push(Seen { status, headers, body, at: Instant::now() });
                drop(seen);
                let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 4\r\n{extra}\r\nnope");
                if s.write_all(resp.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (url, seen)
}

fn config(url: &str) -> RemoteWriteConfig {
    let toml = format!(
        "interval = \"200ms\"\nhost = \"h1\"\nmin_backoff = \"50ms\"\nmax_backoff = \"3s\"\nmax_samples_per_send = 2\n\
         [[receivers]]\nname = \"r\"\nurl = \"{url}\"\n"
    );
    toml::from_str(&toml).unwrap_or_else(|e| panic!("config: {e}"))
}

fn source() -> Source {
    Arc::new(|| "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\nb 3\n".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_429_and_5xx_honours_retry_after_and_drops_400() {
    let (url, seen) = receiver(vec![(429, "Retry-After: 1\r\n"), (503, ""), (400, ""), (204, "")]);
    let dir = tempfile::tempdir().unwrap();
    let rw = RemoteWrite::start(&config(&url), dir.path(), "ignored", source()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().iter().filter(|s| s.status == 204).count() < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = rw.metrics();
    drop(rw);
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 9, "{} requests", seen.len());
    // 429 → waited for Retry-After (1 s, not the 50 ms backoff); then the same body again.
    let wait = seen[1].at - seen[0].at;
    assert!(wait >= Duration::from_millis(950), "Retry-After ignored: retried after {wait:?}");
    assert_eq!(seen[0].body, seen[1].body, "a retry sends the same request");
    assert_eq!(seen[1].body, seen[2].body);
    // 400: dropped, the next request is another one.
    assert_ne!(seen[2].body, seen[3].body);
    for s in seen.iter() {
        let h = s.headers.join("\n").to_ascii_lowercase();
        for want in [
            "content-encoding: snappy",
            "content-type: application/x-protobuf",
            "x-prometheus-remote-write-version: 0.1.0",
        ] {
            assert!(h.contains(want), "{want} missing in {h}");
        }
    }
    // Batches of at most 2 samples (3 per sampling), each series in timestamp order.
    let mut last: std::collections::BTreeMap<String, i64> = Default::default();
    for s in seen.iter().filter(|s| s.status == 204) {
        let req = proto::decode(&s.body).unwrap();
        assert!(req.timeseries.len() <= 2);
        for ts in &req.timeseries {
            let key: Vec<String> = ts.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
            assert!(key.contains(&"host=h1".to_string()) && key.contains(&"job=qmoi".to_string()), "{key:?}");
            let t = ts.samples[0].timestamp;
            let prev = last.insert(key.join(","), t);
            assert!(prev.is_none_or(|p| p < t), "{key:?} out of order: {prev:?} then {t}");
        }
    }
    assert_eq!(m["qmoi_remote_write_retries_total{receiver=\"r\"}"], 2.0, "{m:?}");
    assert_eq!(m["qmoi_remote_write_failed_samples_total{receiver=\"r\"}"], 2.0, "{m:?}");
    assert!(m["qmoi_remote_write_sent_samples_total{receiver=\"r\"}"] >= 6.0, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    // Nobody listens: every send fails, the buffer grows to its limit and no further.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = config(&format!("http://127.0.0.1:{port}/api/v1/write"));
    cfg.max_buffer_bytes = 64 * 1024;
    cfg.interval = qmoi_core::config::ConfigDuration::from_millis(1);
    // ~6 KB per sampling: 100 series with long label values.
    let text: String = (0..100).map(|i| format!("m{{k=\"{}\"}} {i}\n", "v".repeat(40) + &i.to_string())).collect();
    cfg.max_samples_per_send = 1000;
    let dir = tempfile::tempdir().unwrap();
    let rw = RemoteWrite::start(&cfg, dir.path(), "h", Arc::new(move || text.clone())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let key = "qmoi_remote_write_dropped_samples_total{receiver=\"r\"}";
    while rw.metrics()[key] < 1000.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = rw.metrics();
    assert!(m[key] >= 1000.0, "{m:?}");
    let pending = m["qmoi_remote_write_pending_bytes{receiver=\"r\"}"];
    assert!(pending > 0.0 && pending <= 64.0 * 1024.0, "{m:?}");
    let on_disk: u64 = std::fs::read_dir(dir.path().join("remote_write/r"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 64 * 1024 + 8192, "{on_disk} bytes on disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_as_configured_and_never_in_clear_elsewhere() {
    let (bearer_url, bearer_seen) = receiver(vec![(204, "")]);
    let (basic_url, basic_seen) = receiver(vec![(204, "")]);
    let toml = format!(
        "interval = \"100ms\"\nhost = \"h\"\n\
         [[receivers]]\nname = \"bearer\"\nurl = \"{bearer_url}\"\nbearer_token = \"tok-0123456789\"\n\
         [[receivers]]\nname = \"basic\"\nurl = \"{basic_url}\"\nbasic_auth = {{ username = \"u\", password = \"p\" }}\n"
    );
    let cfg: RemoteWriteConfig = toml::from_str(&toml).unwrap();
    // Secrets print as *** wherever the config is shown (the dashboard's config view).
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("tok-0123456789") && shown.contains("***"), "{shown}");
    let dir = tempfile::tempdir().unwrap();
    let _rw = RemoteWrite::start(&cfg, dir.path(), "h", source()).unwrap();
    let header = |seen: &Arc<Mutex<Vec<Seen>>>| {
        seen.lock()
            .unwrap()
            .first()
            .and_then(|s| s.headers.iter().find(|h| h.to_ascii_lowercase().starts_with("authorization:")).cloned())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while (header(&bearer_seen).is_none() || header(&basic_seen).is_none()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(header(&bearer_seen).as_deref(), Some("authorization: Bearer tok-0123456789"));
    // base64("u:p")
    assert_eq!(header(&basic_seen).as_deref(), Some("authorization: Basic dTpw"));
}
