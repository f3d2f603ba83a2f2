//! QMOI's fuzz targets: one function per parser that takes outside or user input, each
//! driving the code the monitors and the supervisor run (files are written and read back
//! where the real path reads a file). The same functions run two ways:
//!
//! - coverage-guided, by `cargo fuzz` on the nightly toolchain (`fuzz/`, one three-line
//!   target per function; `scripts/fuzz.sh [target] [seconds]`);
//! - on stable, in `cargo test` (`tests/corpus.rs`): every committed seed of
//!   `fuzz/corpus/<target>/` and every input that once crashed, `fuzz/regressions/<target>/`.
//!
//! A target fails by panicking: the parsers must not panic, whatever the bytes, and a few
//! targets also check what must hold of any answer (the heartbeat listener answers one of
//! its documented statuses; a decoded report encodes again).

use qmoi_core::config::{ConfigDuration, Problems, Validate, parse_str};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// A fuzz target: any bytes.
pub type Target = fn(&[u8]);

/// Every target, by the name `cargo fuzz` and the corpus folders use.
pub const TARGETS: &[(&str, Target)] = &[
    ("report", report),
    ("config", config),
    ("access_log", access_log),
    ("auth_log", auth_log),
    ("dns", dns),
    ("conditions", conditions),
    ("backup_schedule", backup_schedule),
    ("retry_after", retry_after),
    ("archive", archive),
    ("perfdata", perfdata),
    ("exposition", exposition),
    ("heartbeat_http", heartbeat_http),
    ("small_parsers", small_parsers),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// A folder of this process's for the targets that read files (removed at exit by the
/// operating system's temporary folder policy; one per process, reused by every input).
fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap_or_else(|e| panic!("a scratch folder: {e}"))).path().join(name)
}

fn write(path: &Path, data: &[u8]) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A config of type `T` from TOML written by the harness itself (must parse).
fn fixed<T: serde::de::DeserializeOwned>(toml: &str) -> T {
    parse_str(Path::new("fuzz.toml"), toml).unwrap_or_else(|e| panic!("the harness's own config: {e}"))
}

/// A `*_latest.json` holding anything: the supervisor's and the notifier's readers.
pub fn report(data: &[u8]) {
    let path = scratch("fuzz_latest.json");
    write(&path, data);
    if let qmoi_core::report::ReadOutcome::Ok { report, .. } = qmoi_core::report::read_report(&path) {
        // What was read is a report: it encodes again.
        serde_json::to_vec(&report).unwrap_or_else(|e| panic!("a decoded report does not encode: {e}"));
    }
    let _ = qmoi_core::report::read_report_alerts(&path);
}

/// Config text of each component's schema, TOML or JSON (first byte), `${ENV}` included,
/// then its validation.
pub fn config(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else { return };
    let json = sel & 1 == 1;
    let path = PathBuf::from(if json { "fuzz.json" } else { "fuzz.toml" });
    let t = text(rest);
    fn check<T: serde::de::DeserializeOwned + Validate>(path: &Path, t: &str) {
        if let Ok(cfg) = parse_str::<T>(path, t) {
            let mut p = Problems::new();
            cfg.validate(&mut p);
        }
    }
    match (sel >> 1) % 8 {
        0 => check::<qmoi_supervisor::config::MasterConfig>(&path, &t),
        1 => check::<qmoi_system_health::config::SystemHealthConfig>(&path, &t),
        2 => check::<qmoi_performance::config::PerformanceConfig>(&path, &t),
        3 => check::<qmoi_security::config::SecurityConfig>(&path, &t),
        4 => check::<qmoi_backup::config::BackupConfig>(&path, &t),
        5 => check::<qmoi_api_endpoints::config::EndpointsConfig>(&path, &t),
        6 => check::<qmoi_notify::config::NotifyConfig>(&path, &t),
        _ => check::<qmoi_heartbeat::HeartbeatsConfig>(&path, &t),
    }
}

