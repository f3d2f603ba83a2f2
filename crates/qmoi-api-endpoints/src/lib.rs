//! # qmoi-api-endpoints
//!
//! Availability, latency and error rate of HTTP, TCP, DNS, TLS and ICMP endpoints (Gatus and
//! blackbox_exporter are the peers). Each endpoint is probed on its own schedule, spread
//! over its interval, under a global and a per-host concurrency cap; the report, written
//! every `interval`, summarises every endpoint.
//!
//! - [`config`]: endpoints and their settings; [`conditions`]: `status == 200` & co.
//! - [`probe`]: one module per kind; [`stats`]: thresholds, windows, persistence.
//! - Service level objectives (`slo` on an endpoint): `qmoi_core::slo`, one probe one unit.

pub mod conditions;
pub mod config;
pub mod probe;
pub mod stats;

use conditions::Condition;
use config::{Endpoint, ProbeKind};
use probe::ProbeResult;
use qmoi_core::runner::{Monitor, Outcome, RunContext};
use qmoi_core::slo;
use qmoi_core::{CheckResult, Status};
use stats::EndpointState;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::MutexGuard;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

pub use config::EndpointsConfig;

/// One state per endpoint, in the order of `EndpointsMonitor::endpoints`, each behind its
/// own lock: a probe task locks only its endpoint, the report one endpoint at a time.
type States = Arc<[Mutex<EndpointState>]>;

/// How late probes start against their schedule (waiting for a concurrency slot
/// included), and how many ran: the scheduler's own health.
#[derive(Debug, Default)]
struct SchedulerStats {
    probes: u64,
    /// Lateness of the most recent probe starts, in ms (bounded).
    late_ms: std::collections::VecDeque<f64>,
}

const LATE_SAMPLES: usize = 20_000;

/// How an endpoint is probed, prepared once.
enum Prober {
    Http(reqwest::Client),
    Tcp,
    Tls(Arc<tokio_rustls::rustls::ClientConfig>),
    Dns,
    Icmp,
}

pub struct EndpointsMonitor {
    /// The config without its endpoints (they are in `endpoints`, shared with the tasks).
    cfg: EndpointsConfig,
    endpoints: Vec<Arc<Endpoint>>,
    probers: Vec<Arc<Prober>>,
    /// Each endpoint's conditions, parsed once (endpoints with the same conditions, usually
    /// most of them, share one list).
    conditions: Vec<Arc<[Condition]>>,
    states: States,
    sched: Arc<Mutex<SchedulerStats>>,
    started: bool,
    state_file: PathBuf,
    /// When the state file was last written (unix seconds).
    last_save: std::sync::atomic::AtomicI64,
    /// The endpoints' service level objectives.
    objectives: slo::Objectives,
}

/// The state file is written this often (and when the monitor stops), not every report:
/// a week of history for thousands of endpoints is tens of megabytes.
const SAVE_EVERY_S: i64 = 300;

impl Drop for EndpointsMonitor {
    fn drop(&mut self) {
        if self.started {
            self.save_state();
        }
    }
}

