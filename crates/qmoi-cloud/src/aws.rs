//! AWS: EC2 inventory (`DescribeInstances`, `DescribeInstanceStatus`, `DescribeVolumes`,
//! `DescribeAddresses`) per region, CPU from CloudWatch `GetMetricData`, cost from Cost
//! Explorer `GetCostAndUsage`. Credentials come from the SDK's default chain (environment,
//! profile incl. SSO / assume-role / credential_process, web identity, instance role).

use crate::config::Provider;
use crate::model::{
    ApiError, CostData, CpuSeries, ErrorKind, Instance, Inventory, PublicIp, State, StatusCheck, Volume,
};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// CloudWatch accepts at most 500 metric queries per `GetMetricData` call.
const QUERIES_PER_CALL: usize = 500;
/// Instances and volumes per page: the SDK holds a whole answer (and its parsed form) in
/// memory, and regions are listed at once; 500 keeps a 5,000-instance inventory under
/// 40 MiB for a few more round trips.
const PAGE: i32 = 500;
/// `GetMetricData` calls in flight at once.
const METRIC_CALLS_AT_ONCE: usize = 2;

#[derive(Debug)]
pub struct Aws {
    name: String,
    regions: Vec<String>,
    sdk: SdkConfig,
    limit: Arc<Semaphore>,
    /// One `DescribeInstances` page at a time across regions: a page of 500 instances is
    /// ~5 MB of XML plus its parsed form, held by the SDK until we have read it.
    pages: Semaphore,
    requests: std::sync::atomic::AtomicU64,
}

