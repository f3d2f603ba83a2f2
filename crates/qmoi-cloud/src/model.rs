//! What a provider returns, in one shape for AWS, Azure and GCP.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An instance's state, normalised across providers (the provider's own word is kept in
/// [`Instance::raw_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    Running,
    Pending,
    Stopping,
    Stopped,
    Terminated,
    Other,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Running => "running",
            InstanceState::Pending => "pending",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Terminated => "terminated",
            InstanceState::Other => "other",
        }
    }
}

/// A provider's status checks of a running instance (AWS `DescribeInstanceStatus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StatusCheck {
    /// The instance's own check (`ok`, `impaired`, `initializing`, `insufficient-data` …).
    pub instance: String,
    /// The provider's hardware / network check.
    pub system: String,
}

impl StatusCheck {
    pub fn failed(&self) -> bool {
        self.instance == "impaired" || self.system == "impaired"
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Instance {
    pub id: String,
    pub name: String,
    /// AWS account profile, Azure subscription or GCP project.
    pub account: String,
    pub region: String,
    pub zone: String,
    #[serde(rename = "type")]
    pub itype: String,
    pub state: InstanceState,
    pub raw_state: String,
    pub launched: Option<DateTime<Utc>>,
    /// Resource id used by metric APIs (Azure: the ARM id) when it differs from `id`.
    #[serde(skip)]
    pub resource: String,
    pub critical: bool,
    pub status_check: Option<StatusCheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Volume {
    pub id: String,
    pub name: String,
    pub account: String,
    pub region: String,
    pub size_gb: Option<f64>,
    pub attached: bool,
    /// The instance it is attached to, when the provider says.
    pub attached_to: Option<String>,
    pub created: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublicIp {
    pub id: String,
    pub address: String,
    pub account: String,
    pub region: String,
    pub associated: bool,
    pub attached_to: Option<String>,
}

/// One failed API call, reported as its own check; the other APIs and providers go on.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    /// `ec2:DescribeVolumes`, `compute:disks`, `monitor:metrics` …
    pub api: String,
    /// Region, subscription or project the call was for.
    pub scope: String,
    pub kind: ErrorKind,
    /// The provider's own message (code and text).
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No credentials, bad credentials, expired and not refreshable.
    Credentials,
    /// Authenticated, but not allowed to call this API.
    Denied,
    /// Still throttled after backing off.
    Throttled,
    /// Connection refused, DNS, TLS, timeout.
    Unreachable,
    /// Any other error answer or an answer we could not read.
    Failed,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Credentials => "credentials rejected",
            ErrorKind::Denied => "permission denied",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Failed => "failed",
        }
    }
}

/// Everything one provider's inventory listing found.
#[derive(Debug, Default)]
pub struct Inventory {
    pub instances: Vec<Instance>,
    pub volumes: Vec<Volume>,
    pub ips: Vec<PublicIp>,
    pub errors: Vec<ApiError>,
    /// Scopes (regions, subscriptions, projects) listed.
    pub scopes: Vec<String>,
    /// API requests made.
    pub requests: u64,
}

impl Inventory {
    /// One inventory from the parts listed per region / subscription / project.
    pub fn merge(scopes: Vec<String>, parts: Vec<Inventory>, requests: u64) -> Self {
        let mut inv = Inventory { scopes, requests, ..Inventory::default() };
        for p in parts {
            inv.instances.extend(p.instances);
            inv.volumes.extend(p.volumes);
            inv.ips.extend(p.ips);
            inv.errors.extend(p.errors);
        }
        inv
    }
}

/// Per instance id: the average CPU percent over a window, or daily averages.
pub type CpuSeries = BTreeMap<String, Vec<f64>>;

/// Idle instances: id → highest daily CPU average.
pub type IdleSet = BTreeMap<String, f64>;

/// A cached result and when it was fetched.
pub type Stamped<T> = (DateTime<Utc>, std::sync::Arc<T>);

/// Daily cost of one provider entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CostData {
    pub currency: String,
    /// (day, amount), sorted by day.
    pub days: Vec<(NaiveDate, f64)>,
}
