//! Google Cloud: Compute Engine instances, disks and addresses per project (aggregated
//! lists across zones and regions, following `nextPageToken`), CPU from Cloud Monitoring
//! `timeSeries`, cost from a BigQuery billing export table.

use crate::config::{self, Auth, Provider};
use crate::model::{ApiError, CostData, CpuSeries, ErrorKind, Instance, InstanceState, Inventory, PublicIp, Volume};
use crate::rest::{Call, RequestAuth, Rest};
use crate::token::{GcpKey, Grant, TokenSource};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

#[derive(Debug)]
pub struct Gcp {
    compute: String,
    monitoring: String,
    bigquery: String,
    projects: Vec<String>,
    regions: Vec<String>,
    billing_table: Option<String>,
    billing_project: Option<String>,
    token: TokenSource,
    pub rest: Rest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Aggregated<T> {
    #[serde(default = "BTreeMap::new")]
    items: BTreeMap<String, Scoped<T>>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// One zone's or region's part of an aggregated list (the key names the item kind).
#[derive(Deserialize)]
struct Scoped<T> {
    #[serde(default = "Vec::new", alias = "instances", alias = "disks", alias = "addresses")]
    list: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GInstance {
    id: String,
    name: String,
    #[serde(default)]
    machine_type: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    creation_timestamp: Option<DateTime<chrono::FixedOffset>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GDisk {
    id: String,
    name: String,
    #[serde(default)]
    size_gb: Option<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<DateTime<chrono::FixedOffset>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GAddress {
    name: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    address_type: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    users: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SeriesPage {
    #[serde(default)]
    time_series: Vec<Series>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct Series {
    resource: MonitoredResource,
    #[serde(default)]
    points: Vec<GPoint>,
}

#[derive(Deserialize)]
struct MonitoredResource {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct GPoint {
    value: TypedValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypedValue {
    #[serde(default)]
    double_value: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryAnswer {
    #[serde(default)]
    job_complete: bool,
    #[serde(default)]
    rows: Vec<Row>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    job_reference: Option<JobReference>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobReference {
    project_id: String,
    job_id: String,
    #[serde(default)]
    location: Option<String>,
}

#[derive(Deserialize)]
struct Row {
    f: Vec<Cell>,
}

#[derive(Deserialize)]
struct Cell {
    v: serde_json::Value,
}

impl Gcp {
    pub fn new(p: &Provider, request_timeout: Duration, concurrency: usize) -> Result<Self, ApiError> {
        let fail = |message: String| ApiError {
            api: "auth".into(),
            scope: p.name.clone(),
            kind: ErrorKind::Credentials,
            message,
        };
        let mut projects = p.projects.clone();
        let grant = match p.auth {
            Auth::Key => {
                let path = p
                    .credentials_file
                    .as_ref()
                    .map(|f| f.as_str().to_string())
                    .or_else(|| std::env::var("GOOGLE_APPLICATION_CREDENTIALS").ok())
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        fail("no key file: set credentials_file or GOOGLE_APPLICATION_CREDENTIALS".into())
                    })?;
                let key = GcpKey::load(&path).map_err(fail)?;
                if projects.is_empty() {
                    projects.extend(key.project_id.clone());
                }
                let token_url = p
                    .token_url
                    .as_ref()
                    .map(|u| u.as_str().to_string())
                    .or_else(|| key.token_uri.clone())
                    .unwrap_or_else(|| config::GCP_TOKEN.to_string());
                config::credential_safe(&token_url).map_err(|e| fail(format!("token_uri: {e}")))?;
                Grant::GcpKey { key: Box::new(key), token_url }
            }
            Auth::Metadata => {
                let base = Provider::url(&p.metadata_url, config::GCP_METADATA);
                Grant::GcpMetadata { url: format!("{base}/computeMetadata/v1/instance/service-accounts/default/token") }
            }
        };
        if projects.is_empty() {
            return Err(fail("no project: list projects, or use a key file with project_id".into()));
        }
        Ok(Self {
            compute: Provider::url(&p.compute_url, config::GCP_COMPUTE),
            monitoring: Provider::url(&p.monitoring_url, config::GCP_MONITORING),
            bigquery: Provider::url(&p.bigquery_url, config::GCP_BIGQUERY),
            billing_project: p.billing_project.clone().or_else(|| projects.first().cloned()),
            projects,
            regions: p.regions.clone(),
            billing_table: p.billing_table.clone(),
            token: TokenSource::new(grant),
            rest: Rest::new(request_timeout, concurrency).map_err(fail)?,
        })
    }

    pub fn has_billing(&self) -> bool {
        self.billing_table.is_some()
    }

    async fn aggregated<T: DeserializeOwned>(
        &self,
        project: &str,
        kind: &str,
        api: &str,
    ) -> Result<Vec<(String, T)>, ApiError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url =
                reqwest::Url::parse(&format!("{}/compute/v1/projects/{project}/aggregated/{kind}", self.compute))
                    .map_err(|e| ApiError {
                        api: api.into(),
                        scope: project.into(),
                        kind: ErrorKind::Failed,
                        message: e.to_string(),
                    })?;
            url.query_pairs_mut().append_pair("maxResults", "500").append_pair("returnPartialSuccess", "true");
            if let Some(t) = &token {
                url.query_pairs_mut().append_pair("pageToken", t);
            }
            let page: Aggregated<T> =
                self.rest.json(&Call::get(url.to_string(), api, project), RequestAuth::Bearer(&self.token)).await?;
            for (scope, s) in page.items {
                let scope = scope.rsplit('/').next().unwrap_or(&scope).to_string();
                out.extend(s.list.into_iter().map(|x| (scope.clone(), x)));
            }
            token = page.next_page_token.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    fn wanted(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r == region)
    }

    pub async fn inventory(&self, p: &Provider) -> Inventory {
        let all = futures_util::future::join_all(self.projects.iter().map(|pr| self.project(p, pr))).await;
        Inventory::merge(self.projects.clone(), all, self.rest.requests())
    }

    async fn project(&self, p: &Provider, project: &str) -> Inventory {
        let (instances, disks, addresses) = tokio::join!(
            self.aggregated::<GInstance>(project, "instances", "compute:instances"),
            self.aggregated::<GDisk>(project, "disks", "compute:disks"),
            self.aggregated::<GAddress>(project, "addresses", "compute:addresses"),
        );
        let mut inv = Inventory::default();
        match instances {
            Ok(list) => {
                for (_, i) in list {
                    let zone = last(&i.zone).to_string();
                    let region = region_of_zone(&zone);
                    if !self.wanted(&region) {
                        continue;
                    }
                    let state = match i.status.as_str() {
                        "RUNNING" => InstanceState::Running,
                        "PROVISIONING" | "STAGING" => InstanceState::Pending,
                        "STOPPING" | "SUSPENDING" => InstanceState::Stopping,
                        "TERMINATED" | "STOPPED" | "SUSPENDED" => InstanceState::Stopped,
                        _ => InstanceState::Other,
                    };
                    inv.instances.push(Instance {
                        critical: p.is_critical(&i.id, &i.name)
                            || i.labels.get("qmoi-critical").is_some_and(|v| v == "true"),
                        id: i.id,
                        name: i.name,
                        account: project.to_string(),
                        region,
                        zone,
                        itype: last(&i.machine_type).to_string(),
                        state,
                        raw_state: i.status,
                        launched: i.creation_timestamp.map(|t| t.with_timezone(&Utc)),
                        resource: String::new(),
                        status_check: None,
                    });
                }
            }
            Err(e) => inv.errors.push(e),
        }
        match disks {
            Ok(list) => {
                for (scope, d) in list {
                    let region = d
                        .region
                        .as_deref()
                        .map(|r| last(r).to_string())
                        .or_else(|| d.zone.as_deref().map(|z| region_of_zone(last(z))))
                        .unwrap_or_else(|| region_of_zone(&scope));
                    if !self.wanted(&region) {
                        continue;
                    }
                    inv.volumes.push(Volume {
                        id: d.id,
                        name: d.name,
                        account: project.to_string(),
                        region,
                        size_gb: d.size_gb.and_then(|s| s.parse().ok()),
                        attached: !d.users.is_empty(),
                        attached_to: d.users.first().map(|u| last(u).to_string()),
                        created: d.creation_timestamp.map(|t| t.with_timezone(&Utc)),
                    });
                }
            }
            Err(e) => inv.errors.push(e),
        }
        match addresses {
            Ok(list) => {
                for (scope, a) in list {
                    // Internal addresses cost nothing and are not public.
                    if a.address_type.as_deref() == Some("INTERNAL") {
                        continue;
                    }
                    let region = a.region.as_deref().map_or(scope, |r| last(r).to_string());
                    if !self.wanted(&region) && region != "global" {
                        continue;
                    }
                    inv.ips.push(PublicIp {
                        id: a.name,
                        address: a.address,
                        account: project.to_string(),
                        region,
                        associated: a.status == "IN_USE" || !a.users.is_empty(),
                        attached_to: a.users.first().map(|u| last(u).to_string()),
                    });
                }
            }
            Err(e) => inv.errors.push(e),
        }
        inv
    }

    /// Cloud Monitoring `compute.googleapis.com/instance/cpu/utilization` (mean per
    /// `period`) over the last `window`, one paged query per project; the fraction is
    /// turned into a percent.
    pub async fn cpu(
        &self,
        instances: &[&Instance],
        window: Duration,
        period: Duration,
        errors: &mut Vec<ApiError>,
    ) -> CpuSeries {
        let wanted: HashSet<&str> = instances.iter().map(|i| i.id.as_str()).collect();
        let wanted = &wanted;
        let projects: HashSet<&str> = instances.iter().map(|i| i.account.as_str()).collect();
        let end = Utc::now();
        let start = end - chrono::Duration::from_std(window).unwrap_or_else(|_| chrono::Duration::hours(1));
        let calls = projects.into_iter().map(|project| async move {
            let mut out = CpuSeries::new();
            let mut token: Option<String> = None;
            loop {
                let mut url = reqwest::Url::parse(&format!("{}/v3/projects/{project}/timeSeries", self.monitoring))
                    .map_err(|e| ApiError {
                        api: "monitoring:timeSeries".into(),
                        scope: project.into(),
                        kind: ErrorKind::Failed,
                        message: e.to_string(),
                    })?;
                url.query_pairs_mut()
                    .append_pair("filter", "metric.type = \"compute.googleapis.com/instance/cpu/utilization\"")
                    .append_pair("interval.startTime", &start.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .append_pair("interval.endTime", &end.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .append_pair("aggregation.alignmentPeriod", &format!("{}s", period.as_secs()))
                    .append_pair("aggregation.perSeriesAligner", "ALIGN_MEAN")
                    .append_pair("pageSize", "1000");
                if let Some(t) = &token {
                    url.query_pairs_mut().append_pair("pageToken", t);
                }
                let page: SeriesPage = self
                    .rest
                    .json(
                        &Call::get(url.to_string(), "monitoring:timeSeries", project),
                        RequestAuth::Bearer(&self.token),
                    )
                    .await?;
                for s in page.time_series {
                    let Some(id) = s.resource.labels.get("instance_id") else { continue };
                    if !wanted.contains(id.as_str()) {
                        continue;
                    }
                    out.entry(id.clone()).or_default().extend(
                        s.points
                            .iter()
                            .filter_map(|p| p.value.double_value)
                            .filter(|v| v.is_finite())
                            .map(|v| v * 100.0),
                    );
                }
                token = page.next_page_token.filter(|t| !t.is_empty());
                if token.is_none() {
                    return Ok::<_, ApiError>(out);
                }
            }
        });
        let mut out = CpuSeries::new();
        for r in futures_util::future::join_all(calls).await {
            match r {
                Ok(part) => out.extend(part),
                Err(e) => errors.push(e),
            }
        }
        out
    }

    /// Daily cost (credits included) from the BigQuery billing export, for the configured
    /// projects; `None` when no `billing_table` is configured.
    pub async fn cost(&self, from: NaiveDate, to: NaiveDate) -> Result<Option<CostData>, ApiError> {
        let (Some(table), Some(billing_project)) = (&self.billing_table, &self.billing_project) else {
            return Ok(None);
        };
        let api = "bigquery:query";
        let fail = |message: String| ApiError {
            api: api.into(),
            scope: billing_project.clone(),
            kind: ErrorKind::Failed,
            message,
        };
        let query = format!(
            "SELECT FORMAT_DATE('%Y-%m-%d', DATE(usage_start_time)) AS day, currency, \
             SUM(cost) + SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0)) AS total \
             FROM `{table}` \
             WHERE usage_start_time >= TIMESTAMP(@from_day) AND usage_start_time < TIMESTAMP(@to_day) \
             AND project.id IN UNNEST(@projects) \
             GROUP BY day, currency ORDER BY day"
        );
        let body = serde_json::json!({
            "query": query,
            "useLegacySql": false,
            "timeoutMs": 30000,
            "maxResults": 1000,
            "parameterMode": "NAMED",
            "queryParameters": [
                {"name": "from_day", "parameterType": {"type": "STRING"},
                 "parameterValue": {"value": from.format("%Y-%m-%d").to_string()}},
                {"name": "to_day", "parameterType": {"type": "STRING"},
                 "parameterValue": {"value": (to + chrono::Days::new(1)).format("%Y-%m-%d").to_string()}},
                {"name": "projects", "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
                 "parameterValue": {"arrayValues": self.projects.iter().map(|p| serde_json::json!({"value": p})).collect::<Vec<_>>()}},
            ],
        });
        let url = format!("{}/bigquery/v2/projects/{billing_project}/queries", self.bigquery);
        let mut answer: QueryAnswer = self
            .rest
            .json(&Call::post_json(url, &body, api, billing_project), RequestAuth::Bearer(&self.token))
            .await?;
        let mut per_day: BTreeMap<NaiveDate, f64> = BTreeMap::new();
        let mut currency = String::new();
        let mut polls = 0;
        loop {
            for row in &answer.rows {
                let cell = |i: usize| row.f.get(i).and_then(|c| c.v.as_str());
                let (Some(day), Some(total)) = (
                    cell(0).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
                    cell(2).and_then(|t| t.parse::<f64>().ok()).filter(|t| t.is_finite()),
                ) else {
                    continue;
                };
                *per_day.entry(day).or_default() += total;
                if currency.is_empty() {
                    currency = cell(1).unwrap_or("").to_string();
                }
            }
            let more = !answer.job_complete || answer.page_token.as_deref().is_some_and(|t| !t.is_empty());
            if !more {
                break;
            }
            polls += 1;
            if polls > 100 {
                return Err(fail("the billing query did not finish after 100 polls".into()));
            }
            let job =
                answer.job_reference.as_ref().ok_or_else(|| fail("an unfinished query without jobReference".into()))?;
            let mut url = reqwest::Url::parse(&format!(
                "{}/bigquery/v2/projects/{}/queries/{}",
                self.bigquery, job.project_id, job.job_id
            ))
            .map_err(|e| fail(e.to_string()))?;
            url.query_pairs_mut().append_pair("timeoutMs", "30000").append_pair("maxResults", "1000");
            if let Some(loc) = &job.location {
                url.query_pairs_mut().append_pair("location", loc);
            }
            // Rows already read are not asked for again: only a finished job's next page.
            if answer.job_complete
                && let Some(t) = &answer.page_token
            {
                url.query_pairs_mut().append_pair("pageToken", t);
            }
            let keep = answer.job_reference.take();
            answer = self
                .rest
                .json(
                    &Call::get(url.to_string(), "bigquery:getQueryResults", billing_project),
                    RequestAuth::Bearer(&self.token),
                )
                .await?;
            if answer.job_reference.is_none() {
                answer.job_reference = keep;
            }
        }
        Ok(Some(CostData {
            currency: if currency.is_empty() { "USD".into() } else { currency },
            days: per_day.into_iter().collect(),
        }))
    }
}

fn last(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// `us-central1-a` → `us-central1`.
fn region_of_zone(zone: &str) -> String {
    match zone.rsplit_once('-') {
        Some((r, z)) if z.len() == 1 => r.to_string(),
        _ => zone.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_map_to_regions() {
        assert_eq!(region_of_zone("us-central1-a"), "us-central1");
        assert_eq!(region_of_zone("europe-west4-b"), "europe-west4");
        assert_eq!(region_of_zone("us-central1"), "us-central1");
        assert_eq!(
            last("https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a/machineTypes/e2-medium"),
            "e2-medium"
        );
    }
}