impl Aws {
    pub async fn new(p: &Provider, request_timeout: Duration, concurrency: usize) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(p.regions.first().cloned().unwrap_or_else(|| "us-east-1".into())))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(4))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(request_timeout.min(Duration::from_secs(10)))
                    .operation_attempt_timeout(request_timeout)
                    .build(),
            );
        if let Some(profile) = &p.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &p.endpoint_url {
            loader = loader.endpoint_url(url.as_str());
        }
        Self {
            name: p.name.clone(),
            regions: p.regions.clone(),
            sdk: loader.load().await,
            limit: Arc::new(Semaphore::new(concurrency.max(1))),
            pages: Semaphore::new(1),
            requests: Default::default(),
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn ec2(&self, region: &str) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(&self.sdk).region(Region::new(region.to_string())).build(),
        )
    }

    fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&self.sdk).region(Region::new(region.to_string())).build(),
        )
    }

    async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.limit.acquire().await.ok()
    }

    /// Every region concurrently; within a region the four listings concurrently.
    pub async fn inventory(&self, p: &Provider) -> Inventory {
        let per_region = futures_util::future::join_all(self.regions.iter().map(|r| self.region(p, r))).await;
        Inventory::merge(self.regions.clone(), per_region, self.requests())
    }

    async fn region(&self, p: &Provider, region: &str) -> Inventory {
        let ec2 = self.ec2(region);
        let (instances, statuses, volumes, ips) = tokio::join!(
            self.instances(&ec2, p, region),
            self.statuses(&ec2, region),
            self.volumes(&ec2, p, region),
            self.addresses(&ec2, p, region)
        );
        let mut inv = Inventory::default();
        let mut statuses = statuses.unwrap_or_else(|e| {
            inv.errors.push(e);
            HashMap::new()
        });
        match instances {
            Ok(mut list) => {
                for i in &mut list {
                    i.status_check = statuses.remove(&i.id);
                }
                inv.instances = list;
            }
            Err(e) => inv.errors.push(e),
        }
        match volumes {
            Ok(v) => inv.volumes = v,
            Err(e) => inv.errors.push(e),
        }
        match ips {
            Ok(v) => inv.ips = v,
            Err(e) => inv.errors.push(e),
        }
        inv
    }

    async fn instances(
        &self,
        ec2: &aws_sdk_ec2::Client,
        p: &Provider,
        region: &str,
    ) -> Result<Vec<Instance>, ApiError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let _one_page = self.pages.acquire().await;
            let page = {
                let _p = self.permit().await;
                ec2.describe_instances().max_results(PAGE).set_next_token(token).send().await
            }
            .map_err(|e| sdk_error("ec2:DescribeInstances", region, &e))?;
            for res in page.reservations() {
                for i in res.instances() {
                    let Some(id) = i.instance_id() else { continue };
                    let tags: HashMap<&str, &str> =
                        i.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or("")))).collect();
                    let name = tags.get("Name").copied().unwrap_or("").to_string();
                    let raw = i.state().and_then(|s| s.name()).map_or("unknown", |n| n.as_str()).to_string();
                    out.push(Instance {
                        critical: p.is_critical(id, &name) || tags.get("qmoi-critical").is_some_and(|v| *v == "true"),
                        id: id.to_string(),
                        name,
                        account: p.profile.clone().unwrap_or_default(),
                        region: region.to_string(),
                        zone: i.placement().and_then(|pl| pl.availability_zone()).unwrap_or("").to_string(),
                        itype: i.instance_type().map_or("", |t| t.as_str()).to_string(),
                        state: state(&raw),
                        raw_state: raw,
                        launched: i.launch_time().and_then(smithy_time),
                        resource: String::new(),
                        status_check: None,
                    });
                }
            }
            token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn statuses(
        &self,
        ec2: &aws_sdk_ec2::Client,
        region: &str,
    ) -> Result<HashMap<String, StatusCheck>, ApiError> {
        let mut out = HashMap::new();
        let mut token = None;
        loop {
            let page = {
                let _p = self.permit().await;
                ec2.describe_instance_status().max_results(1000).set_next_token(token).send().await
            }
            .map_err(|e| sdk_error("ec2:DescribeInstanceStatus", region, &e))?;
            for s in page.instance_statuses() {
                let Some(id) = s.instance_id() else { continue };
                let word = |x: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
                    x.and_then(|x| x.status()).map_or("unknown", |v| v.as_str()).to_string()
                };
                out.insert(
                    id.to_string(),
                    StatusCheck { instance: word(s.instance_status()), system: word(s.system_status()) },
                );
            }
            token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn volumes(&self, ec2: &aws_sdk_ec2::Client, p: &Provider, region: &str) -> Result<Vec<Volume>, ApiError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = {
                let _p = self.permit().await;
                ec2.describe_volumes().max_results(PAGE).set_next_token(token).send().await
            }
            .map_err(|e| sdk_error("ec2:DescribeVolumes", region, &e))?;
            for v in page.volumes() {
                let Some(id) = v.volume_id() else { continue };
                let attached_to =
                    v.attachments().iter().find_map(|a| a.instance_id()).filter(|s| !s.is_empty()).map(str::to_string);
                let in_use = v.state().is_some_and(|s| s.as_str() == "in-use");
                out.push(Volume {
                    id: id.to_string(),
                    name: v
                        .tags()
                        .iter()
                        .find(|t| t.key() == Some("Name"))
                        .and_then(|t| t.value())
                        .unwrap_or("")
                        .to_string(),
                    account: p.profile.clone().unwrap_or_default(),
                    region: region.to_string(),
                    size_gb: v.size().map(f64::from),
                    attached: in_use || attached_to.is_some(),
                    attached_to,
                    created: v.create_time().and_then(smithy_time),
                });
            }
            token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn addresses(
        &self,
        ec2: &aws_sdk_ec2::Client,
        p: &Provider,
        region: &str,
    ) -> Result<Vec<PublicIp>, ApiError> {
        let page = {
            let _p = self.permit().await;
            ec2.describe_addresses().send().await
        }
        .map_err(|e| sdk_error("ec2:DescribeAddresses", region, &e))?;
        Ok(page
            .addresses()
            .iter()
            .filter_map(|a| {
                let address = a.public_ip()?.to_string();
                let attached_to = present(a.instance_id()).or(present(a.network_interface_id())).map(str::to_string);
                Some(PublicIp {
                    id: present(a.allocation_id()).unwrap_or(&address).to_string(),
                    address,
                    account: p.profile.clone().unwrap_or_default(),
                    region: region.to_string(),
                    associated: present(a.association_id()).is_some() || attached_to.is_some(),
                    attached_to,
                })
            })
            .collect())
    }

    /// CloudWatch `CPUUtilization` (Average, `period`) of `instances` over the last
    /// `window`: per instance id, the datapoints found.
    pub async fn cpu(
        &self,
        instances: &[&Instance],
        window: Duration,
        period: Duration,
        errors: &mut Vec<ApiError>,
    ) -> CpuSeries {
        let mut by_region: HashMap<&str, Vec<&str>> = HashMap::new();
        for i in instances {
            by_region.entry(i.region.as_str()).or_default().push(i.id.as_str());
        }
        let end = Utc::now();
        let start = end - chrono::Duration::from_std(window).unwrap_or_else(|_| chrono::Duration::hours(1));
        let jobs: Vec<(&str, &[&str])> = by_region
            .iter()
            .flat_map(|(region, ids)| ids.chunks(QUERIES_PER_CALL).map(move |c| (*region, c)))
            .collect();
        let mut out = CpuSeries::new();
        // Two calls at a time: each carries 500 queries (a request of ~200 KB and the SDK's
        // copies of it), and a dozen at once would double the monitor's memory.
        for batch in jobs.chunks(METRIC_CALLS_AT_ONCE) {
            let calls = batch.iter().map(|(region, ids)| self.metric_call(region, ids, start, end, period));
            for r in futures_util::future::join_all(calls).await {
                match r {
                    Ok(part) => out.extend(part),
                    Err(e) => errors.push(e),
                }
            }
        }
        out
    }

    async fn metric_call(
        &self,
        region: &str,
        ids: &[&str],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        period: Duration,
    ) -> Result<CpuSeries, ApiError> {
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
        let cw = self.cloudwatch(region);
        let queries: Vec<MetricDataQuery> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                MetricDataQuery::builder()
                    .id(format!("q{n}"))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace("AWS/EC2")
                                    .metric_name("CPUUtilization")
                                    .dimensions(Dimension::builder().name("InstanceId").value(*id).build())
                                    .build(),
                            )
                            .period(i32::try_from(period.as_secs()).unwrap_or(300))
                            .stat("Average")
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let mut out = CpuSeries::new();
        let mut token = None;
        loop {
            let page = {
                let _p = self.permit().await;
                cw.get_metric_data()
                    .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(start.timestamp()))
                    .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(end.timestamp()))
                    .set_metric_data_queries(Some(queries.clone()))
                    .set_next_token(token)
                    .send()
                    .await
            }
            .map_err(|e| sdk_error("cloudwatch:GetMetricData", region, &e))?;
            for r in page.metric_data_results() {
                let Some(n) = r.id().and_then(|q| q.strip_prefix('q')).and_then(|n| n.parse::<usize>().ok()) else {
                    continue;
                };
                if let Some(id) = ids.get(n) {
                    out.entry((*id).to_string())
                        .or_default()
                        .extend(r.values().iter().copied().filter(|v| v.is_finite()));
                }
            }
            token = page.next_token().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Cost Explorer: unblended cost per day from `from` to `to` (both included).
    pub async fn cost(&self, from: NaiveDate, to: NaiveDate) -> Result<CostData, ApiError> {
        use aws_sdk_costexplorer::types::{DateInterval, Granularity};
        // Cost Explorer has one endpoint, in us-east-1.
        let ce = aws_sdk_costexplorer::Client::from_conf(
            aws_sdk_costexplorer::config::Builder::from(&self.sdk).region(Region::new("us-east-1")).build(),
        );
        let period = DateInterval::builder()
            .start(from.format("%Y-%m-%d").to_string())
            .end((to + chrono::Days::new(1)).format("%Y-%m-%d").to_string())
            .build()
            .map_err(|e| ApiError {
                api: "ce:GetCostAndUsage".into(),
                scope: self.name.clone(),
                kind: ErrorKind::Failed,
                message: e.to_string(),
            })?;
        let mut data = CostData::default();
        let mut token = None;
        loop {
            let page = {
                let _p = self.permit().await;
                ce.get_cost_and_usage()
                    .time_period(period.clone())
                    .granularity(Granularity::Daily)
                    .metrics("UnblendedCost")
                    .set_next_page_token(token)
                    .send()
                    .await
            }
            .map_err(|e| sdk_error("ce:GetCostAndUsage", "us-east-1", &e))?;
            for r in page.results_by_time() {
                let Some(day) = r.time_period().and_then(|t| NaiveDate::parse_from_str(t.start(), "%Y-%m-%d").ok())
                else {
                    continue;
                };
                let Some(v) = r.total().and_then(|t| t.get("UnblendedCost")) else { continue };
                if let Some(amount) = v.amount().and_then(|a| a.parse::<f64>().ok()).filter(|a| a.is_finite()) {
                    data.days.push((day, amount));
                    if data.currency.is_empty() {
                        data.currency = v.unit().filter(|u| !u.is_empty()).unwrap_or("USD").to_string();
                    }
                }
            }
            token = page.next_page_token().filter(|t| !t.is_empty()).map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        data.days.sort_by_key(|d| d.0);
        if data.currency.is_empty() {
            data.currency = "USD".into();
        }
        Ok(data)
    }
}

