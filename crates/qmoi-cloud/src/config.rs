//! `config/cloud_resources.toml`: every key, its default and its check.

use qmoi_core::config::{ConfigDuration, EnvString, Problems, Secret, Validate};
use qmoi_core::runner::{HistorySettings, validate_interval_timeout};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudConfig {
    /// Inventory (instances, volumes, public IPs, status checks) is listed at this pace.
    pub interval: ConfigDuration,
    /// Bound on one provider's whole collection in one run.
    pub timeout: ConfigDuration,
    /// Bound on one HTTP request to a provider API.
    pub request_timeout: ConfigDuration,
    pub history: HistorySettings,
    /// `cloud_cost_cache.json` (cost results, fetched at most every `cost_refresh`).
    pub data_dir: EnvString,
    /// Requests in flight at once per provider (regions, pages, per-VM metric queries).
    pub max_concurrency: usize,
    /// CPU of running instances is fetched at most this often (metric APIs are billed per
    /// query: CloudWatch charges per metric requested).
    pub utilisation_interval: ConfigDuration,
    /// CPU averaged over this window (the "last hour").
    pub cpu_window: ConfigDuration,
    /// Average CPU over `cpu_window` at or above this percent: warning / critical.
    pub cpu_warning: f64,
    pub cpu_critical: f64,
    /// Idle: every daily CPU average below `idle_cpu_percent` for `idle_days` days
    /// (an info waste finding). Checked at most every `idle_check_interval`.
    pub idle_cpu_percent: f64,
    pub idle_days: u32,
    pub idle_check_interval: ConfigDuration,
    /// Cost APIs are billed per call: results are cached on disk and fetched again only
    /// when older than this.
    pub cost_refresh: ConfigDuration,
    /// A failed cost fetch is retried after this (not at every run).
    pub cost_retry: ConfigDuration,
    /// Forecast at or above these percents of the monthly budget: warning / critical.
    pub budget_warning_percent: f64,
    pub budget_critical_percent: f64,
    /// Cost anomaly: the last complete day costs at least `anomaly_factor` × the mean of
    /// the `anomaly_baseline_days` before it, and at least `anomaly_min_amount` more.
    pub anomaly_factor: f64,
    pub anomaly_min_amount: f64,
    pub anomaly_baseline_days: u32,
    /// At most this many instance / volume / IP rows in the report's details (totals are
    /// always exact).
    pub max_inventory_rows: usize,
    pub providers: Vec<Provider>,
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            interval: ConfigDuration::from_secs(300),
            timeout: ConfigDuration::from_secs(120),
            request_timeout: ConfigDuration::from_secs(30),
            history: HistorySettings { every: ConfigDuration::from_secs(3600), ..HistorySettings::default() },
            data_dir: EnvString::from("data"),
            max_concurrency: 8,
            utilisation_interval: ConfigDuration::from_secs(900),
            cpu_window: ConfigDuration::from_secs(3600),
            cpu_warning: 90.0,
            cpu_critical: 98.0,
            idle_cpu_percent: 5.0,
            idle_days: 7,
            idle_check_interval: ConfigDuration::from_secs(6 * 3600),
            cost_refresh: ConfigDuration::from_secs(6 * 3600),
            cost_retry: ConfigDuration::from_secs(1800),
            budget_warning_percent: 80.0,
            budget_critical_percent: 100.0,
            anomaly_factor: 2.0,
            anomaly_min_amount: 10.0,
            anomaly_baseline_days: 14,
            max_inventory_rows: 10_000,
            providers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Aws,
    Azure,
    Gcp,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Azure => "azure",
            ProviderKind::Gcp => "gcp",
        }
    }
}

/// How Azure and GCP get their tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// Azure: a service principal (tenant, client id, secret; from the config or the
    /// `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` / `AZURE_CLIENT_SECRET` environment).
    /// GCP: a service-account JSON key file (`credentials_file` or
    /// `GOOGLE_APPLICATION_CREDENTIALS`).
    #[default]
    Key,
    /// Azure managed identity / GCP metadata server (the instance's own identity).
    Metadata,
}