/// An access log in each format (combined, vhost_combined, JSON lines), read by the
/// performance monitor's follower and aggregated into a report interval.
pub fn access_log(data: &[u8]) {
    let path = scratch("access.log");
    for (format, group) in [("combined", "path_prefix"), ("vhost_combined", "vhost"), ("json", "vhost")] {
        write(&path, data);
        let cfg: qmoi_performance::config::AccessLog = fixed(&format!(
            "name = \"fuzz\"\npath = \"{}\"\nformat = \"{format}\"\ngroup_by = \"{group}\"\n\
             path_prefixes = [\"/api\", \"/\"]\ninitial_read_bytes = 1048576\n",
            path.display()
        ));
        let mut log = qmoi_performance::accesslog::LogState::new(cfg);
        log.poll();
        let _ = log.take(1.0);
    }
}

/// An auth log (sshd lines, both timestamp forms), read by the security monitor.
pub fn auth_log(data: &[u8]) {
    let path = scratch("auth.log");
    write(&path, data);
    let cfg: qmoi_security::config::AuthLogConfig = fixed(&format!(
        "enabled = true\nfiles = [\"{}\"]\ninitial_read_bytes = 1048576\nignore = [\"10.0.0.0/8\"]\n",
        path.display()
    ));
    let Ok(mut log) = qmoi_security::authlog::AuthLog::new(&cfg) else { return };
    log.check(&mut qmoi_core::runner::Collected::default());
}

/// A DNS answer as a server could send it (the first byte picks the record type asked).
pub fn dns(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else { return };
    let qtype = [1u16, 28, 5, 2, 15, 16][usize::from(sel) % 6];
    let id = msg.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let _ = qmoi_api_endpoints::probe::dns::decode_answers(msg, id, qtype);
}

/// An endpoint condition (the first line) checked against a response whose body is the
/// rest.
pub fn conditions(data: &[u8]) {
    let t = text(data);
    let (cond, body) = t.split_once('\n').unwrap_or((&t, ""));
    let Ok(c) = qmoi_api_endpoints::conditions::Condition::parse(cond) else { return };
    let o = qmoi_api_endpoints::conditions::Observation {
        status: Some(200),
        latency: Duration::from_millis(12),
        body: Some(body),
        headers: vec![("content-type".into(), "application/json".into())],
        cert_expiry_days: Some(30.5),
    };
    let _ = c.check(&o, &mut None);
}

/// A backup schedule (`daily`, `weekly sun 02:00`, cron …) and when it was last due.
pub fn backup_schedule(data: &[u8]) {
    let Ok(s) = qmoi_backup::schedule::Schedule::parse(&text(data)) else { return };
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    let _ = s.last_due(now);
    let _ = s.judged_run(now, chrono::Duration::hours(1));
}

/// A `Retry-After` header of a webhook or Alertmanager answer.
pub fn retry_after(data: &[u8]) {
    if let Some(d) = qmoi_core::retry::retry_after(&text(data), Duration::from_secs(3600)) {
        assert!(d <= Duration::from_secs(3600), "Retry-After beyond its cap: {d:?}");
    }
}

/// A backup archive of each format the backup monitor verifies (first byte).
pub fn archive(data: &[u8]) {
    use qmoi_backup::verify::archive::Format;
    let Some((&sel, rest)) = data.split_first() else { return };
    let (format, name) = [
        (Format::Tar, "a.tar"),
        (Format::TarGz, "a.tar.gz"),
        (Format::TarZst, "a.tar.zst"),
        (Format::Zip, "a.zip"),
        (Format::Gz, "a.sql.gz"),
        (Format::Zst, "a.sql.zst"),
    ][usize::from(sel) % 6];
    let path = scratch(name);
    write(&path, rest);
    let _ = qmoi_backup::verify::archive::verify(&path, format);
}

/// A Nagios plugin's output: status text, long text and performance data.
pub fn perfdata(data: &[u8]) {
    let out = qmoi_system_health::plugins::output::parse(&text(data));
    for p in &out.perfdata {
        let _ = p.unit();
    }
}

/// The Prometheus text exposition the remote writer samples.
pub fn exposition(data: &[u8]) {
    let _ = qmoi_remote_write::exposition::parse(&text(data));
}

