//! # qmoi-cloud
//!
//! Cloud resources as an operator needs them on one page: for each configured AWS account,
//! Azure subscription set or GCP project set, the instances (state, type, zone, launch
//! time, status checks), block volumes and public IPs, the CPU of running instances, and
//! the month's spend against a budget. It raises:
//!
//! - a critical alert when an instance marked critical is not running, and when status
//!   checks fail (warning for other instances);
//! - CPU above `cpu_warning` / `cpu_critical` over the last `cpu_window`;
//! - forecast spend at 80% / 100% of the monthly budget; a daily cost anomaly;
//! - info findings for waste: unattached volumes, unassociated IPs, idle instances;
//! - one `unknown` check per failed API call (bad credentials, throttling, permission
//!   denied), with the provider's message; the other APIs and providers go on.
//!
//! Each provider is listed concurrently (regions / subscriptions / projects and the APIs
//! within them in parallel, bounded by `max_concurrency`). Metric queries run at most
//! every `utilisation_interval`, idle detection every `idle_check_interval`, and cost
//! queries (billed per call) every `cost_refresh`, cached on disk across restarts.
//!
//! It only reads: every API it calls is a list / describe / query.

pub mod aws;
pub mod azure;
pub mod config;
pub mod cost;
pub mod findings;
pub mod gcp;
pub mod model;
pub mod rest;
pub mod sigv4;
pub mod tables;
pub mod token;
pub mod xml;

pub use config::CloudConfig;

use chrono::{DateTime, Utc};
use config::{Provider, ProviderKind};
use findings::{Collection, InstanceRow};
use model::{ApiError, CostData, CpuSeries, Instance, Inventory};
use qmoi_core::runner::{Monitor, Outcome, RunContext};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Metric datapoints for the "last hour" CPU are asked at this period.
const CPU_PERIOD: Duration = Duration::from_secs(300);
const DAY: Duration = Duration::from_secs(86_400);

/// A provider's API client.
#[derive(Debug)]
pub enum Client {
    Aws(Box<aws::Aws>),
    Azure(azure::Azure),
    Gcp(gcp::Gcp),
}

impl Client {
    pub async fn connect(p: &Provider, cfg: &CloudConfig) -> Result<Self, ApiError> {
        let (t, n) = (cfg.request_timeout.get(), cfg.max_concurrency);
        Ok(match p.kind {
            ProviderKind::Aws => Client::Aws(Box::new(aws::Aws::new(p, t, n).await?)),
            ProviderKind::Azure => Client::Azure(azure::Azure::new(p, t, n)?),
            ProviderKind::Gcp => Client::Gcp(gcp::Gcp::new(p, t, n)?),
        })
    }

    pub async fn inventory(&self, p: &Provider) -> Inventory {
        match self {
            Client::Aws(c) => c.inventory(p).await,
            Client::Azure(c) => c.inventory(p).await,
            Client::Gcp(c) => c.inventory(p).await,
        }
    }

    pub async fn cpu(
        &self,
        i: &[&Instance],
        window: Duration,
        period: Duration,
        errors: &mut Vec<ApiError>,
    ) -> CpuSeries {
        if i.is_empty() {
            return CpuSeries::new();
        }
        match self {
            Client::Aws(c) => c.cpu(i, window, period, errors).await,
            Client::Azure(c) => c.cpu(i, window, period, errors).await,
            Client::Gcp(c) => c.cpu(i, window, period, errors).await,
        }
    }

    /// Daily cost from `from` to `to` (inclusive); `None` when the provider has no cost
    /// source configured (GCP without a billing export table).
    pub async fn cost(&self, from: chrono::NaiveDate, to: chrono::NaiveDate) -> Result<Option<CostData>, ApiError> {
        match self {
            Client::Aws(c) => c.cost(from, to).await.map(Some),
            Client::Azure(c) => c.cost(from, to).await.map(Some),
            Client::Gcp(c) => c.cost(from, to).await,
        }
    }