/// Some endpoints (moto) send empty strings for absent values.
fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

fn smithy_time(t: &aws_sdk_ec2::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

fn state(raw: &str) -> State {
    match raw {
        "running" => State::Running,
        "pending" => State::Pending,
        "stopping" | "shutting-down" => State::Stopping,
        "stopped" => State::Stopped,
        "terminated" => State::Terminated,
        _ => State::Other,
    }
}

/// An SDK error as an [`ApiError`]: the service's code and message when it answered,
/// else the whole error chain (no credentials, connection refused, timeout).
fn sdk_error<E>(api: &str, scope: &str, e: &E) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = e.code().unwrap_or("");
    let kind = match code {
        "AuthFailure"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId" => ErrorKind::Credentials,
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" | "OptInRequired" => ErrorKind::Denied,
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "LimitExceededException" => {
            ErrorKind::Throttled
        }
        "" => {
            let text = DisplayErrorContext(e).to_string().to_lowercase();
            if text.contains("credential") {
                ErrorKind::Credentials
            } else if text.contains("dispatch failure") || text.contains("timeout") || text.contains("connect") {
                ErrorKind::Unreachable
            } else {
                ErrorKind::Failed
            }
        }
        _ => ErrorKind::Failed,
    };
    let message = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => DisplayErrorContext(e).to_string(),
    };
    ApiError { api: api.to_string(), scope: scope.to_string(), kind, message: qmoi_core::human::clip(&message, 500) }
}
