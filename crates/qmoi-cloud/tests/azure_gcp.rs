//! Azure and Google Cloud have no emulator. These tests run the real `qmoi-cloud` binary
//! against a local HTTP server (axum, on 127.0.0.1) that implements the documented request
//! and response shapes of the APIs the monitor calls. They are protocol fixtures written
//! from the providers' API references (Azure Resource Manager: OAuth2 v2.0 token endpoint,
//! Compute virtualMachines with statusOnly, disks, Network publicIPAddresses, Insights
//! metrics, Cost Management query; Google: OAuth2 JWT-bearer token endpoint, Compute
//! aggregated instances/disks/addresses, Monitoring timeSeries, BigQuery jobs.query and
//! getQueryResults), including pagination (`nextLink` / `nextPageToken`), throttling (429
//! with Retry-After), an expired token and permission errors. The fixture also checks what
//! the monitor sends: the client secret, the JWT's signature and claims, the bearer token.

mod common;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{Datelike, Utc};
use common::{Env, alert_fingerprints, alert_level, has_check, metric, names, status};
use qmoi_testkit::check;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Seen {
    /// Calls per route key.
    calls: BTreeMap<String, usize>,
    tokens_issued: usize,
    /// Tokens the fixture treats as expired.
    expired: Vec<String>,
    /// Bodies of cost / billing queries.
    queries: Vec<String>,
    /// Problems with what the monitor sent (wrong token, bad JWT …).
    complaints: Vec<String>,
}

struct Fixture {
    base: String,
    shared: Shared,
}

/// What the server saw, the GCP key's public key (PKCS#1 DER, to verify JWTs), its base URL.
type Shared = Arc<(Mutex<Seen>, Vec<u8>, String)>;

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (status, [("content-type", "application/json")], v.to_string()).into_response()
}

fn count(seen: &Mutex<Seen>, key: &str) -> usize {
    let mut s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = s.calls.entry(key.to_string()).or_default();
    *n += 1;
    *n
}

fn complain(seen: &Mutex<Seen>, what: String) {
    seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).complaints.push(what);
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect())
        .unwrap_or_default()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (i + 2 < b.len()).then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok()).flatten();
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bearer(h: &HeaderMap) -> String {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string()
}