    fn requests(&self) -> u64 {
        match self {
            Client::Aws(c) => c.rest.requests(),
            Client::Azure(c) => c.rest.requests(),
            Client::Gcp(c) => c.rest.requests(),
        }
    }
}

/// Per provider: its client (built on first use, rebuilt after a setup failure) and
/// what is cached between runs.
#[derive(Debug)]
struct Slot {
    provider: Provider,
    client: Option<Arc<Client>>,
    cpu: Option<model::Stamped<CpuSeries>>,
    idle: Option<model::Stamped<model::IdleSet>>,
}

#[derive(Debug)]
pub struct CloudMonitor {
    cfg: CloudConfig,
    slots: Vec<Slot>,
    cache_path: PathBuf,
    cache: cost::Cache,
    /// Keep the last run's inventory (for `--check`'s tables).
    keep: bool,
    last: Vec<LastRun>,
}

/// What `--check` prints for one provider.
#[derive(Debug)]
pub struct LastRun {
    pub provider: String,
    pub instances: Vec<Instance>,
    pub volumes: Vec<model::Volume>,
    pub ips: Vec<model::PublicIp>,
    pub waste: Vec<findings::Waste>,
}

impl CloudMonitor {
    /// `only`: limit to the providers with this name or type (`--provider`).
    pub fn new(cfg: &CloudConfig, only: Option<&str>) -> Result<Self, String> {
        let slots: Vec<Slot> = cfg
            .providers
            .iter()
            .filter(|p| p.enabled)
            .filter(|p| only.is_none_or(|o| p.name == o || p.kind.as_str() == o))
            .map(|p| Slot { provider: p.clone(), client: None, cpu: None, idle: None })
            .collect();
        if let Some(o) = only
            && slots.is_empty()
        {
            let names: Vec<&str> = cfg.providers.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "no enabled provider named or of type '{o}' (configured: {})",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ));
        }
        let cache_path = PathBuf::from(cfg.data_dir.as_str()).join("cloud_cost_cache.json");
        let cache = cost::Cache::load(&cache_path);
        Ok(Self { cfg: cfg.clone(), slots, cache_path, cache, keep: false, last: Vec::new() })
    }

    /// Keep each run's inventory for [`CloudMonitor::last`] (`--check`).
    #[must_use]
    pub fn keep_inventory(mut self) -> Self {
        self.keep = true;
        self
    }

    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.slots.iter().map(|s| &s.provider)
    }

    /// The last run's inventory per provider (with [`CloudMonitor::keep_inventory`]).
    pub fn last(&self) -> &[LastRun] {
        &self.last
    }
}