/// One account (AWS), subscription set (Azure) or project set (GCP).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Names the checks (`provider:<name>`, `budget:<name>` …) and metric labels.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// AWS: regions to list (required). Azure: locations, GCP: regions to keep (empty:
    /// everything the subscription / project has).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Monthly budget in the account's billing currency (no budget: no budget check).
    #[serde(default)]
    pub monthly_budget: Option<f64>,
    /// Fetch cost (month to date, forecast, anomaly). Off: inventory and utilisation only.
    #[serde(default = "yes")]
    pub cost: bool,
    /// Instances that must run: by id or name. Also every instance tagged / labelled
    /// `qmoi-critical = "true"`. Such an instance not running is critical.
    #[serde(default)]
    pub critical_instances: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,

    // --- AWS ---
    /// A profile from ~/.aws/config (SSO, assume-role, credential_process all work);
    /// default: the standard chain (environment, profile, web identity, instance role).
    #[serde(default)]
    pub profile: Option<String>,
    /// One endpoint for EC2, CloudWatch and Cost Explorer (an emulator, a VPC endpoint).
    #[serde(default)]
    pub endpoint_url: Option<EnvString>,

    // --- Azure ---
    #[serde(default)]
    pub subscriptions: Vec<String>,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub tenant_id: Option<EnvString>,
    #[serde(default)]
    pub client_id: Option<EnvString>,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub management_url: Option<EnvString>,
    #[serde(default)]
    pub login_url: Option<EnvString>,
    /// The token's scope (sovereign clouds: `https://management.usgovcloudapi.net/.default`).
    #[serde(default)]
    pub token_scope: Option<String>,
    /// Azure instance metadata service (managed identity).
    #[serde(default)]
    pub imds_url: Option<EnvString>,

    // --- GCP ---
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default)]
    pub credentials_file: Option<EnvString>,
    /// Default: the key file's `token_uri`.
    #[serde(default)]
    pub token_url: Option<EnvString>,
    #[serde(default)]
    pub compute_url: Option<EnvString>,
    #[serde(default)]
    pub monitoring_url: Option<EnvString>,
    #[serde(default)]
    pub bigquery_url: Option<EnvString>,
    #[serde(default)]
    pub metadata_url: Option<EnvString>,
    /// The BigQuery billing export table (`project.dataset.gcp_billing_export_v1_XXXX`).
    /// Without it GCP cost is not fetched.
    #[serde(default)]
    pub billing_table: Option<String>,
    /// The project the billing query runs (and is billed) in; default the first project.
    #[serde(default)]
    pub billing_project: Option<String>,
}

fn yes() -> bool {
    true
}

pub const AZURE_MANAGEMENT: &str = "https://management.azure.com";
pub const AZURE_LOGIN: &str = "https://login.microsoftonline.com";
pub const AZURE_SCOPE: &str = "https://management.azure.com/.default";
pub const AZURE_IMDS: &str = "http://169.254.169.254";
pub const GCP_COMPUTE: &str = "https://compute.googleapis.com";
pub const GCP_MONITORING: &str = "https://monitoring.googleapis.com";
pub const GCP_BIGQUERY: &str = "https://bigquery.googleapis.com";
pub const GCP_METADATA: &str = "http://metadata.google.internal";
pub const GCP_TOKEN: &str = "https://oauth2.googleapis.com/token";

impl Provider {
    /// `url` or `default`, without a trailing slash.
    pub fn url(url: &Option<EnvString>, default: &str) -> String {
        url.as_ref().map_or(default, EnvString::as_str).trim_end_matches('/').to_string()
    }

    /// Is `id_or_name` listed in `critical_instances`?
    pub fn is_critical(&self, id: &str, name: &str) -> bool {
        self.critical_instances.iter().any(|c| c == id || (!name.is_empty() && c == name))
    }
}

/// Is `url` allowed to carry credentials: https, or http to a loopback host (tests,
/// local proxies)?
pub fn credential_safe(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!("'{url}' would send credentials unencrypted; use https (http only on loopback)")),
        s => Err(format!("'{url}': unsupported scheme '{s}'")),
    }
}

pub fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(qmoi_core::net::is_loopback_host)
}

qmoi_core::monitor_config!(CloudConfig);