async fn handle(State(st): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let (seen, gcp_public, base) = (&st.0, &st.1, &st.2);
    let path = uri.path().to_string();
    let q = query(&uri);
    let form: HashMap<String, String> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();

    // ---------------- Azure ----------------
    if path == "/azure-tenant/oauth2/v2.0/token" && method == Method::POST {
        count(seen, "azure:token");
        if form.get("client_secret").map(String::as_str) != Some("s3cret")
            || form.get("client_id").map(String::as_str) != Some("app-id")
        {
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x"}),
            );
        }
        if form.get("scope").map(String::as_str) != Some("https://management.azure.com/.default")
            || form.get("grant_type").map(String::as_str) != Some("client_credentials")
        {
            complain(seen, format!("azure token request: {form:?}"));
        }
        let mut s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        s.tokens_issued += 1;
        let t = format!("az-{}", s.tokens_issued);
        return json(
            StatusCode::OK,
            serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": t}),
        );
    }
    if path.starts_with("/subscriptions/") || path.contains("/providers/Microsoft.Insights/") {
        let tok = bearer(&headers);
        {
            let mut s = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !tok.starts_with("az-") {
                s.complaints.push(format!("{path}: bearer '{tok}'"));
                return json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": {"code": "InvalidAuthenticationToken", "message": "no token"}}),
                );
            }
            // The first token expires at its first use on the VM list.
            if tok == "az-1" && path.ends_with("/virtualMachines") {
                s.expired.push(tok.clone());
            }
            if s.expired.contains(&tok) {
                return json(
                    StatusCode::UNAUTHORIZED,
                    serde_json::json!({"error": {"code": "ExpiredAuthenticationToken", "message": "The access token expiry UTC time is earlier than current UTC time."}}),
                );
            }
        }
        let sub = path.split('/').nth(2).unwrap_or("").to_string();
        let vm = |name: &str, power: &str, size: &str| {
            serde_json::json!({
                "id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{name}"),
                "name": name,
                "location": "westeurope",
                "zones": ["1"],
                "tags": {},
                "properties": {
                    "vmId": format!("vmid-{name}"),
                    "hardwareProfile": {"vmSize": size},
                    "timeCreated": "2026-01-02T03:04:05.0000000+00:00",
                    "instanceView": {"statuses": [
                        {"code": "ProvisioningState/succeeded", "level": "Info"},
                        {"code": format!("PowerState/{power}"), "level": "Info", "displayStatus": format!("VM {power}")}
                    ]}
                }
            })
        };
        if path.ends_with("/Microsoft.Compute/virtualMachines") {
            if !q.contains_key("api-version") || q.get("statusOnly").map(String::as_str) != Some("true") {
                complain(seen, format!("VM list without api-version/statusOnly: {uri}"));
            }
            if sub == "sub-denied" {
                return json(StatusCode::OK, serde_json::json!({"value": []}));
            }
            // Two pages.
            if q.contains_key("$skiptoken") {
                return json(
                    StatusCode::OK,
                    serde_json::json!({"value": [vm("db-1", "deallocated", "Standard_D4s_v5")]}),
                );
            }
            return json(
                StatusCode::OK,
                serde_json::json!({
                    "value": [vm("web-1", "running", "Standard_B2s"), vm("idle-1", "running", "Standard_B2s"), vm("hot-1", "running", "Standard_F2s")],
                    "nextLink": format!("{base}/subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01&statusOnly=true&$skiptoken=2")
                }),
            );
        }
        if path.ends_with("/Microsoft.Compute/disks") {
            // Throttled once: 429 with Retry-After.
            if count(seen, &format!("azure:disks:{sub}")) == 1 {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1"), ("content-type", "application/json")],
                    r#"{"error":{"code":"TooManyRequests","message":"Rate limit exceeded"}}"#,
                )
                    .into_response();
            }
            if sub == "sub-denied" {
                return json(StatusCode::OK, serde_json::json!({"value": []}));
            }
            return json(
                StatusCode::OK,
                serde_json::json!({"value": [
                    {"id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/disks/web-1-os"), "name": "web-1-os", "location": "westeurope",
                     "managedBy": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-1"),
                     "properties": {"diskSizeGB": 30, "diskState": "Attached", "timeCreated": "2026-01-02T03:04:05Z"}},
                    {"id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/disks/orphan"), "name": "orphan", "location": "westeurope",
                     "properties": {"diskSizeGB": 128, "diskState": "Unattached", "timeCreated": "2026-01-02T03:04:05Z"}}
                ]}),
            );
        }
        if path.ends_with("/Microsoft.Network/publicIPAddresses") {
            if sub == "sub-denied" {
                return json(
                    StatusCode::FORBIDDEN,
                    serde_json::json!({"error": {"code": "AuthorizationFailed", "message": "The client 'app-id' does not have authorization to perform action 'Microsoft.Network/publicIPAddresses/read' over scope '/subscriptions/sub-denied'."}}),
                );
            }
            return json(
                StatusCode::OK,
                serde_json::json!({"value": [
                    {"id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/web-ip"), "name": "web-ip", "location": "westeurope",
                     "properties": {"ipAddress": "20.1.2.3", "ipConfiguration": {"id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/web-nic/ipConfigurations/ipconfig1")}}},
                    {"id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/spare-ip"), "name": "spare-ip", "location": "westeurope",
                     "properties": {"ipAddress": "20.1.2.4"}}
                ]}),
            );
        }
        if path.ends_with("/providers/Microsoft.Insights/metrics") {
            let name = path.split("/virtualMachines/").nth(1).and_then(|s| s.split('/').next()).unwrap_or("");
            if q.get("metricnames").map(String::as_str) != Some("Percentage CPU") || !q.contains_key("timespan") {
                complain(seen, format!("metrics query: {uri}"));
            }
            let daily = q.get("interval").map(String::as_str) == Some("P1D");
            let (n, v) = match (name, daily) {
                ("idle-1", true) => (7, 1.5),
                (_, true) => (7, 30.0),
                ("hot-1", false) => (12, 95.0),
                (_, false) => (12, 20.0),
            };
            let data: Vec<serde_json::Value> = (0..n)
                .map(|i| serde_json::json!({"timeStamp": format!("2026-11-2{}T00:00:00Z", i % 7), "average": v}))
                .collect();
            return json(
                StatusCode::OK,
                serde_json::json!({"value": [{"name": {"value": "Percentage CPU"}, "unit": "Percent", "timeseries": [{"data": data}]}]}),
            );
        }
        if path.ends_with("/providers/Microsoft.CostManagement/query") && method == Method::POST {
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .queries
                .push(String::from_utf8_lossy(&body).into_owned());
            if sub == "sub-denied" {
                return json(
                    StatusCode::OK,
                    serde_json::json!({"properties": {"columns": [{"name": "Cost"}, {"name": "UsageDate"}, {"name": "Currency"}], "rows": []}}),
                );
            }
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let from = req["timePeriod"]["from"]
                .as_str()
                .and_then(|s| chrono::NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").ok());
            let to = req["timePeriod"]["to"]
                .as_str()
                .and_then(|s| chrono::NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").ok());
            let (Some(from), Some(to)) = (from, to) else {
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": {"code": "BadRequest", "message": "timePeriod"}}),
                );
            };
            let rows: Vec<serde_json::Value> = from
                .iter_days()
                .take_while(|d| *d <= to)
                .map(|d| serde_json::json!([5.0, d.format("%Y%m%d").to_string().parse::<u64>().unwrap_or(0), "EUR"]))
                .collect();
            // Second page via nextLink.
            let second = q.contains_key("$skiptoken");
            let half = rows.len() / 2;
            let (part, next) = if second {
                (rows[half..].to_vec(), serde_json::Value::Null)
            } else {
                (
                    rows[..half].to_vec(),
                    serde_json::Value::String(format!(
                        "{base}/subscriptions/{sub}/providers/Microsoft.CostManagement/query?api-version=2023-03-01&$skiptoken=p2"
                    )),
                )
            };
            return json(
                StatusCode::OK,
                serde_json::json!({"properties": {"nextLink": next, "columns": [{"name": "Cost", "type": "Number"}, {"name": "UsageDate", "type": "Number"}, {"name": "Currency", "type": "String"}], "rows": part}}),
            );
        }
    }

    // ---------------- Google ----------------
    if path == "/gcp/token" && method == Method::POST {
        count(seen, "gcp:token");
        let assertion = form.get("assertion").cloned().unwrap_or_default();
        if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
            complain(seen, format!("gcp grant: {form:?}"));
        }
        let parts: Vec<&str> = assertion.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let ok = parts.len() == 3 && {
            let key = aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                gcp_public.as_slice(),
            );
            let sig = b64.decode(parts[2]).unwrap_or_default();
            key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).is_ok()
        };
        let claims: serde_json::Value = parts
            .get(1)
            .and_then(|p| b64.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if !ok
            || claims["iss"] != "monitor@proj-1.iam.gserviceaccount.com"
            || claims["aud"] != format!("{base}/gcp/token")
        {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
            );
        }
        let scope = claims["scope"].as_str().unwrap_or("");
        if !scope.contains("compute.readonly") || !scope.contains("monitoring.read") {
            complain(seen, format!("gcp scope: {scope}"));
        }
        return json(
            StatusCode::OK,
            serde_json::json!({"access_token": "gtok", "expires_in": 3599, "token_type": "Bearer"}),
        );
    }
    if path.starts_with("/compute/v1/projects/") || path.starts_with("/v3/projects/") || path.starts_with("/bigquery/")
    {
        if bearer(&headers) != "gtok" {
            complain(seen, format!("{path}: bearer '{}'", bearer(&headers)));
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "Request had invalid authentication credentials."}}),
            );
        }
        let zone = |z: &str| format!("https://www.googleapis.com/compute/v1/projects/proj-1/zones/{z}");
        let inst = |id: &str, name: &str, z: &str, status: &str, labels: serde_json::Value| {
            serde_json::json!({"id": id, "name": name, "zone": zone(z), "status": status,
              "machineType": format!("{}/machineTypes/e2-medium", zone(z)),
              "creationTimestamp": "2026-01-02T03:04:05.000-07:00", "labels": labels})
        };
        if path == "/compute/v1/projects/proj-1/aggregated/instances" {
            if q.get("pageToken").map(String::as_str) == Some("p2") {
                return json(
                    StatusCode::OK,
                    serde_json::json!({"items": {
                        "zones/europe-west1-b": {"instances": [inst("103", "batch-1", "europe-west1-b", "TERMINATED", serde_json::json!({"qmoi-critical": "true"}))]},
                        "zones/asia-east1-a": {"warning": {"code": "NO_RESULTS_ON_PAGE", "message": "There are no results for scope 'zones/asia-east1-a' on this page."}}
                    }}),
                );
            }
            return json(
                StatusCode::OK,
                serde_json::json!({"items": {
                "zones/us-central1-a": {"instances": [
                    inst("101", "api-1", "us-central1-a", "RUNNING", serde_json::json!({})),
                    inst("102", "quiet-1", "us-central1-a", "RUNNING", serde_json::json!({}))
                ]}
            }, "nextPageToken": "p2"}),
            );
        }
        if path == "/compute/v1/projects/proj-1/aggregated/disks" {
            return json(
                StatusCode::OK,
                serde_json::json!({"items": {"zones/us-central1-a": {"disks": [
                    {"id": "201", "name": "api-1", "sizeGb": "10", "zone": zone("us-central1-a"), "users": [format!("{}/instances/api-1", zone("us-central1-a"))]},
                    {"id": "202", "name": "scratch", "sizeGb": "500", "zone": zone("us-central1-a"), "users": []}
                ]}}}),
            );
        }
        if path == "/compute/v1/projects/proj-1/aggregated/addresses" {
            return json(
                StatusCode::OK,
                serde_json::json!({"items": {"regions/us-central1": {"addresses": [
                    {"id": "301", "name": "api-ip", "address": "34.1.2.3", "status": "IN_USE", "addressType": "EXTERNAL", "region": "https://www.googleapis.com/compute/v1/projects/proj-1/regions/us-central1", "users": ["x/forwardingRules/api"]},
                    {"id": "302", "name": "left-ip", "address": "34.1.2.4", "status": "RESERVED", "addressType": "EXTERNAL", "region": "https://www.googleapis.com/compute/v1/projects/proj-1/regions/us-central1"},
                    {"id": "303", "name": "internal", "address": "10.0.0.9", "status": "RESERVED", "addressType": "INTERNAL", "region": "https://www.googleapis.com/compute/v1/projects/proj-1/regions/us-central1"}
                ]}}}),
            );
        }
        if path == "/v3/projects/proj-1/timeSeries" {
            // Throttled once.
            if count(seen, "gcp:timeSeries") == 1 {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1"), ("content-type", "application/json")],
                    r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"Quota exceeded"}}"#,
                )
                    .into_response();
            }
            if !q.get("filter").is_some_and(|f| f.contains("compute.googleapis.com/instance/cpu/utilization")) {
                complain(seen, format!("timeSeries filter: {uri}"));
            }
            let daily = q.get("aggregation.alignmentPeriod").map(String::as_str) == Some("86400s");
            let series = |id: &str, v: f64, n: usize| {
                serde_json::json!({"metric": {"type": "compute.googleapis.com/instance/cpu/utilization"},
                  "resource": {"type": "gce_instance", "labels": {"instance_id": id, "zone": "us-central1-a", "project_id": "proj-1"}},
                  "points": (0..n).map(|_| serde_json::json!({"interval": {"endTime": "2026-11-27T00:00:00Z"}, "value": {"doubleValue": v}})).collect::<Vec<_>>()})
            };
            if q.get("pageToken").map(String::as_str) == Some("t2") {
                let v = if daily { 0.02 } else { 0.10 };
                return json(
                    StatusCode::OK,
                    serde_json::json!({"timeSeries": [series("102", v, if daily { 7 } else { 12 })]}),
                );
            }
            let v = if daily { 0.5 } else { 0.99 };
            return json(
                StatusCode::OK,
                serde_json::json!({"timeSeries": [series("101", v, if daily { 7 } else { 12 })], "nextPageToken": "t2"}),
            );
        }
        if path == "/bigquery/v2/projects/proj-1/queries" && method == Method::POST {
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .queries
                .push(String::from_utf8_lossy(&body).into_owned());
            // Not finished at once: the client must poll getQueryResults.
            return json(
                StatusCode::OK,
                serde_json::json!({"kind": "bigquery#queryResponse", "jobComplete": false,
                "jobReference": {"projectId": "proj-1", "jobId": "job_1", "location": "EU"}}),
            );
        }
        if path == "/bigquery/v2/projects/proj-1/queries/job_1" {
            let today = Utc::now().date_naive();
            let rows: Vec<serde_json::Value> = (0..20u64)
                .map(|back| {
                    let d = today - chrono::Days::new(back);
                    serde_json::json!({"f": [{"v": d.format("%Y-%m-%d").to_string()}, {"v": "USD"}, {"v": "7.5"}]})
                })
                .collect();
            return json(
                StatusCode::OK,
                serde_json::json!({"kind": "bigquery#getQueryResultsResponse", "jobComplete": true,
                "jobReference": {"projectId": "proj-1", "jobId": "job_1", "location": "EU"},
                "schema": {"fields": [{"name": "day", "type": "STRING"}, {"name": "currency", "type": "STRING"}, {"name": "total", "type": "FLOAT"}]},
                "rows": rows, "totalRows": "20"}),
            );
        }
    }
    complain(seen, format!("unexpected request {method} {uri}"));
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({"error": {"code": "NotFound", "message": format!("no fixture for {path}")}}),
    )
}