/// Collect one provider: inventory every run; CPU, idle and cost when due.
async fn collect(
    slot: &mut Slot,
    cfg: &CloudConfig,
    cached: Option<cost::Cached>,
    now: DateTime<Utc>,
) -> (Collection, Option<cost::Cached>) {
    let mut c = Collection::default();
    let client = match &slot.client {
        Some(cl) => cl.clone(),
        None => match Client::connect(&slot.provider, cfg).await {
            Ok(cl) => {
                let cl = Arc::new(cl);
                slot.client = Some(cl.clone());
                cl
            }
            Err(e) => {
                c.setup_error = Some(e.message);
                return (c, None);
            }
        },
    };
    let p = &slot.provider;
    let t0 = std::time::Instant::now();
    c.inventory = client.inventory(p).await;
    tracing::info!(
        provider = %p.name,
        instances = c.inventory.instances.len(),
        volumes = c.inventory.volumes.len(),
        ips = c.inventory.ips.len(),
        errors = c.inventory.errors.len(),
        secs = t0.elapsed().as_secs_f64(),
        "Inventory listed."
    );
    let age = |t: DateTime<Utc>| (now - t).to_std().unwrap_or_default();
    let running: Vec<&Instance> =
        c.inventory.instances.iter().filter(|i| i.state == model::InstanceState::Running).collect();
    let mut errors = Vec::new();
    // CPU over the last window: at most every utilisation_interval.
    let cpu_due =
        slot.cpu.as_ref().is_none_or(|(t, _)| age(*t) + Duration::from_secs(1) >= cfg.utilisation_interval.get());
    if cpu_due && !running.is_empty() {
        let t0 = std::time::Instant::now();
        let series = client.cpu(&running, cfg.cpu_window.get(), CPU_PERIOD, &mut errors).await;
        tracing::info!(provider = %p.name, instances = series.len(), secs = t0.elapsed().as_secs_f64(), "CPU fetched.");
        slot.cpu = Some((now, Arc::new(series)));
    }
    // Idle: daily averages over idle_days, at most every idle_check_interval.
    let idle_due =
        slot.idle.as_ref().is_none_or(|(t, _)| age(*t) + Duration::from_secs(1) >= cfg.idle_check_interval.get());
    if idle_due {
        let t0 = std::time::Instant::now();
        let daily = client.cpu(&running, DAY * cfg.idle_days, DAY, &mut errors).await;
        let idle = findings::idle(&c.inventory.instances, &daily, cfg.idle_days, cfg.idle_cpu_percent);
        tracing::info!(provider = %p.name, idle = idle.len(), secs = t0.elapsed().as_secs_f64(), "Idle check done.");
        slot.idle = Some((now, Arc::new(idle)));
    }
    c.cpu = slot.cpu.clone();
    c.idle = slot.idle.clone();
    // Cost: from the disk cache unless due.
    let mut update = None;
    if p.cost {
        let cached = cached.unwrap_or_default();
        if cached.due(now, cfg.cost_refresh.get(), cfg.cost_retry.get()) {
            let (from, to) = cost::range(now.date_naive());
            let mut next = cached.clone();
            match client.cost(from, to).await {
                Ok(Some(data)) => {
                    next.data = Some(data);
                    next.fetched_at = Some(now);
                    next.error = None;
                    next.failed_at = None;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("{}: cost: {}: {}", p.name, e.api, e.message);
                    next.error = Some(format!("{}: {}: {}", e.api, e.kind.as_str(), e.message));
                    next.failed_at = Some(now);
                }
            }
            update = Some(next);
        }
    }
    c.inventory.errors.extend(errors);
    c.inventory.requests = client.requests();
    (c, update)
}