impl EndpointsMonitor {
    /// Build clients and load the state file. A bad CA file or client identity is a
    /// configuration error (the binary exits 2).
    pub fn new(mut cfg: EndpointsConfig) -> Result<Self, String> {
        let state_file = PathBuf::from(cfg.state_file.as_str());
        if let Some(shard) = cfg.shard {
            let all = cfg.endpoints.len();
            cfg.endpoints.retain(|e| shard.owns(&e.name));
            tracing::info!(%shard, probed = cfg.endpoints.len(), configured = all, "Probing this shard's endpoints only.");
        }
        // A week of state for thousands of endpoints is tens of megabytes of JSON: read
        // through a buffer, never held whole.
        let mut states: BTreeMap<String, EndpointState> = qmoi_core::statefile::load(&state_file, "State file");
        // Endpoints no longer configured are dropped from the state.
        let slots: States =
            cfg.endpoints.iter().map(|e| Mutex::new(states.remove(&e.name).unwrap_or_default())).collect();
        drop(states);
        // Build the probers now: a bad CA file or identity fails the start, and endpoints
        // with the same client settings share one client (loading roots is not free).
        let mut http_clients: HashMap<String, reqwest::Client> = HashMap::new();
        let mut tls_configs: HashMap<Option<String>, Arc<tokio_rustls::rustls::ClientConfig>> = HashMap::new();
        let mut probers = Vec::with_capacity(cfg.endpoints.len());
        let mut parsed: HashMap<&[String], Arc<[Condition]>> = HashMap::new();
        let mut conditions = Vec::with_capacity(cfg.endpoints.len());
        for e in &cfg.endpoints {
            let named = |err: String| format!("endpoint '{}': {err}", e.name);
            let c = match parsed.get(e.conditions.as_slice()) {
                Some(c) => c.clone(),
                None => {
                    let c: Arc<[Condition]> = e.conditions().map_err(named)?.into();
                    parsed.insert(&e.conditions, c.clone());
                    c
                }
            };
            conditions.push(c);
            let p = match e.kind {
                ProbeKind::Http => {
                    let key = probe::http::client_key(e);
                    if !http_clients.contains_key(&key) {
                        let c = probe::http::client(e, cfg.reuse_connections).map_err(named)?;
                        http_clients.insert(key.clone(), c);
                    }
                    Prober::Http(http_clients[&key].clone())
                }
                ProbeKind::Tls => {
                    let key = e.ca_file.as_ref().map(|c| c.as_str().to_string());
                    if !tls_configs.contains_key(&key) {
                        let c = probe::tls::verifying_config(e).map_err(named)?;
                        tls_configs.insert(key.clone(), c);
                    }
                    Prober::Tls(tls_configs[&key].clone())
                }
                ProbeKind::Tcp => Prober::Tcp,
                ProbeKind::Dns => Prober::Dns,
                ProbeKind::Icmp => Prober::Icmp,
            };
            probers.push(Arc::new(p));
        }
        // Not `into_iter().map(Arc::new).collect()`: that reuses the config's buffer
        // (hundreds of bytes an endpoint) for the list of pointers and keeps it whole.
        let objectives = slo::Objectives::new(cfg.slo.clone(), qmoi_core::component::API_ENDPOINTS.id);
        let mut endpoints = Vec::with_capacity(cfg.endpoints.len());
        endpoints.extend(std::mem::take(&mut cfg.endpoints).into_iter().map(Arc::new));
        Ok(Self {
            cfg,
            endpoints,
            probers,
            conditions,
            states: slots,
            sched: Arc::default(),
            started: false,
            state_file,
            last_save: std::sync::atomic::AtomicI64::new(now_s()),
            objectives,
        })
    }

    /// Start the scheduler: one task that keeps every endpoint's next probe time in a heap
    /// and starts a short-lived task for each probe when it is due. An idle endpoint costs a
    /// heap entry and its [`Job`], not a parked task with a timer (hundreds of bytes each).
    /// With `single` (`--once`, `--check`) every endpoint is probed exactly once.
    fn start_probing(&self, single: bool) {
        let global = Arc::new(Semaphore::new(self.cfg.concurrency));
        let mut per_host: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let mut jobs = Vec::with_capacity(self.endpoints.len());
        for ((e, p), conditions) in
            self.endpoints.iter().cloned().zip(self.probers.iter().cloned()).zip(self.conditions.iter().cloned())
        {
            let host = per_host
                .entry(e.host())
                .or_insert_with(|| Arc::new(Semaphore::new(self.cfg.per_host_concurrency)))
                .clone();
            jobs.push(Job {
                interval: e.interval.unwrap_or(self.cfg.probe_interval).get(),
                timeout: e.timeout.unwrap_or(self.cfg.timeout).get(),
                e,
                p,
                conditions,
                host,
            });
        }
        let shared = Arc::new(Shared {
            jobs,
            busy: self.endpoints.iter().map(|_| std::sync::atomic::AtomicBool::new(false)).collect(),
            states: self.states.clone(),
            sched: self.sched.clone(),
            global,
            max_body: self.cfg.max_body_bytes,
            tally: self.objectives.tally(),
        });
        tokio::spawn(schedule(shared, single));
    }