fn start_fixture() -> (Fixture, aws_lc_rs::signature::RsaKeyPair) {
    let pair =
        aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap_or_else(|e| panic!("{e}"));
    let public = pair.public_key().as_ref().to_vec();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
    let base = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
    let shared: Shared = Arc::new((Mutex::new(Seen::default()), public, base.clone()));
    let st = shared.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| panic!("{e}"));
            let app = axum::Router::new().fallback(handle).with_state(st);
            let _ = axum::serve(l, app).await;
        });
    });
    (Fixture { base, shared }, pair)
}

/// What the fixture server saw so far.
fn seen_now(f: &Fixture) -> Seen {
    let s = f.shared.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Seen {
        calls: s.calls.clone(),
        tokens_issued: s.tokens_issued,
        expired: s.expired.clone(),
        queries: s.queries.clone(),
        complaints: s.complaints.clone(),
    }
}

fn gcp_key_file(env: &Env, pair: &aws_lc_rs::signature::RsaKeyPair, base: &str) -> String {
    let der = pair.as_der().unwrap_or_else(|e| panic!("{e}"));
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<String> = b64.as_bytes().chunks(64).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "monitor@proj-1.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("{base}/gcp/token"),
    });
    let path = env.path("gcp-key.json");
    std::fs::write(&path, key.to_string()).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