/// A request to the heartbeat listener: `METHOD URI` on the first line, the body after.
/// It answers 200, 400, 404, 405 or 429, never anything else.
pub fn heartbeat_http(data: &[u8]) {
    use axum::http::{Method, Request, StatusCode};
    use tower_service::Service;
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    static ROUTES: OnceLock<axum::Router> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().build().unwrap_or_else(|e| panic!("a runtime: {e}"))
    });
    let routes = ROUTES.get_or_init(|| {
        let cfg: qmoi_heartbeat::HeartbeatsConfig = fixed(
            "ping_key = \"fuzz-ping-key-0123456789\"\n\
             [[checks]]\nname = \"nightly\"\nuuid = \"5f8e1d2c-3b4a-4c5d-9e6f-7a8b9c0d1e2f\"\nperiod = \"1d\"\n\
             [[checks]]\nname = \"kuma\"\npush_token = \"kuma-push-token-0123\"\ncron = \"0 2 * * *\"\ntz = \"Europe/Berlin\"\n",
        );
        qmoi_heartbeat::listener_routes(&cfg).unwrap_or_else(|e| panic!("the harness's own checks: {e}"))
    });
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = text(head);
    let (method, uri) = head.split_once(' ').unwrap_or(("GET", &head));
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method.as_bytes()), uri.parse::<axum::http::Uri>()) else {
        return;
    };
    let Ok(mut req) = Request::builder().method(method).uri(uri).body(axum::body::Body::from(body.to_vec())) else {
        return;
    };
    req.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))));
    let status = rt
        .block_on(routes.clone().call(req))
        .map(|r| r.status())
        .unwrap_or_else(|e: std::convert::Infallible| match e {});
    assert!(
        [
            StatusCode::OK,
            StatusCode::BAD_REQUEST,
            StatusCode::NOT_FOUND,
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::TOO_MANY_REQUESTS
        ]
        .contains(&status),
        "the listener answered {status}"
    );
}

/// The small parsers of user and outside input, the first byte picking one: labels,
/// durations, cron expressions with a time zone (`expr|tz`), API times, quiet hours,
/// network rules, `/proc/<pid>/stat`, `/proc/net/tcp`, `/proc/mounts`,
/// `/proc/sys/fs/file-nr`, heartbeat path words, months of an SLA report.
pub fn small_parsers(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else { return };
    let t = text(rest);
    match sel % 14 {
        0 => {
            if let Ok(l) = qmoi_core::alerts::parse_labels(&t) {
                // What parses prints as what parses again to the same.
                let again = qmoi_core::alerts::parse_labels(&qmoi_core::alerts::format_labels(&l));
                assert_eq!(again.as_ref(), Ok(&l), "labels do not read back");
            }
        }
        1 => {
            let _ = ConfigDuration::parse(&t);
            let _ = qmoi_core::cli::parse_duration(&t);
        }
        2 => {
            let (expr, tz) = t.split_once('|').map_or((&*t, None), |(e, z)| (e, Some(z)));
            if let Ok(c) = qmoi_core::cron::CronTz::parse(expr, tz) {
                let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
                let _ = c.last_at_or_before(now);
            }
        }
        3 => {
            let _ = qmoi_dashboard::store::parse_time(Some(&t), 0, "from");
        }
        4 => {
            let _ = qmoi_notify::config::parse_hhmm(&t);
        }
        5 => {
            let _ = qmoi_security::netrules::Cidr::parse(&t);
            let _ = qmoi_security::netrules::AllowRule::parse(&t);
            let _ = qmoi_security::netrules::DenyRule::parse(&t);
        }
        6 => {
            let _ = qmoi_core::procfs::PidStat::parse(&t);
        }
        7 => {
            let _ = qmoi_security::network::parse_table(&t, "tcp");
        }
        8 => {
            let _ = qmoi_system_health::checks::disk::parse_mounts(&t);
        }
        9 => {
            let _ = qmoi_system_health::checks::fds::parse_file_nr(&t);
        }
        10 => {
            let _ = qmoi_heartbeat::state::Kind::from_word(Some(&t));
            let _ = qmoi_heartbeat::state::Kind::from_name(&t);
        }
        11 => {
            let _ = qmoi_core::slo::month::bounds(&t);
        }
        12 => {
            let _ = qmoi_system_health::plugins::output::parse_perfdata(&t);
        }
        _ => {
            let _ = qmoi_backup::schedule::Schedule::parse(&t);
        }
    }
}
