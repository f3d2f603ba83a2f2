//! Azure Resource Manager: virtual machines with their instance view, managed disks and
//! public IP addresses per subscription (following `nextLink`), CPU from Azure Monitor
//! metrics, cost from the Cost Management query API.

use crate::config::{self, Auth, Provider};
use crate::model::{ApiError, CostData, CpuSeries, ErrorKind, Instance, InstanceState, Inventory, PublicIp, Volume};
use crate::rest::{Call, RequestAuth, Rest, same_origin};
use crate::token::{Grant, TokenSource};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

const VM_API: &str = "2024-07-01";
const DISK_API: &str = "2023-10-02";
const IP_API: &str = "2024-05-01";
const METRICS_API: &str = "2018-01-01";
const COST_API: &str = "2023-03-01";

#[derive(Debug)]
pub struct Azure {
    base: String,
    subscriptions: Vec<String>,
    regions: Vec<String>,
    token: TokenSource,
    pub rest: Rest,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct Vm {
    id: String,
    name: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    zones: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    properties: VmProps,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct VmProps {
    #[serde(default)]
    vm_id: Option<String>,
    #[serde(default)]
    hardware_profile: Option<HardwareProfile>,
    #[serde(default)]
    time_created: Option<DateTime<Utc>>,
    #[serde(default)]
    instance_view: Option<InstanceView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HardwareProfile {
    #[serde(default)]
    vm_size: String,
}

#[derive(Deserialize)]
struct InstanceView {
    #[serde(default)]
    statuses: Vec<StatusCode>,
}

#[derive(Deserialize)]
struct StatusCode {
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Disk {
    id: String,
    name: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    managed_by: Option<String>,
    #[serde(default)]
    properties: DiskProps,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DiskProps {
    #[serde(rename = "diskSizeGB", default)]
    disk_size_gb: Option<f64>,
    #[serde(default)]
    disk_state: Option<String>,
    #[serde(default)]
    time_created: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct PublicIpAddress {
    id: String,
    name: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    properties: IpProps,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IpProps {
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    ip_configuration: Option<IdRef>,
    #[serde(default)]
    nat_gateway: Option<IdRef>,
}

#[derive(Deserialize)]
struct IdRef {
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct Metrics {
    #[serde(default)]
    value: Vec<MetricSeries>,
}

#[derive(Deserialize)]
struct MetricSeries {
    #[serde(default)]
    timeseries: Vec<TimeSeries>,
}

#[derive(Deserialize)]
struct TimeSeries {
    #[serde(default)]
    data: Vec<Point>,
}

#[derive(Deserialize)]
struct Point {
    #[serde(default)]
    average: Option<f64>,
}

#[derive(Deserialize)]
struct CostAnswer {
    properties: CostProps,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CostProps {
    #[serde(default)]
    next_link: Option<String>,
    #[serde(default)]
    columns: Vec<Column>,
    #[serde(default)]
    rows: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct Column {
    name: String,
}

impl Azure {
    pub fn new(p: &Provider, request_timeout: Duration, concurrency: usize) -> Result<Self, ApiError> {
        let fail = |message: String| ApiError {
            api: "auth".into(),
            scope: p.name.clone(),
            kind: ErrorKind::Credentials,
            message,
        };
        let env = |v: &Option<qmoi_core::config::EnvString>, var: &str| {
            v.as_ref().map(|s| s.as_str().to_string()).or_else(|| std::env::var(var).ok()).filter(|s| !s.is_empty())
        };
        let scope = p.token_scope.clone().unwrap_or_else(|| config::AZURE_SCOPE.to_string());
        let grant = match p.auth {
            Auth::Key => {
                let tenant = env(&p.tenant_id, "AZURE_TENANT_ID")
                    .ok_or_else(|| fail("no tenant: set tenant_id or AZURE_TENANT_ID".into()))?;
                let client_id = env(&p.client_id, "AZURE_CLIENT_ID")
                    .ok_or_else(|| fail("no client id: set client_id or AZURE_CLIENT_ID".into()))?;
                let secret = p
                    .client_secret
                    .clone()
                    .filter(|s| !s.is_empty())
                    .or_else(|| {
                        std::env::var("AZURE_CLIENT_SECRET")
                            .ok()
                            .filter(|s| !s.is_empty())
                            .map(qmoi_core::config::Secret::new)
                    })
                    .ok_or_else(|| {
                        fail("no client secret: set client_secret = \"${…}\" or AZURE_CLIENT_SECRET".into())
                    })?;
                let login = Provider::url(&p.login_url, config::AZURE_LOGIN);
                Grant::AzureSecret { url: format!("{login}/{tenant}/oauth2/v2.0/token"), client_id, secret, scope }
            }
            Auth::Metadata => {
                let imds = Provider::url(&p.imds_url, config::AZURE_IMDS);
                let resource = scope.trim_end_matches("/.default");
                let mut url = reqwest::Url::parse(&format!("{imds}/metadata/identity/oauth2/token"))
                    .map_err(|e| fail(format!("imds_url: {e}")))?;
                url.query_pairs_mut().append_pair("api-version", "2018-02-01").append_pair("resource", resource);
                if let Some(c) = env(&p.client_id, "AZURE_CLIENT_ID") {
                    url.query_pairs_mut().append_pair("client_id", &c);
                }
                Grant::AzureIdentity { url: url.to_string() }
            }
        };
        Ok(Self {
            base: Provider::url(&p.management_url, config::AZURE_MANAGEMENT),
            subscriptions: p.subscriptions.clone(),
            regions: p.regions.iter().map(|r| r.to_lowercase()).collect(),
            token: TokenSource::new(grant),
            rest: Rest::new(request_timeout, concurrency).map_err(fail)?,
        })
    }

    /// Every page of a list, following `nextLink` on the same host only.
    async fn list<T: DeserializeOwned>(&self, first: String, api: &str, scope: &str) -> Result<Vec<T>, ApiError> {
        let mut out = Vec::new();
        let mut url = first;
        loop {
            let page: Page<T> = self.rest.json(&Call::get(url, api, scope), RequestAuth::Bearer(&self.token)).await?;
            out.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(link) => {
                    same_origin(&self.base, &link).map_err(|message| ApiError {
                        api: api.to_string(),
                        scope: scope.to_string(),
                        kind: ErrorKind::Failed,
                        message,
                    })?;
                    url = link;
                }
                None => return Ok(out),
            }
        }
    }

    fn wanted(&self, location: &str) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r.eq_ignore_ascii_case(location))
    }

    pub async fn inventory(&self, p: &Provider) -> Inventory {
        let subs = futures_util::future::join_all(self.subscriptions.iter().map(|s| self.subscription(p, s))).await;
        Inventory::merge(self.subscriptions.clone(), subs, self.rest.requests())
    }

    async fn subscription(&self, p: &Provider, sub: &str) -> Inventory {
        let root = format!("{}/subscriptions/{sub}/providers", self.base);
        let (vms, disks, ips) = tokio::join!(
            self.list::<Vm>(
                format!("{root}/Microsoft.Compute/virtualMachines?api-version={VM_API}&statusOnly=true"),
                "compute:virtualMachines",
                sub
            ),
            self.list::<Disk>(format!("{root}/Microsoft.Compute/disks?api-version={DISK_API}"), "compute:disks", sub),
            self.list::<PublicIpAddress>(
                format!("{root}/Microsoft.Network/publicIPAddresses?api-version={IP_API}"),
                "network:publicIPAddresses",
                sub
            ),
        );
        let mut inv = Inventory::default();
        match vms {
            Ok(list) => {
                inv.instances =
                    list.into_iter().filter(|v| self.wanted(&v.location)).map(|v| instance(p, sub, v)).collect();
            }
            Err(e) => inv.errors.push(e),
        }
        match disks {
            Ok(list) => {
                inv.volumes = list
                    .into_iter()
                    .filter(|d| self.wanted(&d.location))
                    .map(|d| {
                        let state = d.properties.disk_state.unwrap_or_default();
                        // "Unattached" is the one state without a VM; "Reserved" and
                        // "ActiveSAS" belong to a deallocated or exporting VM.
                        let attached = d.managed_by.as_deref().is_some_and(|m| !m.is_empty()) || state != "Unattached";
                        Volume {
                            id: d.id,
                            name: d.name,
                            account: sub.to_string(),
                            region: d.location,
                            size_gb: d.properties.disk_size_gb,
                            attached,
                            attached_to: d.managed_by.map(|m| last_segment(&m).to_string()),
                            created: d.properties.time_created,
                        }
                    })
                    .collect();
            }
            Err(e) => inv.errors.push(e),
        }
        match ips {
            Ok(list) => {
                inv.ips = list
                    .into_iter()
                    .filter(|i| self.wanted(&i.location))
                    .map(|i| {
                        let to = i.properties.ip_configuration.or(i.properties.nat_gateway).map(|r| r.id);
                        PublicIp {
                            address: i.properties.ip_address.unwrap_or_default(),
                            id: i.id,
                            account: sub.to_string(),
                            region: i.location,
                            associated: to.as_deref().is_some_and(|t| !t.is_empty()),
                            attached_to: to.map(|t| resource_after(&t, "networkInterfaces").unwrap_or(i.name)),
                        }
                    })
                    .collect();
            }
            Err(e) => inv.errors.push(e),
        }
        inv
    }

    /// Azure Monitor `Percentage CPU` (Average per `period`) over the last `window`, one
    /// request per VM (bounded by `max_concurrency`).
    pub async fn cpu(
        &self,
        instances: &[&Instance],
        window: Duration,
        period: Duration,
        errors: &mut Vec<ApiError>,
    ) -> CpuSeries {
        let end = Utc::now();
        let start = end - chrono::Duration::from_std(window).unwrap_or_else(|_| chrono::Duration::hours(1));
        let timespan = format!("{}/{}", start.format("%Y-%m-%dT%H:%M:%SZ"), end.format("%Y-%m-%dT%H:%M:%SZ"));
        let interval = iso_interval(period);
        let calls = instances.iter().map(|i| {
            let url = format!(
                "{}{}/providers/Microsoft.Insights/metrics?api-version={METRICS_API}&metricnames=Percentage%20CPU&aggregation=Average&interval={interval}&timespan={timespan}",
                self.base, i.resource
            );
            async move {
                let r: Result<Metrics, ApiError> = self.rest.json(&Call::get(url, "monitor:metrics", &i.account), RequestAuth::Bearer(&self.token)).await;
                (i.id.clone(), r)
            }
        });
        let mut out = CpuSeries::new();
        let mut failed = 0usize;
        for (id, r) in futures_util::future::join_all(calls).await {
            match r {
                Ok(m) => {
                    let v: Vec<f64> = m
                        .value
                        .iter()
                        .flat_map(|s| &s.timeseries)
                        .flat_map(|t| &t.data)
                        .filter_map(|p| p.average)
                        .filter(|v| v.is_finite())
                        .collect();
                    out.insert(id, v);
                }
                Err(e) => {
                    // One error per API and scope is enough; count the rest.
                    failed += 1;
                    if !errors.iter().any(|x| x.api == e.api && x.scope == e.scope) {
                        errors.push(e);
                    }
                }
            }
        }
        if failed > 1
            && let Some(e) = errors.iter_mut().rev().find(|e| e.api == "monitor:metrics")
        {
            e.message = format!("{} ({failed} VMs failed)", e.message);
        }
        out
    }

    /// Cost Management query: actual cost per day of every subscription, summed.
    pub async fn cost(&self, from: NaiveDate, to: NaiveDate) -> Result<CostData, ApiError> {
        let body = serde_json::json!({
            "type": "ActualCost",
            "timeframe": "Custom",
            "timePeriod": {
                "from": format!("{}T00:00:00Z", from.format("%Y-%m-%d")),
                "to": format!("{}T23:59:59Z", to.format("%Y-%m-%d")),
            },
            "dataset": {
                "granularity": "Daily",
                "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            },
        });
        let mut per_day: BTreeMap<NaiveDate, f64> = BTreeMap::new();
        let mut currency = String::new();
        for sub in &self.subscriptions {
            let mut url = format!(
                "{}/subscriptions/{sub}/providers/Microsoft.CostManagement/query?api-version={COST_API}",
                self.base
            );
            loop {
                let answer: CostAnswer = self
                    .rest
                    .json(
                        &Call::post_json(url.clone(), &body, "costmanagement:query", sub),
                        RequestAuth::Bearer(&self.token),
                    )
                    .await?;
                let col = |name: &str| answer.properties.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name));
                let (Some(c_cost), Some(c_day)) = (col("Cost").or_else(|| col("PreTaxCost")), col("UsageDate")) else {
                    return Err(ApiError {
                        api: "costmanagement:query".into(),
                        scope: sub.clone(),
                        kind: ErrorKind::Failed,
                        message: "the answer has no Cost / UsageDate columns".into(),
                    });
                };
                let c_cur = col("Currency");
                for row in &answer.properties.rows {
                    let amount = row.get(c_cost).and_then(serde_json::Value::as_f64);
                    let day = row.get(c_day).and_then(|d| match d {
                        serde_json::Value::Number(n) => NaiveDate::parse_from_str(&n.to_string(), "%Y%m%d").ok(),
                        serde_json::Value::String(s) => NaiveDate::parse_from_str(s.get(..8).unwrap_or(s), "%Y%m%d")
                            .or_else(|_| NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d"))
                            .ok(),
                        _ => None,
                    });
                    if let (Some(a), Some(d)) = (amount.filter(|a| a.is_finite()), day) {
                        *per_day.entry(d).or_default() += a;
                    }
                    if currency.is_empty()
                        && let Some(c) = c_cur.and_then(|i| row.get(i)).and_then(|c| c.as_str())
                    {
                        currency = c.to_string();
                    }
                }
                match answer.properties.next_link.filter(|l| !l.is_empty()) {
                    Some(link) => {
                        same_origin(&self.base, &link).map_err(|message| ApiError {
                            api: "costmanagement:query".into(),
                            scope: sub.clone(),
                            kind: ErrorKind::Failed,
                            message,
                        })?;
                        url = link;
                    }
                    None => break,
                }
            }
        }
        Ok(CostData {
            currency: if currency.is_empty() { "USD".into() } else { currency },
            days: per_day.into_iter().collect(),
        })
    }
}

fn instance(p: &Provider, sub: &str, v: Vm) -> Instance {
    let statuses = v.properties.instance_view.map(|iv| iv.statuses).unwrap_or_default();
    let power = statuses.iter().find_map(|s| s.code.strip_prefix("PowerState/")).unwrap_or("unknown").to_string();
    let state = match power.as_str() {
        "running" => InstanceState::Running,
        "starting" => InstanceState::Pending,
        "stopping" | "deallocating" => InstanceState::Stopping,
        "stopped" | "deallocated" => InstanceState::Stopped,
        _ => InstanceState::Other,
    };
    let critical = p.is_critical(&v.name, &v.name)
        || v.properties.vm_id.as_deref().is_some_and(|id| p.is_critical(id, ""))
        || v.tags.get("qmoi-critical").is_some_and(|t| t == "true");
    Instance {
        id: v.properties.vm_id.unwrap_or_else(|| v.id.clone()),
        name: v.name,
        account: sub.to_string(),
        region: v.location,
        zone: v.zones.into_iter().next().unwrap_or_default(),
        itype: v.properties.hardware_profile.map(|h| h.vm_size).unwrap_or_default(),
        state,
        raw_state: power,
        launched: v.properties.time_created,
        resource: v.id,
        critical,
        status_check: None,
    }
}

fn last_segment(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// `…/networkInterfaces/nic-1/ipConfigurations/ipconfig1` → `nic-1`.
fn resource_after(id: &str, kind: &str) -> Option<String> {
    let mut it = id.split('/');
    it.by_ref().find(|s| s.eq_ignore_ascii_case(kind))?;
    it.next().map(str::to_string)
}

/// A period as an ISO 8601 duration Azure Monitor accepts (PT5M, PT1H, P1D).
fn iso_interval(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 && s.is_multiple_of(86_400) {
        format!("P{}D", s / 86_400)
    } else if s >= 3600 && s.is_multiple_of(3600) {
        format!("PT{}H", s / 3600)
    } else {
        format!("PT{}M", (s / 60).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_ids() {
        assert_eq!(iso_interval(Duration::from_secs(300)), "PT5M");
        assert_eq!(iso_interval(Duration::from_secs(3600)), "PT1H");
        assert_eq!(iso_interval(Duration::from_secs(86_400)), "P1D");
        assert_eq!(
            resource_after(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/nic-1/ipConfigurations/c",
                "networkInterfaces"
            ),
            Some("nic-1".into())
        );
        assert_eq!(last_segment("/subscriptions/s/virtualMachines/vm-1"), "vm-1");
    }
}