#[test]
fn azure_inventory_metrics_cost_with_paging_throttling_expiry_and_a_denied_api() {
    let (fx, _) = start_fixture();
    let mut env = Env::new(&format!(
        r#"
[[providers]]
name = "az"
type = "azure"
subscriptions = ["sub-a", "sub-denied"]
tenant_id = "azure-tenant"
client_id = "app-id"
client_secret = "${{TEST_AZURE_SECRET}}"
management_url = "{base}"
login_url = "{base}"
monthly_budget = 1000.0
critical_instances = ["db-1"]
"#,
        base = fx.base
    ));
    env.set("TEST_AZURE_SECRET", "s3cret");
    let r = env.once();
    let all = names(&r);
    let seen = seen_now(&fx);
    assert!(seen.complaints.is_empty(), "the monitor sent something wrong: {:?}", seen.complaints);
    // The expired first token was replaced once: two tokens, not one per request.
    assert_eq!(seen.tokens_issued, 2, "{:?}", seen.calls);
    // Both pages of VMs (the second through nextLink).
    let p = check(&r, "provider:az");
    assert_eq!(p["status"], "ok", "{all}");
    assert!(p["message"].as_str().unwrap_or("").contains("4 instances (3 running)"), "{p}");
    // The deallocated critical VM.
    let db = check(&r, "instance:az:vmid-db-1");
    assert_eq!(db["status"], "critical", "{all}");
    assert!(db["message"].as_str().unwrap_or("").contains("stopped (deallocated)"), "{db}");
    // CPU 95% over the last hour: warning (90/98).
    assert_eq!(status(&r, "cpu:az:vmid-hot-1"), "warning", "{all}");
    // Disks came through after one 429 with Retry-After; the orphan disk and the spare IP
    // are waste, and idle-1 (1.5% a day for 7 days) is idle.
    assert_eq!(seen.calls.get("azure:disks:sub-a"), Some(&2), "{:?}", seen.calls);
    let fps = alert_fingerprints(&r);
    assert!(
        fps.iter()
            .any(|f| f.starts_with("cloud_resources/waste:az:unattached_volume:") && f.ends_with("/disks/orphan")),
        "{fps:?}"
    );
    assert!(
        fps.iter().any(|f| f.starts_with("cloud_resources/waste:az:unassociated_ip:") && f.ends_with("/spare-ip")),
        "{fps:?}"
    );
    assert_eq!(
        alert_level(&r, "cloud_resources/waste:az:idle_instance:vmid-idle-1").as_deref(),
        Some("info"),
        "{fps:?}"
    );
    assert!(!fps.iter().any(|f| f.ends_with("/web-ip")), "{fps:?}");
    // The denied API of one subscription is its own check; the rest went on.
    let denied = check(&r, "api:az:network:publicIPAddresses:sub-denied");
    assert_eq!(denied["status"], "unknown");
    let msg = denied["message"].as_str().unwrap_or("");
    assert!(msg.contains("permission denied") && msg.contains("AuthorizationFailed"), "{msg}");
    // Cost: 5 EUR a day over both pages; the month to date is 5 × today's day of month.
    let today = Utc::now().date_naive();
    let mtd = metric(&r, "qmoi_cloud_cost_month_to_date{provider=\"az\"}").unwrap_or(-1.0);
    assert!((mtd - 5.0 * f64::from(today.day())).abs() < 0.01, "month to date {mtd}");
    assert!(check(&r, "cost:az")["message"].as_str().unwrap_or("").contains("EUR"), "{all}");
    assert_eq!(status(&r, "budget:az"), "ok", "5 EUR a day is far below 1000: {all}");
    assert_eq!(status(&r, "cost_anomaly:az"), "ok", "{all}");
    assert!(seen.queries.iter().all(|q| q.contains("\"timeframe\":\"Custom\"")), "{:?}", seen.queries);
    // The secret never reaches the report or --print-config.
    let text = std::fs::read_to_string(env.path("logs/cloud_resources_latest.json")).unwrap_or_default();
    assert!(!text.contains("s3cret"));
    let printed = env.run(&["--print-config"]);
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("***") && !printed.contains("s3cret"), "{printed}");
}

