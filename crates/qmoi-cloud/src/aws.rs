//! AWS: EC2 inventory (`DescribeInstances`, `DescribeInstanceStatus`, `DescribeVolumes`,
//! `DescribeAddresses`) per region, CPU from CloudWatch `GetMetricData`, cost from Cost
//! Explorer `GetCostAndUsage`. Credentials come from the SDK's default chain (environment,
//! profile incl. SSO / assume-role / credential_process, web identity, instance role).
//!
//! The calls go through [`Rest`], the HTTP client of every provider (retries, backoff,
//! bounded answers, error classification), signed with Signature Version 4
//! ([`crate::sigv4`]): EC2 and CloudWatch speak the Query protocol (a form POST answered in
//! XML, read by [`crate::xml::walk`] without building a tree), Cost Explorer JSON. The
//! SDK's generated service crates are not used: they were most of the workspace's build
//! time for four list calls and two queries.

use crate::config::Provider;
use crate::model::{
    ApiError, CostData, CpuSeries, ErrorKind, Instance, InstanceState, Inventory, PublicIp, StatusCheck, Volume,
};
use crate::rest::{Call, RequestAuth, Rest};
use crate::sigv4::{Scope, Signer};
use aws_config::{BehaviorVersion, Region};
use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Semaphore;

/// CloudWatch accepts at most 500 metric queries per `GetMetricData` call.
const QUERIES_PER_CALL: usize = 500;
/// Instances and volumes per page: a whole answer is held in memory while it is read, and
/// regions are listed at once; 500 keeps a 5,000-instance inventory under 40 MiB for a
/// few more round trips.
const PAGE: u32 = 500;
/// `GetMetricData` calls in flight at once.
const METRIC_CALLS_AT_ONCE: usize = 2;
const EC2_VERSION: &str = "2016-11-15";
const CLOUDWATCH_VERSION: &str = "2010-08-01";
/// Cost Explorer has one endpoint, in us-east-1.
const COST_REGION: &str = "us-east-1";

#[derive(Debug)]
pub struct Aws {
    regions: Vec<String>,
    /// `endpoint_url` of the provider (an emulator, a VPC endpoint): every service there.
    endpoint: Option<String>,
    signer: Signer,
    pub rest: Rest,
    /// One `DescribeInstances` page at a time across regions: a page of 500 instances is
    /// ~5 MB of XML, held until it is read.
    pages: Semaphore,
}