impl Validate for CloudConfig {
    fn validate(&self, p: &mut Problems) {
        validate_interval_timeout(self.interval, self.timeout, p);
        self.history.validate(p);
        if self.request_timeout.get() < Duration::from_millis(100) {
            p.push("request_timeout", format!("must be at least 100ms, got '{}'", self.request_timeout));
        }
        if self.max_concurrency == 0 || self.max_concurrency > 256 {
            p.push("max_concurrency", format!("must be 1..=256, got {}", self.max_concurrency));
        }
        p.check_thresholds("cpu", self.cpu_warning, self.cpu_critical, false, (0.0, 100.0));
        p.check_thresholds("budget", self.budget_warning_percent, self.budget_critical_percent, false, (0.0, 10_000.0));
        if !(0.0..=100.0).contains(&self.idle_cpu_percent) {
            p.push("idle_cpu_percent", format!("must be 0..=100, got {}", self.idle_cpu_percent));
        }
        if self.idle_days == 0 || self.idle_days > 60 {
            p.push(
                "idle_days",
                format!("must be 1..=60 (metric APIs keep daily data that long), got {}", self.idle_days),
            );
        }
        if self.cpu_window.get() < Duration::from_secs(300) || self.cpu_window.get() > Duration::from_secs(86_400) {
            p.push("cpu_window", format!("must be between 5m and 1d, got '{}'", self.cpu_window));
        }
        if self.anomaly_factor <= 1.0 || !self.anomaly_factor.is_finite() {
            p.push("anomaly_factor", format!("must be above 1, got {}", self.anomaly_factor));
        }
        if self.anomaly_baseline_days < 3 || self.anomaly_baseline_days > 60 {
            p.push("anomaly_baseline_days", format!("must be 3..=60, got {}", self.anomaly_baseline_days));
        }
        if self.cost_refresh.get() < Duration::from_secs(600) {
            p.push(
                "cost_refresh",
                format!("must be at least 10m (cost APIs are billed per call), got '{}'", self.cost_refresh),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, pr) in self.providers.iter().enumerate() {
            pr.validate(&format!("providers[{i}]"), p);
            if !names.insert(pr.name.as_str()) {
                p.push(format!("providers[{i}].name"), format!("'{}' is used twice; names must be unique", pr.name));
            }
        }
    }
}

impl Provider {
    fn validate(&self, key: &str, p: &mut Problems) {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            p.push(format!("{key}.name"), format!("must be letters, digits, '-', '_' or '.', got '{}'", self.name));
        }
        if let Some(b) = self.monthly_budget
            && !(b > 0.0 && b.is_finite())
        {
            p.push(format!("{key}.monthly_budget"), format!("must be a positive amount, got {b}"));
        }
        let wrong = |p: &mut Problems, field: &str, set: bool| {
            if set {
                p.push(format!("{key}.{field}"), format!("does not apply to type = \"{}\"", self.kind.as_str()));
            }
        };
        let url = |p: &mut Problems, field: &str, v: &Option<EnvString>, creds: bool| {
            if let Some(u) = v {
                let r = if creds {
                    credential_safe(u.as_str())
                } else {
                    reqwest::Url::parse(u.as_str()).map(|_| ()).map_err(|e| format!("'{u}' is not a URL: {e}"))
                };
                if let Err(e) = r {
                    p.push(format!("{key}.{field}"), e);
                }
            }
        };
        match self.kind {
            ProviderKind::Aws => {
                if self.regions.is_empty() {
                    p.push(format!("{key}.regions"), "AWS needs at least one region (e.g. [\"us-east-1\"])");
                }
                url(p, "endpoint_url", &self.endpoint_url, false);
                wrong(p, "subscriptions", !self.subscriptions.is_empty());
                wrong(p, "projects", !self.projects.is_empty());
                wrong(p, "tenant_id", self.tenant_id.is_some());
                wrong(p, "credentials_file", self.credentials_file.is_some());
                wrong(p, "billing_table", self.billing_table.is_some());
            }
            ProviderKind::Azure => {
                if self.subscriptions.is_empty() {
                    p.push(format!("{key}.subscriptions"), "Azure needs at least one subscription id");
                }
                url(p, "management_url", &self.management_url, true);
                url(p, "login_url", &self.login_url, true);
                url(p, "imds_url", &self.imds_url, false);
                wrong(p, "profile", self.profile.is_some());
                wrong(p, "endpoint_url", self.endpoint_url.is_some());
                wrong(p, "projects", !self.projects.is_empty());
                wrong(p, "credentials_file", self.credentials_file.is_some());
                wrong(p, "billing_table", self.billing_table.is_some());
            }
            ProviderKind::Gcp => {
                if self.projects.is_empty() && self.auth == Auth::Metadata {
                    p.push(format!("{key}.projects"), "with auth = \"metadata\" the projects must be listed");
                }
                url(p, "token_url", &self.token_url, true);
                url(p, "compute_url", &self.compute_url, true);
                url(p, "monitoring_url", &self.monitoring_url, true);
                url(p, "bigquery_url", &self.bigquery_url, true);
                url(p, "metadata_url", &self.metadata_url, false);
                if let Some(t) = &self.billing_table
                    && (t.split('.').count() != 3 || t.contains(|c: char| c == '`' || c.is_whitespace()))
                {
                    p.push(format!("{key}.billing_table"), format!("must be 'project.dataset.table', got '{t}'"));
                }
                wrong(p, "profile", self.profile.is_some());
                wrong(p, "endpoint_url", self.endpoint_url.is_some());
                wrong(p, "subscriptions", !self.subscriptions.is_empty());
                wrong(p, "tenant_id", self.tenant_id.is_some());
            }
        }
    }
}