#[test]
fn azure_bad_secret_is_a_clear_credentials_error() {
    let (fx, _) = start_fixture();
    let env = Env::new(&format!(
        r#"
[[providers]]
name = "az"
type = "azure"
subscriptions = ["sub-a"]
tenant_id = "azure-tenant"
client_id = "app-id"
client_secret = "wrong"
management_url = "{base}"
login_url = "{base}"
"#,
        base = fx.base
    ));
    let r = env.once();
    let all = names(&r);
    let p = check(&r, "provider:az");
    assert_eq!(p["status"], "unknown", "{all}");
    let msg = p["message"].as_str().unwrap_or("");
    assert!(msg.contains("credentials rejected") && msg.contains("AADSTS7000215"), "{msg}");
    assert!(!all.contains("wrong"), "the secret leaked: {all}");
    let seen = seen_now(&fx);
    assert!(!seen.calls.keys().any(|k| k.starts_with("azure:disks")), "no API call without a token: {:?}", seen.calls);
}

#[test]
fn gcp_inventory_metrics_and_billing_export_with_a_signed_jwt() {
    let (fx, pair) = start_fixture();
    let env = Env::new("");
    let key = gcp_key_file(&env, &pair, &fx.base);
    let config = format!(
        r#"
data_dir = "{data}"
[[providers]]
name = "gcp"
type = "gcp"
credentials_file = "{key}"
compute_url = "{base}"
monitoring_url = "{base}"
bigquery_url = "{base}"
billing_table = "proj-1.billing.gcp_billing_export_v1_0000"
monthly_budget = 100.0
"#,
        data = env.path("data").display(),
        base = fx.base
    );
    std::fs::write(env.path("cloud.toml"), config).unwrap();
    let r = env.once();
    let all = names(&r);
    let seen = seen_now(&fx);
    assert!(seen.complaints.is_empty(), "the monitor sent something wrong: {:?}", seen.complaints);
    assert_eq!(seen.calls.get("gcp:token"), Some(&1), "one token for the whole run: {:?}", seen.calls);
    // Both pages of the aggregated list, across zones; the empty zone's warning ignored.
    let p = check(&r, "provider:gcp");
    assert_eq!(p["status"], "ok", "{all}");
    assert!(p["message"].as_str().unwrap_or("").contains("3 instances (2 running)"), "{p}");
    assert_eq!(status(&r, "instance:gcp:103"), "critical", "the labelled TERMINATED instance: {all}");
    // CPU after one 429: 99% critical; 10% nothing.
    assert_eq!(status(&r, "cpu:gcp:101"), "critical", "{all}");
    assert!(!has_check(&r, "cpu:gcp:102"));
    let fps = alert_fingerprints(&r);
    assert!(fps.contains(&"cloud_resources/waste:gcp:unattached_volume:202".to_string()), "{fps:?}");
    assert!(fps.contains(&"cloud_resources/waste:gcp:unassociated_ip:left-ip".to_string()), "{fps:?}");
    assert!(fps.contains(&"cloud_resources/waste:gcp:idle_instance:102".to_string()), "{fps:?}");
    assert!(!fps.iter().any(|f| f.contains("/waste:") && (f.contains("internal") || f.ends_with(":101"))), "{fps:?}");
    let regions = r["details"]["instances"]
        .as_array()
        .map(|a| a.iter().map(|i| i["region"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        regions.contains(&"us-central1".to_string()) && regions.contains(&"europe-west1".to_string()),
        "{regions:?}"
    );
    // Cost from the billing export, after polling the unfinished job; parameters, not
    // string-built SQL, carry the dates and projects.
    let q = seen.queries.first().cloned().unwrap_or_default();
    assert!(
        q.contains("proj-1.billing.gcp_billing_export_v1_0000") && q.contains("\"parameterMode\":\"NAMED\""),
        "{q}"
    );
    let today = Utc::now().date_naive();
    let days_this_month = f64::from(today.day().min(20));
    let mtd = metric(&r, "qmoi_cloud_cost_month_to_date{provider=\"gcp\"}").unwrap_or(-1.0);
    assert!((mtd - 7.5 * days_this_month).abs() < 0.01, "month to date {mtd}");
    assert!(check(&r, "budget:gcp")["value"].as_f64().is_some(), "{all}");
}

#[test]
fn gcp_missing_key_file_and_azure_unreachable_are_reported_per_provider() {
    let (fx, _) = start_fixture();
    let closed = qmoi_testkit::free_port();
    let env = Env::new(&format!(
        r#"
request_timeout = "2s"
[[providers]]
name = "gcp"
type = "gcp"
projects = ["proj-1"]
credentials_file = "/nonexistent/key.json"
compute_url = "{base}"

[[providers]]
name = "az"
type = "azure"
subscriptions = ["sub-a"]
tenant_id = "azure-tenant"
client_id = "app-id"
client_secret = "s3cret"
management_url = "http://127.0.0.1:{closed}"
login_url = "{base}"
cost = false
"#,
        base = fx.base
    ));
    let r = env.once();
    let all = names(&r);
    let g = check(&r, "provider:gcp");
    assert_eq!(g["status"], "unknown", "{all}");
    assert!(
        g["message"].as_str().unwrap_or("").contains("cannot read the service-account key /nonexistent/key.json"),
        "{g}"
    );
    let a = check(&r, "provider:az");
    assert_eq!(a["status"], "unknown", "{all}");
    assert!(a["message"].as_str().unwrap_or("").contains("unreachable"), "{a}");
    assert!(has_check(&r, "api:az:network:publicIPAddresses:sub-a"), "{all}");
}

#[test]
fn config_errors_name_the_key_and_exit_2() {
    let env = Env::new(
        r#"
[[providers]]
name = "a"
type = "aws"

[[providers]]
name = "z"
type = "azure"
subscriptions = ["s"]
management_url = "http://management.example.com"
projects = ["p"]

[[providers]]
name = "g"
type = "gcp"
billing_table = "no-dots"
"#,
    );
    let out = env.run(&["--validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "providers[0].regions",
        "providers[1].management_url",
        "unencrypted",
        "providers[1].projects",
        "providers[2].billing_table",
    ] {
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
    // The shipped config is valid and runs with no provider on a fresh machine.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cloud_resources.toml");
    let out = std::process::Command::new(qmoi_testkit::bin("qmoi-cloud"))
        .args(["--validate", "--config"])
        .arg(&shipped)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