impl Aws {
    pub async fn new(p: &Provider, request_timeout: Duration, concurrency: usize) -> Result<Self, ApiError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(p.regions.first().cloned().unwrap_or_else(|| "us-east-1".into())));
        if let Some(profile) = &p.profile {
            loader = loader.profile_name(profile);
        }
        let sdk = loader.load().await;
        let rest = Rest::new(request_timeout, concurrency).map_err(|message| ApiError {
            api: "setup".into(),
            scope: p.name.clone(),
            kind: ErrorKind::Failed,
            message,
        })?;
        Ok(Self {
            regions: p.regions.clone(),
            endpoint: p
                .endpoint_url
                .as_ref()
                .map(|u| u.as_str().to_string())
                .or_else(|| sdk.endpoint_url().map(str::to_string)),
            signer: Signer::new(&sdk),
            rest,
            pages: Semaphore::new(1),
        })
    }

    /// The service's regional endpoint (`https://ec2.eu-west-1.amazonaws.com/`), or the
    /// configured one.
    fn url(&self, service: &str, region: &str) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None if region.starts_with("cn-") => format!("https://{service}.{region}.amazonaws.com.cn/"),
            None => format!("https://{service}.{region}.amazonaws.com/"),
        }
    }

    /// A Query-protocol call (EC2, CloudWatch): `params` as a signed form, the answer's XML.
    async fn query(&self, service: &str, api: &str, region: &str, params: &[(&str, &str)]) -> Result<String, ApiError> {
        let call =
            Call { method: Method::POST, form: Some(params), ..Call::get(self.url(service, region), api, region) };
        let body = self.rest.send(&call, RequestAuth::Aws(&self.signer, Scope { region, service })).await?;
        String::from_utf8(body).map_err(|_| unreadable(api, region, "the answer is not UTF-8".into()))
    }

    /// An EC2 `Describe…` call, every page (`NextToken`) in turn: `read` takes each closed
    /// element into one `T` across pages. With `one_page_at_a_time` a page is fetched and
    /// read under `self.pages`, so regions do not hold several large pages at once.
    async fn describe<T: Default>(
        &self,
        action: &str,
        region: &str,
        page_size: Option<u32>,
        one_page_at_a_time: bool,
        mut read: impl FnMut(&mut T, &[&str], &str),
    ) -> Result<T, ApiError> {
        let api = format!("ec2:{action}");
        let size = page_size.map(|n| n.to_string());
        let mut items = T::default();
        let mut token: Option<String> = None;
        loop {
            let _one_page = if one_page_at_a_time { Some(self.pages.acquire().await) } else { None };
            let mut params = vec![("Action", action), ("Version", EC2_VERSION)];
            if let Some(n) = &size {
                params.push(("MaxResults", n));
            }
            if let Some(t) = &token {
                params.push(("NextToken", t));
            }
            let xml = self.query("ec2", &api, region, &params).await?;
            let mut next = None;
            crate::xml::walk(&xml, |path, text| match path {
                [_, "nextToken"] => next = Some(text.to_string()).filter(|t| !t.is_empty()),
                _ => read(&mut items, path, text),
            })
            .map_err(|e| unreadable(&api, region, e))?;
            token = next;
            if token.is_none() {
                return Ok(items);
            }
        }
    }

    /// Every region concurrently; within a region the four listings concurrently.
    pub async fn inventory(&self, p: &Provider) -> Inventory {
        let per_region = futures_util::future::join_all(self.regions.iter().map(|r| self.region(p, r))).await;
        Inventory::merge(self.regions.clone(), per_region, self.rest.requests())
    }

    async fn region(&self, p: &Provider, region: &str) -> Inventory {
        let (instances, statuses, volumes, ips) = tokio::join!(
            self.instances(p, region),
            self.statuses(region),
            self.volumes(p, region),
            self.addresses(p, region)
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

    async fn instances(&self, p: &Provider, region: &str) -> Result<Vec<Instance>, ApiError> {
        let account = p.profile.clone().unwrap_or_default();
        let mut cur = RawInstance::default();
        self.describe("DescribeInstances", region, Some(PAGE), true, |list: &mut Vec<Instance>, path, text| {
            let [_, "reservationSet", "item", "instancesSet", "item", field @ ..] = path else { return };
            match field {
                ["instanceId"] => cur.id = text.to_string(),
                ["instanceType"] => cur.itype = text.to_string(),
                ["launchTime"] => cur.launched = time(text),
                ["placement", "availabilityZone"] => cur.zone = text.to_string(),
                ["instanceState", "name"] => cur.state = text.to_string(),
                ["tagSet", "item", "key"] => cur.tag_key = text.to_string(),
                ["tagSet", "item", "value"] => cur.tag_value = text.to_string(),
                ["tagSet", "item"] => {
                    match cur.tag_key.as_str() {
                        "Name" => cur.name = std::mem::take(&mut cur.tag_value),
                        "qmoi-critical" => cur.critical_tag = cur.tag_value == "true",
                        _ => {}
                    }
                    cur.tag_key.clear();
                    cur.tag_value.clear();
                }
                [] => {
                    let i = std::mem::take(&mut cur);
                    if !i.id.is_empty() {
                        list.push(i.into_instance(p, &account, region));
                    }
                }
                _ => {}
            }
        })
        .await
    }

    async fn statuses(&self, region: &str) -> Result<HashMap<String, StatusCheck>, ApiError> {
        let (mut id, mut check) = (String::new(), StatusCheck::default());
        self.describe("DescribeInstanceStatus", region, Some(1000), false, |out: &mut HashMap<_, _>, path, text| {
            let [_, "instanceStatusSet", "item", field @ ..] = path else { return };
            match field {
                ["instanceId"] => id = text.to_string(),
                ["instanceStatus", "status"] => check.instance = text.to_string(),
                ["systemStatus", "status"] => check.system = text.to_string(),
                [] => {
                    let c = std::mem::take(&mut check);
                    if !id.is_empty() {
                        out.insert(
                            std::mem::take(&mut id),
                            StatusCheck { instance: or_unknown(c.instance), system: or_unknown(c.system) },
                        );
                    }
                }
                _ => {}
            }
        })
        .await
    }

    async fn volumes(&self, p: &Provider, region: &str) -> Result<Vec<Volume>, ApiError> {
        let account = p.profile.clone().unwrap_or_default();
        let mut cur = RawVolume::default();
        self.describe("DescribeVolumes", region, Some(PAGE), false, |list: &mut Vec<Volume>, path, text| {
            let [_, "volumeSet", "item", field @ ..] = path else { return };
            match field {
                ["volumeId"] => cur.id = text.to_string(),
                ["size"] => cur.size_gb = text.parse().ok(),
                ["status"] => cur.in_use = text == "in-use",
                ["createTime"] => cur.created = time(text),
                ["attachmentSet", "item", "instanceId"] if cur.attached_to.is_none() => {
                    cur.attached_to = Some(text.to_string()).filter(|s| !s.is_empty());
                }
                ["tagSet", "item", "key"] => cur.tag_key = text.to_string(),
                ["tagSet", "item", "value"] if cur.tag_key == "Name" => cur.name = text.to_string(),
                [] => {
                    let v = std::mem::take(&mut cur);
                    if !v.id.is_empty() {
                        list.push(Volume {
                            id: v.id,
                            name: v.name,
                            account: account.clone(),
                            region: region.to_string(),
                            size_gb: v.size_gb,
                            attached: v.in_use || v.attached_to.is_some(),
                            attached_to: v.attached_to,
                            created: v.created,
                        });
                    }
                }
                _ => {}
            }
        })
        .await
    }

    async fn addresses(&self, p: &Provider, region: &str) -> Result<Vec<PublicIp>, ApiError> {
        let account = p.profile.clone().unwrap_or_default();
        let mut cur = RawAddress::default();
        self.describe("DescribeAddresses", region, None, false, |list: &mut Vec<PublicIp>, path, text| {
            let [_, "addressesSet", "item", field @ ..] = path else { return };
            let slot = match field {
                ["publicIp"] => &mut cur.public_ip,
                ["allocationId"] => &mut cur.allocation_id,
                ["associationId"] => &mut cur.association_id,
                ["instanceId"] => &mut cur.instance_id,
                ["networkInterfaceId"] => &mut cur.interface_id,
                [] => {
                    let a = std::mem::take(&mut cur);
                    list.extend(a.into_ip(&account, region));
                    return;
                }
                _ => return,
            };
            *slot = text.to_string();
        })
        .await
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
        const API: &str = "cloudwatch:GetMetricData";
        let (start, end) = (rfc3339(start), rfc3339(end));
        let period = u32::try_from(period.as_secs()).unwrap_or(300).to_string();
        // MetricDataQueries.member.N.…, N from 1; the id "qN" maps an answer back.
        let mut owned: Vec<(String, String)> = Vec::with_capacity(ids.len() * 7);
        for (n, id) in ids.iter().enumerate() {
            let q = format!("MetricDataQueries.member.{}", n + 1);
            owned.push((format!("{q}.Id"), format!("q{n}")));
            owned.push((format!("{q}.MetricStat.Metric.Namespace"), "AWS/EC2".into()));
            owned.push((format!("{q}.MetricStat.Metric.MetricName"), "CPUUtilization".into()));
            owned.push((format!("{q}.MetricStat.Metric.Dimensions.member.1.Name"), "InstanceId".into()));
            owned.push((format!("{q}.MetricStat.Metric.Dimensions.member.1.Value"), (*id).to_string()));
            owned.push((format!("{q}.MetricStat.Period"), period.clone()));
            owned.push((format!("{q}.MetricStat.Stat"), "Average".into()));
        }
        let mut out = CpuSeries::new();
        let mut token: Option<String> = None;
        loop {
            let mut params: Vec<(&str, &str)> = vec![
                ("Action", "GetMetricData"),
                ("Version", CLOUDWATCH_VERSION),
                ("StartTime", &start),
                ("EndTime", &end),
            ];
            params.extend(owned.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            if let Some(t) = &token {
                params.push(("NextToken", t));
            }
            let xml = self.query("monitoring", API, region, &params).await?;
            let (mut query, mut values, mut next) = (None::<usize>, Vec::new(), None);
            crate::xml::walk(&xml, |path, text| match path {
                [_, "GetMetricDataResult", "NextToken"] => next = Some(text.to_string()).filter(|t| !t.is_empty()),
                [_, "GetMetricDataResult", "MetricDataResults", "member", field @ ..] => match field {
                    ["Id"] => query = text.strip_prefix('q').and_then(|n| n.parse().ok()),
                    ["Values", "member"] => {
                        values.extend(text.trim().parse::<f64>().ok().filter(|v| v.is_finite()));
                    }
                    [] => {
                        let v = std::mem::take(&mut values);
                        if let Some(id) = query.take().and_then(|n| ids.get(n)) {
                            out.entry((*id).to_string()).or_default().extend(v);
                        }
                    }
                    _ => {}
                },
                _ => {}
            })
            .map_err(|e| unreadable(API, region, e))?;
            token = next;
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Cost Explorer: unblended cost per day from `from` to `to` (both included).
    pub async fn cost(&self, from: NaiveDate, to: NaiveDate) -> Result<CostData, ApiError> {
        const API: &str = "ce:GetCostAndUsage";
        let url = self.url("ce", COST_REGION);
        let headers = [
            ("X-Amz-Target", "AWSInsightsIndexService.GetCostAndUsage"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ];
        let mut data = CostData::default();
        let mut token: Option<String> = None;
        loop {
            let mut body = serde_json::json!({
                "TimePeriod": {
                    "Start": from.format("%Y-%m-%d").to_string(),
                    "End": (to + chrono::Days::new(1)).format("%Y-%m-%d").to_string(),
                },
                "Granularity": "DAILY",
                "Metrics": ["UnblendedCost"],
            });
            if let Some(t) = &token {
                body["NextPageToken"] = t.clone().into();
            }
            let call = Call { headers: &headers, ..Call::post_json(url.clone(), &body, API, COST_REGION) };
            let page: CostPage = self
                .rest
                .json(&call, RequestAuth::Aws(&self.signer, Scope { region: COST_REGION, service: "ce" }))
                .await?;
            for r in page.results_by_time {
                let Some(day) = r.time_period.and_then(|t| NaiveDate::parse_from_str(&t.start, "%Y-%m-%d").ok()) else {
                    continue;
                };
                let Some(v) = r.total.get("UnblendedCost") else { continue };
                if let Some(amount) = v.amount.as_deref().and_then(|a| a.parse::<f64>().ok()).filter(|a| a.is_finite())
                {
                    data.days.push((day, amount));
                    if data.currency.is_empty() {
                        data.currency = v.unit.clone().filter(|u| !u.is_empty()).unwrap_or_else(|| "USD".into());
                    }
                }
            }
            token = page.next_page_token.filter(|t| !t.is_empty());
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

/// What `DescribeInstances` says of one instance, as it is read.
#[derive(Default)]
struct RawInstance {
    id: String,
    name: String,
    itype: String,
    zone: String,
    state: String,
    launched: Option<DateTime<Utc>>,
    critical_tag: bool,
    tag_key: String,
    tag_value: String,
}

impl RawInstance {
    fn into_instance(self, p: &Provider, account: &str, region: &str) -> Instance {
        let raw = if self.state.is_empty() { "unknown".to_string() } else { self.state };
        Instance {
            critical: p.is_critical(&self.id, &self.name) || self.critical_tag,
            id: self.id,
            name: self.name,
            account: account.to_string(),
            region: region.to_string(),
            zone: self.zone,
            itype: self.itype,
            state: state(&raw),
            raw_state: raw,
            launched: self.launched,
            resource: String::new(),
            status_check: None,
        }
    }
}

/// What `DescribeVolumes` says of one volume, as it is read.
#[derive(Default)]
struct RawVolume {
    id: String,
    name: String,
    size_gb: Option<f64>,
    in_use: bool,
    attached_to: Option<String>,
    created: Option<DateTime<Utc>>,
    tag_key: String,
}

/// What `DescribeAddresses` says of one Elastic IP.
#[derive(Default)]
struct RawAddress {
    public_ip: String,
    allocation_id: String,
    association_id: String,
    instance_id: String,
    interface_id: String,
}

impl RawAddress {
    fn into_ip(self, account: &str, region: &str) -> Option<PublicIp> {
        // Some endpoints (moto) send empty elements for absent values.
        let present = |s: String| Some(s).filter(|s| !s.is_empty());
        let address = present(self.public_ip)?;
        let attached_to = present(self.instance_id).or(present(self.interface_id));
        Some(PublicIp {
            id: present(self.allocation_id).unwrap_or_else(|| address.clone()),
            address,
            account: account.to_string(),
            region: region.to_string(),
            associated: !self.association_id.is_empty() || attached_to.is_some(),
            attached_to,
        })
    }
}

/// The part of a `GetCostAndUsage` answer the monitor reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CostPage {
    #[serde(default)]
    results_by_time: Vec<CostResult>,
    next_page_token: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CostResult {
    time_period: Option<CostPeriod>,
    #[serde(default)]
    total: HashMap<String, CostAmount>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CostPeriod {
    start: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CostAmount {
    amount: Option<String>,
    unit: Option<String>,
}

fn unreadable(api: &str, scope: &str, message: String) -> ApiError {
    ApiError {
        api: api.to_string(),
        scope: scope.to_string(),
        kind: ErrorKind::Failed,
        message: format!("unreadable answer: {}", qmoi_core::human::clip(&message, 400)),
    }
}

/// An AWS timestamp (`2026-12-01T10:00:00.000Z`).
fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| t.with_timezone(&Utc))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn or_unknown(s: String) -> String {
    if s.is_empty() { "unknown".into() } else { s }
}

fn state(raw: &str) -> InstanceState {
    match raw {
        "running" => InstanceState::Running,
        "pending" => InstanceState::Pending,
        "stopping" | "shutting-down" => InstanceState::Stopping,
        "stopped" => InstanceState::Stopped,
        "terminated" => InstanceState::Terminated,
        _ => InstanceState::Other,
    }
}