impl Monitor for CloudMonitor {
    async fn run(&mut self, ctx: &RunContext) -> Outcome {
        let now = Utc::now();
        let cfg = &self.cfg;
        let timeout = ctx.check_timeout;
        let cache = &self.cache;
        let results = futures_util::future::join_all(self.slots.iter_mut().map(|slot| {
            let cached = cache.providers.get(&slot.provider.name).cloned();
            async move {
                let since = std::time::Instant::now();
                let (mut c, update) = match tokio::time::timeout(timeout, collect(slot, cfg, cached, now)).await {
                    Ok(r) => r,
                    Err(_) => (Collection { timed_out: true, ..Collection::default() }, None),
                };
                c.duration = since.elapsed();
                (c, update)
            }
        }))
        .await;
        let mut dirty = false;
        for (slot, (_, update)) in self.slots.iter().zip(&results) {
            if let Some(u) = update {
                self.cache.providers.insert(slot.provider.name.clone(), u.clone());
                dirty = true;
            }
        }
        let mut out = qmoi_core::runner::Collected::default();
        let mut alerts = Vec::new();
        if dirty && let Err(e) = self.cache.save(&self.cache_path) {
            out.check(qmoi_core::CheckResult::unknown(
                "cost_cache",
                format!("cannot save the cost cache (costs will be fetched again next run): {e}"),
            ));
        }
        if self.slots.is_empty() {
            out.check(qmoi_core::CheckResult::ok(
                "providers",
                "no cloud providers configured (add [[providers]] to config/cloud_resources.toml)",
            ));
        }
        let mut summaries = Vec::new();
        let mut waste_rows = Vec::new();
        self.last.clear();
        let max = self.cfg.max_inventory_rows;
        let (mut instance_rows, mut volume_rows, mut ip_rows) = (Vec::new(), Vec::new(), Vec::new());
        let (mut n_instances, mut n_volumes, mut n_ips) = (0usize, 0usize, 0usize);
        for (slot, (c, _)) in self.slots.iter().zip(&results) {
            let p = &slot.provider;
            let f = findings::analyze(&self.cfg, p, c, self.cache.providers.get(&p.name), now);
            out.extend(f.out);
            out.took(&format!("provider:{}", p.name), c.duration);
            alerts.extend(f.alerts);
            summaries.push(f.summary);
            n_instances += c.inventory.instances.len();
            n_volumes += c.inventory.volumes.len();
            n_ips += c.inventory.ips.len();
            // Rows borrow the inventory: serialized straight to the report's JSON text,
            // never built as a tree of values (thousands of instances).
            instance_rows.extend(rows_of_instances(&p.name, c, max.saturating_sub(instance_rows.len())));
            volume_rows.extend(
                c.inventory
                    .volumes
                    .iter()
                    .take(max.saturating_sub(volume_rows.len()))
                    .map(|v| Row { provider: &p.name, item: v }),
            );
            ip_rows.extend(
                c.inventory
                    .ips
                    .iter()
                    .take(max.saturating_sub(ip_rows.len()))
                    .map(|v| Row { provider: &p.name, item: v }),
            );
            waste_rows.extend(f.waste.iter().take(max).cloned());
            if self.keep {
                self.last.push(LastRun {
                    provider: p.name.clone(),
                    instances: c.inventory.instances.clone(),
                    volumes: c.inventory.volumes.clone(),
                    ips: c.inventory.ips.clone(),
                    waste: f.waste,
                });
            }
        }
        let details = qmoi_core::report::Details::of(&Details {
            providers: summaries,
            instances: instance_rows,
            instances_total: n_instances,
            volumes: volume_rows,
            volumes_total: n_volumes,
            public_ips: ip_rows,
            public_ips_total: n_ips,
            waste: waste_rows,
        });
        let mut outcome = out.into_outcome();
        outcome.details = details;
        outcome.alerts = alerts;
        outcome
    }
}

/// At most `room` inventory rows of one provider's instances, with their CPU and whether
/// they are idle.
fn rows_of_instances<'a>(provider: &'a str, c: &'a Collection, room: usize) -> impl Iterator<Item = InstanceRow<'a>> {
    let cpu = c.cpu.as_ref().map(|(_, s)| s.as_ref());
    let idle = c.idle.as_ref().map(|(_, s)| s.as_ref());
    c.inventory.instances.iter().take(room).map(move |i| InstanceRow {
        provider,
        instance: i,
        cpu: cpu.and_then(|s| s.get(&i.id)).and_then(|v| findings::mean(v)).map(|v| (v * 10.0).round() / 10.0),
        idle: idle.is_some_and(|s| s.contains_key(&i.id)),
    })
}

/// The report's `details`.
#[derive(serde::Serialize)]
struct Details<'a> {
    providers: Vec<serde_json::Value>,
    instances: Vec<InstanceRow<'a>>,
    instances_total: usize,
    volumes: Vec<Row<'a, model::Volume>>,
    volumes_total: usize,
    public_ips: Vec<Row<'a, model::PublicIp>>,
    public_ips_total: usize,
    waste: Vec<findings::Waste>,
}

/// An inventory item with its provider's name.
#[derive(serde::Serialize)]
struct Row<'a, T> {
    provider: &'a str,
    #[serde(flatten)]
    item: &'a T,
}