    /// Write the state file atomically, streaming one endpoint at a time: each state is
    /// copied under its lock (a microsecond) and serialized outside it, so a probe of that
    /// endpoint never waits for this low-priority thread; the file is never built in memory.
    fn save_state(&self) {
        use std::io::Write as _;
        if let Some(dir) = self.state_file.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        let r = qmoi_core::report::write_atomic_with(&self.state_file, |w| {
            w.write_all(b"{")?;
            for (i, (e, slot)) in self.endpoints.iter().zip(self.states.iter()).enumerate() {
                let st = lock(slot).clone();
                if i > 0 {
                    w.write_all(b",")?;
                }
                serde_json::to_writer(&mut *w, &e.name)?;
                w.write_all(b":")?;
                serde_json::to_writer(&mut *w, &st)?;
            }
            w.write_all(b"}\n")
        });
        if let Err(e) = r {
            tracing::warn!(error = %e, "Cannot save the endpoint state.");
        }
        self.last_save.store(now_s(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// What the scheduler needs to start one endpoint's probe.
struct Job {
    e: Arc<Endpoint>,
    p: Arc<Prober>,
    conditions: Arc<[Condition]>,
    host: Arc<Semaphore>,
    interval: Duration,
    timeout: Duration,
}

/// Shared by the scheduler and the probe tasks it starts.
struct Shared {
    jobs: Vec<Job>,
    /// A probe of this endpoint is running: a slot that comes meanwhile is skipped, so a
    /// slow endpoint is never probed twice at once.
    busy: Box<[std::sync::atomic::AtomicBool]>,
    states: States,
    sched: Arc<Mutex<SchedulerStats>>,
    global: Arc<Semaphore>,
    max_body: usize,
    /// Probes of endpoints with an objective are counted here.
    tally: Arc<slo::Tally>,
}

/// Start every endpoint's probes on time. The first probe of each at once (bounded by the
/// caps), so the first report knows every endpoint; the second after a random part of its
/// interval, then every interval: endpoints are spread over the interval, not probed all
/// at the same moment (no thundering herd).
async fn schedule(shared: Arc<Shared>, single: bool) {
    use std::cmp::Reverse;
    use std::sync::atomic::Ordering;
    let start = tokio::time::Instant::now();
    // (due, endpoint index, first probe): a min-heap by due time.
    let mut due: std::collections::BinaryHeap<Reverse<(tokio::time::Instant, u32, bool)>> =
        (0..shared.jobs.len()).filter_map(|i| u32::try_from(i).ok()).map(|i| Reverse((start, i, true))).collect();
    while let Some(Reverse((at, _, _))) = due.peek().copied() {
        tokio::time::sleep_until(at).await;
        // Everything due by now, in order.
        let now = tokio::time::Instant::now();
        while let Some(Reverse((at, i, first))) = due.peek().copied() {
            if at > now {
                break;
            }
            due.pop();
            let idx = i as usize;
            let Some(job) = shared.jobs.get(idx) else { continue };
            if !shared.busy[idx].swap(true, Ordering::AcqRel) {
                tokio::spawn(probe_once(shared.clone(), idx, at));
            }
            if single {
                continue;
            }
            let next = if first { at + job.interval.mul_f64(fastrand::f64()) } else { at + job.interval };
            // A slot the scheduler reached late is skipped, keeping the endpoint's phase:
            // moving it to "now" would gather every endpoint delayed by the same hiccup onto
            // one instant, and over time the spread schedule would turn into bursts.
            due.push(Reverse((next_slot(next, job.interval, now), i, false)));
        }
    }
}

/// One probe of endpoint `idx` planned for `planned`: wait for the caps, probe (with its
/// retries), record the result.
async fn probe_once(shared: Arc<Shared>, idx: usize, planned: tokio::time::Instant) {
    /// Marks the endpoint idle again however the probe ends (even by a panic).
    struct Idle<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Idle<'_> {
        fn drop(&mut self) {
            self.0.store(false, std::sync::atomic::Ordering::Release);
        }
    }
    let _idle = Idle(&shared.busy[idx]);
    let job = &shared.jobs[idx];
    let result = {
        let _g = shared.global.acquire().await;
        let _h = job.host.acquire().await;
        let late = tokio::time::Instant::now().saturating_duration_since(planned);
        if let Ok(mut s) = shared.sched.lock() {
            s.probes += 1;
            if s.late_ms.len() == LATE_SAMPLES {
                s.late_ms.pop_front();
            }
            s.late_ms.push_back(late.as_secs_f64() * 1000.0);
        }
        // Boxed: a task waiting for a slot then holds a pointer-sized future, not a whole
        // probe state machine (kilobytes; all 5,000 endpoints wait at the first round).
        let mut r = Box::pin(run_probe(&job.p, &job.e, &job.conditions, job.timeout, shared.max_body)).await;
        for _ in 0..job.e.retries {
            if r.ok {
                break;
            }
            r = Box::pin(run_probe(&job.p, &job.e, &job.conditions, job.timeout, shared.max_body)).await;
        }
        r
    };
    let now = chrono::Utc::now().timestamp();
    let e = &job.e;
    // Inside a maintenance window a probe counts for neither the objective nor the
    // availability (the windows are asked once).
    let counted = if e.slo.is_some() {
        shared.tally.count(idx, (&e.name, &e.labels), now, result.ok)
    } else {
        !shared.tally.in_maintenance(now, &e.name, &e.labels)
    };
    let slow = e.latency_warning.map(|d| d.as_secs_f64() * 1000.0);
    lock(&shared.states[idx]).record(result, now, (e.failure_threshold, e.success_threshold), slow, counted);
}

/// The first of `planned`, `planned + interval`, `planned + 2 × interval`, … not before `now`.
fn next_slot(planned: tokio::time::Instant, interval: Duration, now: tokio::time::Instant) -> tokio::time::Instant {
    if planned >= now || interval.is_zero() {
        return planned.max(now);
    }
    let behind = now.duration_since(planned).as_nanos();
    let step = interval.as_nanos();
    let slots = behind.div_ceil(step);
    let ahead = Duration::from_nanos(u64::try_from(slots * step).unwrap_or(u64::MAX));
    planned + ahead
}

async fn run_probe(
    p: &Prober,
    e: &Endpoint,
    conditions: &[Condition],
    timeout: Duration,
    max_body: usize,
) -> ProbeResult {
    match p {
        Prober::Http(c) => probe::http::probe(c, e, conditions, timeout, max_body).await,
        Prober::Tcp => probe::tcp::probe(e, timeout).await,
        Prober::Tls(cfg) => probe::tls::probe(e, cfg, timeout).await,
        Prober::Dns => probe::dns::probe(e, timeout).await,
        Prober::Icmp => probe::icmp::probe(e, timeout).await,
    }
}

impl Monitor for EndpointsMonitor {
    fn start(&mut self, mode: qmoi_core::runner::Mode) -> Result<(), String> {
        let any = self.endpoints.iter().any(|e| e.slo.is_some());
        self.objectives.start(any, mode == qmoi_core::runner::Mode::Check)
    }

    async fn run(&mut self, ctx: &RunContext) -> Outcome {
        if !self.started {
            self.started = true;
            self.start_probing(ctx.single());
            // Let the first probes land before the first report, rather than reporting
            // every endpoint as "not probed yet".
            let wait =
                self.endpoints.iter().map(|e| e.timeout.unwrap_or(self.cfg.timeout).get()).max().unwrap_or_default();
            let deadline = tokio::time::Instant::now() + (wait + Duration::from_secs(1)).min(Duration::from_secs(30));
            while tokio::time::Instant::now() < deadline {
                let all = self.states.iter().all(|slot| lock(slot).probed);
                if all {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut scheduler = None;
        let mut sched_metrics = Vec::new();
        if let Ok(s) = self.sched.lock() {
            let mut late: Vec<f64> = s.late_ms.iter().copied().collect();
            late.sort_by(f64::total_cmp);
            sched_metrics.push(("qmoi_endpoint_probes_total", s.probes as f64));
            if !late.is_empty() {
                let (p50, p99) = (stats::percentile(&late, 0.5), stats::percentile(&late, 0.99));
                sched_metrics.push(("qmoi_endpoint_schedule_lateness_p99_seconds", p99 / 1000.0));
                scheduler = Some(
                    serde_json::json!({"probes_total": s.probes, "lateness_ms": {"p50": p50, "p99": p99, "samples": late.len()}}),
                );
            }
        }
        // Thousands of endpoints take tens of milliseconds to summarise: not on a worker
        // thread that probe tasks are waiting for.
        let targets: Vec<Option<(&str, &slo::SloTarget)>> =
            self.endpoints.iter().map(|e| e.slo.as_ref().map(|t| (e.name.as_str(), t))).collect();
        let objectives = qmoi_core::runner::off_the_workers(|| self.objectives.report(&targets, now_s()));
        let rules = self.objectives.rules();
        let out = qmoi_core::runner::off_the_workers(|| {
            build_outcome(&self.endpoints, &self.states, scheduler, sched_metrics, (objectives, rules))
        });
        if now_s() - self.last_save.load(std::sync::atomic::Ordering::Relaxed) >= SAVE_EVERY_S {
            qmoi_core::runner::off_the_workers(|| self.save_state());
        }
        out
    }
}

fn ms(v: f64) -> String {
    format!("{v:.1} ms")
}

/// What the report needs of one endpoint's state.
struct Summary {
    up: Option<bool>,
    since: Option<i64>,
    last: Option<ProbeResult>,
    last_at: Option<i64>,
    slow_streak: u32,
    err_rate: Option<f64>,
    q1h: Option<[f64; 3]>,
    q24: Option<[f64; 3]>,
    avail: [Option<f64>; 3],
    sum_count: (f64, usize),
}

impl Summary {
    fn of(st: &EndpointState, now: i64) -> Self {
        Self {
            up: st.up,
            since: st.since,
            last: st.last.clone(),
            last_at: st.last_at,
            slow_streak: st.slow_streak,
            err_rate: st.error_rate(),
            q1h: st.quantiles_1h(&[0.5, 0.95, 0.99]),
            q24: st.quantiles_24h(&[0.5, 0.95, 0.99], now),
            avail: [st.availability(3600, now), st.availability(86_400, now), st.availability(7 * 86_400, now)],
            sum_count: st.latency_sum_count_1h(),
        }
    }
}

/// One endpoint in the report's `details.endpoints` (serialized straight to text).
#[derive(serde::Serialize)]
struct EndpointRow<'a> {
    name: &'a str,
    kind: crate::config::ProbeKind,
    target: Option<&'a str>,
    group: &'a Option<String>,
    labels: &'a std::collections::BTreeMap<String, String>,
    up: Option<bool>,
    since: Option<i64>,
    last_probe_at: Option<i64>,
    last_result: String,
    last_status_code: Option<u16>,
    latency_ms: Option<f64>,
    latency_1h_ms: Option<Quantiles>,
    latency_24h_ms: Option<Quantiles>,
    availability_percent: Windows,
    error_rate_percent: Option<f64>,
    cert_expiry_days: Option<f64>,
    insecure: bool,
}

#[derive(serde::Serialize)]
struct Quantiles {
    p50: f64,
    p95: f64,
    p99: f64,
}

#[derive(serde::Serialize)]
struct Windows {
    #[serde(rename = "1h")]
    h1: Option<f64>,
    #[serde(rename = "24h")]
    h24: Option<f64>,
    #[serde(rename = "7d")]
    d7: Option<f64>,
}

/// An endpoint's state. A probe task that panicked while holding it cannot have left it
/// half-updated in a way that matters more than losing it, so a poisoned lock is used.
fn lock(slot: &Mutex<EndpointState>) -> MutexGuard<'_, EndpointState> {
    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn reason_of(st: &Summary) -> String {
    st.last.as_ref().map(ProbeResult::reason).unwrap_or_else(|| "not probed yet".into())
}

fn latency_ms_of(st: &Summary) -> Option<f64> {
    st.last.as_ref().map(|l| l.latency.as_secs_f64() * 1000.0)
}

/// The checks of every endpoint; metrics and details are written into the report file by
/// [`EndpointStream`] without being built in memory first.
fn build_outcome(
    endpoints: &[Arc<Endpoint>],
    states: &States,
    scheduler: Option<serde_json::Value>,
    extra_metrics: Vec<(&'static str, f64)>,
    (objectives, rules): ((Vec<slo::SloStatus>, Option<String>), &[config::BurnAlert]),
) -> Outcome {
    let now = chrono::Utc::now().timestamp();
    // Sized up front: grown by doubling, the list of 5,000 checks would briefly exist twice.
    let mut checks = Vec::with_capacity(endpoints.len() + 1);
    // One summary per endpoint (~200 bytes), shared by the checks, metrics and details.
    // Each endpoint's state is copied under its own lock and summarised outside it: this
    // runs at a low priority, and a probe recording its result must not wait for it.
    let summaries: Vec<Summary> = states
        .iter()
        .map(|slot| {
            let st = lock(slot).clone();
            Summary::of(&st, now)
        })
        .collect();
    for (e, st) in endpoints.iter().zip(&summaries) {
        endpoint_checks(e, st, &mut checks);
    }
    if endpoints.is_empty() {
        checks.push(CheckResult::ok("endpoints", "no endpoints configured (or none in this host's shard)"));
    }
    let (slos, problem) = objectives;
    checks.extend(slos.iter().map(|s| slo::check(s, rules)));
    if let Some(p) = problem {
        checks.push(CheckResult::new("slo", Status::Warning, p).with_title("Service level objectives cannot be kept"));
    }
    // Their labels go into their alerts (and maintenance windows of labels match them).
    let labelled: std::collections::HashMap<&str, &qmoi_core::report::Labels> =
        endpoints.iter().filter(|e| !e.labels.is_empty()).map(|e| (e.name.as_str(), &e.labels)).collect();
    if !labelled.is_empty() {
        qmoi_core::alerts::label_by_subject(&mut checks, |s| labelled.get(s).copied());
    }
    let stream = EndpointStream { endpoints: endpoints.to_vec(), summaries, scheduler, extra_metrics, slos };
    Outcome { checks, streamed: qmoi_core::report::Streamed::new(stream), ..Outcome::default() }
}

fn endpoint_checks(e: &Endpoint, st: &Summary, checks: &mut Vec<CheckResult>) {
    let name = &e.name;
    let last = st.last.as_ref();
    let reason = reason_of(st);
    let down_status = if e.critical { Status::Critical } else { Status::Warning };
    let check = match st.up {
        None if last.is_none() => CheckResult::unknown(format!("endpoint:{name}"), format!("{name}: not probed yet")),
        None => {
            CheckResult::ok(format!("endpoint:{name}"), format!("{name}: {reason} (deciding: thresholds not met yet)"))
        }
        Some(true) => CheckResult::ok(format!("endpoint:{name}"), format!("{name} up ({reason})")),
        Some(false) => CheckResult::new(format!("endpoint:{name}"), down_status, format!("{name} down: {reason}"))
            .with_title(format!("Endpoint {name} is down")),
    };
    let latency_ms = latency_ms_of(st);
    checks.push(match latency_ms {
        Some(v) => check.with_value((v * 100.0).round() / 100.0, "ms"),
        None => check,
    });
    if let (Some(limit), true) = (e.latency_warning, st.slow_streak >= e.latency_probes) {
        checks.push(
            CheckResult::new(
                format!("latency:{name}"),
                Status::Warning,
                format!(
                    "{name}: {} probes in a row slower than {limit} (last {})",
                    st.slow_streak,
                    ms(latency_ms.unwrap_or(f64::NAN))
                ),
            )
            .with_title(format!("Endpoint {name} is slow")),
        );
    }
    if let (Some(limit), Some(rate)) = (e.error_rate_warning, st.err_rate)
        && rate > limit
    {
        checks.push(
            CheckResult::new(
                format!("error_rate:{name}"),
                Status::Warning,
                format!("{name}: {rate:.0}% of the last probes failed (limit {limit}%)"),
            )
            .with_title(format!("Endpoint {name} fails often")),
        );
    }
    let cert_days = last.and_then(|l| l.cert_expiry_days);
    if let Some(invalid) = last.and_then(|l| l.cert_invalid.clone()) {
        checks.push(
            CheckResult::new(format!("certificate:{name}"), Status::Critical, invalid)
                .with_title(format!("Certificate of {name} is invalid")),
        );
    } else if let Some(days) = cert_days {
        let c = if days <= 0.0 {
            CheckResult::new(
                format!("certificate:{name}"),
                Status::Critical,
                format!("{name}: certificate expired {:.1} days ago", -days),
            )
        } else if days < e.cert_expiry_warning_days {
            CheckResult::new(
                format!("certificate:{name}"),
                Status::Warning,
                format!("{name}: certificate expires in {days:.1} days"),
            )
        } else {
            CheckResult::ok(format!("certificate:{name}"), format!("{name}: certificate valid for {days:.0} more days"))
        };
        checks.push(
            c.with_value((days * 10.0).round() / 10.0, "days")
                .with_title(format!("Certificate of {name} expires soon")),
        );
    }
}

/// Every metric of one endpoint, as (key, value).
fn endpoint_metrics(
    e: &Endpoint,
    st: &Summary,
    put: &mut dyn FnMut(&str, f64) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let label = format!("{{endpoint=\"{}\"}}", e.name.replace('\\', "\\\\").replace('"', "\\\""));
    let inner = label.trim_end_matches('}');
    let last = st.last.as_ref();
    match st.up {
        Some(true) => put(&format!("qmoi_endpoint_up{label}"), 1.0)?,
        Some(false) => put(&format!("qmoi_endpoint_up{label}"), 0.0)?,
        None => {}
    }
    if let Some(v) = latency_ms_of(st) {
        put(&format!("qmoi_endpoint_last_latency_seconds{label}"), v / 1000.0)?;
    }
    if let Some(q) = &st.q1h {
        // A Prometheus summary: quantiles, sum and count over the last hour.
        for (qn, v) in ["0.5", "0.95", "0.99"].iter().zip(q) {
            put(&format!("qmoi_endpoint_latency_seconds{inner},quantile=\"{qn}\"}}"), v / 1000.0)?;
        }
        let (sum, count) = st.sum_count;
        put(&format!("qmoi_endpoint_latency_seconds_sum{label}"), sum / 1000.0)?;
        put(&format!("qmoi_endpoint_latency_seconds_count{label}"), count as f64)?;
    }
    for (w, a) in [("1h", st.avail[0]), ("24h", st.avail[1]), ("7d", st.avail[2])] {
        if let Some(a) = a {
            put(&format!("qmoi_endpoint_availability_ratio{inner},window=\"{w}\"}}"), a / 100.0)?;
        }
    }
    if let Some(r) = st.err_rate {
        put(&format!("qmoi_endpoint_error_rate_ratio{label}"), r / 100.0)?;
    }
    if let Some(d) = last.and_then(|l| l.cert_expiry_days) {
        put(&format!("qmoi_endpoint_cert_expiry_days{label}"), d)?;
    }
    if let Some(code) = last.and_then(|l| l.status_code) {
        put(&format!("qmoi_endpoint_status_code{label}"), f64::from(code))?;
    }
    Ok(())
}

fn endpoint_row<'a>(e: &'a Endpoint, st: &Summary) -> EndpointRow<'a> {
    let latency_ms = latency_ms_of(st);
    let reason = reason_of(st);
    let last = st.last.as_ref();
    EndpointRow {
        name: &e.name,
        kind: e.kind,
        target: e.url.as_ref().or(e.target.as_ref()).map(|t| t.as_str()),
        group: &e.group,
        labels: &e.labels,
        up: st.up,
        since: st.since,
        last_probe_at: st.last_at,
        last_result: reason,
        last_status_code: last.and_then(|l| l.status_code),
        latency_ms: latency_ms.map(|v| (v * 100.0).round() / 100.0),
        latency_1h_ms: st.q1h.as_ref().map(|q| Quantiles { p50: q[0], p95: q[1], p99: q[2] }),
        latency_24h_ms: st.q24.as_ref().map(|q| Quantiles { p50: q[0], p95: q[1], p99: q[2] }),
        availability_percent: Windows { h1: st.avail[0], h24: st.avail[1], d7: st.avail[2] },
        error_rate_percent: st.err_rate,
        cert_expiry_days: last.and_then(|l| l.cert_expiry_days),
        insecure: e.insecure,
    }
}

/// Writes `metrics` and `details` into the report file one endpoint at a time. For 5,000
/// endpoints these are ~60,000 metrics and ~4 MB of details; built in memory first (a map
/// of key strings, a table, the details text) they cost ~12 MB at every report.
struct EndpointStream {
    endpoints: Vec<Arc<Endpoint>>,
    summaries: Vec<Summary>,
    scheduler: Option<serde_json::Value>,
    extra_metrics: Vec<(&'static str, f64)>,
    slos: Vec<slo::SloStatus>,
}

impl qmoi_core::report::StreamParts for EndpointStream {
    fn write_metrics(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut first = true;
        w.write_all(b"{")?;
        let mut put = |key: &str, v: f64| -> std::io::Result<()> {
            if !v.is_finite() {
                return Ok(());
            }
            if !first {
                w.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(&mut *w, key)?;
            w.write_all(b":")?;
            serde_json::to_writer(&mut *w, &v)?;
            Ok(())
        };
        for (k, v) in &self.extra_metrics {
            put(k, *v)?;
        }
        for (e, st) in self.endpoints.iter().zip(&self.summaries) {
            endpoint_metrics(e, st, &mut put)?;
        }
        for s in &self.slos {
            slo::metrics(s, "endpoint", &mut put)?;
        }
        w.write_all(b"}")
    }

    fn write_details(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let out = DetailsOut { endpoints: Rows(self), scheduler: self.scheduler.as_ref(), slo: &self.slos };
        serde_json::to_writer(w, &out)?;
        Ok(())
    }
}

/// `details.endpoints`, each row made while it is written.
struct Rows<'a>(&'a EndpointStream);

impl serde::Serialize for Rows<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.endpoints.len()))?;
        for (e, st) in self.0.endpoints.iter().zip(&self.0.summaries) {
            seq.serialize_element(&endpoint_row(e, st))?;
        }
        seq.end()
    }
}

#[derive(serde::Serialize)]
struct DetailsOut<'a> {
    endpoints: Rows<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduler: Option<&'a serde_json::Value>,
    /// One row per endpoint with an objective.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    slo: &'a [slo::SloStatus],
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_probe_skips_missed_slots_but_keeps_its_phase() {
        let t0 = tokio::time::Instant::now();
        let s = Duration::from_secs(1);
        let ms = Duration::from_millis;
        assert_eq!(next_slot(t0 + ms(300), s, t0), t0 + ms(300), "not due yet: unchanged");
        assert_eq!(next_slot(t0, s, t0), t0);
        // 20 ms late: the next slot, one interval on, not "now".
        assert_eq!(next_slot(t0, s, t0 + ms(20)), t0 + s);
        // A probe that took 2.5 intervals: three slots on, same phase.
        assert_eq!(next_slot(t0 + ms(250), s, t0 + ms(2_600)), t0 + ms(3_250));
        assert_eq!(next_slot(t0, Duration::ZERO, t0 + ms(5)), t0 + ms(5));
    }
}
