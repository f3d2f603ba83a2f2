//! The dashboard and REST API of the real supervisor binary, on an ephemeral loopback
//! port: every route, JSON shapes, CSV, auth by role, rate limiting, live updates over
//! SSE and WebSocket, restart-dashboard, and `promtool check metrics` on `/metrics`.

use qmoi_testkit::{HttpResponse, Stack, http, read_json, wait_for};
use std::io::{Read, Write};
use std::time::Duration;

const READ: &str = "read-token-0123456789";
const ADMIN: &str = "admin-token-abcdefghijkl";

fn fake(id: &str, mode: &str) -> String {
    qmoi_testkit::fake_component(id, &["--mode", mode], "")
}

/// A stack with auth (a read token, an admin token from the environment, a basic-auth
/// admin user), a warning alert from system_health, and security running.
fn authed_stack() -> Stack {
    let hash = qmoi_testkit::hash_password("correct horse battery");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let cfg = format!(
        r#"
[dashboard]
host = "127.0.0.1"
port = 0
[dashboard.rate_limit]
enabled = false
[[dashboard.auth.tokens]]
name = "reader"
token = "{READ}"
role = "read"
[[dashboard.auth.tokens]]
name = "admin-token"
token = "${{QMOI_TEST_ADMIN_TOKEN}}"
role = "admin"
[[dashboard.auth.users]]
name = "ops"
password_hash = "{hash}"
role = "admin"
[report]
interval = 1
{}{}"#,
        fake("system_health", "warn"),
        fake("security", "write")
    );
    let mut stack = Stack::new(&cfg);
    stack.env.push(("QMOI_TEST_ADMIN_TOKEN".into(), ADMIN.into()));
    stack.start();
    stack
}

fn get(addr: &str, path: &str, token: Option<&str>) -> HttpResponse {
    let h = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = h.iter().map(|v| ("Authorization", v.as_str())).collect();
    http("GET", addr, path, &headers, None)
}

fn send(method: &str, addr: &str, path: &str, auth: &str, body: Option<&str>) -> HttpResponse {
    http(method, addr, path, &[("Authorization", auth)], body)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn routes_json_shapes_and_roles() {
    let stack = authed_stack();
    let addr = stack.dashboard_addr();
    // Until both monitors report, wait.
    let status = wait_for(Duration::from_secs(10), "both components running", || {
        let r = get(&addr, "/api/monitor/status", Some(READ));
        let v = (r.status == 200).then(|| r.json())?;
        v["components"].as_array()?.iter().all(|c| c["state"] == "running").then_some(v)
    });
    assert_eq!(status["components"].as_array().map(Vec::len), Some(2));
    assert!(["healthy", "degraded", "critical"].contains(&status["verdict"]["overall"].as_str().unwrap_or("")));
    assert!(status["supervisor"]["dashboard"].as_str().is_some_and(|u| u.contains(&addr)));

    // Authentication: none, wrong, right.
    let r = get(&addr, "/api/monitor/status", None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"qmoi\""),
        "no Basic challenge: browsers would pop up a dialog"
    );
    assert_eq!(get(&addr, "/api/monitor/status", Some("not-a-token-at-all")).status, 401);
    assert_eq!(get(&addr, "/healthz", None).status, 200, "healthz needs no auth");
    let page = get(&addr, "/", None);
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap_or_default().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    // The seed's four and any component.
    let sec = get(&addr, "/api/monitor/security", Some(READ)).json();
    assert_eq!(sec["component"], "security");
    assert_eq!(sec["report"]["component"], "security");
    assert_eq!(sec["supervisor"]["state"], "running");
    let perf = get(&addr, "/api/monitor/performance", Some(READ)).json();
    assert_eq!((perf["configured"].as_bool(), perf["report"].is_null()), (Some(false), true));
    assert_eq!(get(&addr, "/api/monitor/backup", Some(READ)).status, 200);
    let sh = get(&addr, "/api/monitor/components/system_health", Some(READ)).json();
    assert_eq!(sh["report"]["status"], "warning");
    assert_eq!(get(&addr, "/api/monitor/components/coffee", Some(READ)).status, 404);

    // Alerts, acknowledgement by role.
    let fp = "system_health/fake";
    wait_for(Duration::from_secs(10), "the fake alert", || {
        let a = get(&addr, "/api/alerts", Some(READ)).json();
        a["active"].as_array()?.iter().any(|x| x["fingerprint"] == fp).then_some(())
    });
    let ack_path = "/api/alerts/system_health%2Ffake/ack";
    let r = send("POST", &addr, ack_path, &bearer(READ), Some("{}"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("needs admin")));
    let r = send("POST", &addr, ack_path, &bearer(ADMIN), Some("{\"comment\":\"looking\"}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let basic = qmoi_testkit::basic_auth("ops", "correct horse battery");
    assert_eq!(
        send("POST", &addr, "/api/alerts/system_health/fake/ack", &basic, None).status,
        200,
        "unencoded slash and basic auth"
    );
    assert_eq!(send("POST", &addr, "/api/alerts/nope%2Fnope/ack", &bearer(ADMIN), None).status, 404);
    let alerts = get(&addr, "/api/alerts", Some(READ)).json();
    let active = alerts["active"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["fingerprint"] == fp).cloned())
        .unwrap_or_default();
    assert_eq!(active["acknowledged"]["by"], "ops");
    assert_eq!(active["level"], "warning");
    assert_eq!(active["component"], "system_health");

    // Silences.
    let r = send(
        "POST",
        &addr,
        "/api/silences",
        &bearer(ADMIN),
        Some(&format!("{{\"fingerprint\":\"{fp}\",\"duration\":\"1h\",\"comment\":\"t\"}}")),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let sid = r.json()["id"].as_i64().unwrap_or(-1);
    let list = get(&addr, "/api/silences", Some(READ)).json();
    assert_eq!(list["silences"][0]["id"], sid);
    assert_eq!(list["silences"][0]["fingerprint"], fp);
    let alerts = get(&addr, "/api/alerts", Some(READ)).json();
    assert_eq!(
        alerts["active"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["fingerprint"] == fp).cloned())
            .unwrap_or_default()["silenced_by"],
        sid
    );
    assert_eq!(send("POST", &addr, "/api/silences", &bearer(ADMIN), Some("{\"duration\":\"1h\"}")).status, 400);
    assert_eq!(
        send("POST", &addr, "/api/silences", &bearer(ADMIN), Some("{\"level\":\"loud\",\"duration\":\"1h\"}")).status,
        400
    );
    assert_eq!(send("POST", &addr, "/api/silences", &bearer(ADMIN), Some("not json")).status, 400);
    assert_eq!(send("DELETE", &addr, &format!("/api/silences/{sid}"), &bearer(ADMIN), None).status, 200);
    assert_eq!(send("DELETE", &addr, &format!("/api/silences/{sid}"), &bearer(ADMIN), None).status, 404);

    // History as JSON and CSV (the supervisor's own metrics are recorded every change).
    let h = wait_for(Duration::from_secs(10), "history points", || {
        let r = get(&addr, "/api/history?component=master_monitor&metric=qmoi_component_up", Some(READ));
        let v = r.json();
        (v["series"].as_array()?.len() == 2).then_some(v)
    });
    assert!(h["series"][0]["metric"].as_str().is_some_and(|m| m.starts_with("qmoi_component_up{component=")), "{h}");
    assert!(h["series"][0]["points"][0][0].is_i64() && h["series"][0]["points"][0][1].is_number(), "{h}");
    let csv = get(&addr, "/api/history?metric=qmoi_verdict&format=csv", Some(READ));
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let mut lines = csv.body.lines();
    assert_eq!(lines.next(), Some("timestamp,component,metric,value"));
    assert!(lines.next().is_some_and(|l| l.contains(",master_monitor,\"qmoi_verdict\",")), "{}", csv.body);
    assert_eq!(get(&addr, "/api/history", Some(READ)).status, 400);
    assert_eq!(get(&addr, "/api/history?metric=x&from=yesterday", Some(READ)).status, 400);
    let series = get(&addr, "/api/history/series", Some(READ)).json();
    assert!(series["series"].as_array().is_some_and(|s| s.iter().any(|x| x["metric"] == "qmoi_verdict")));

    // Effective configuration with secrets masked (each monitor prints its own, in the
    // background after the start).
    let cfg = wait_for(Duration::from_secs(20), "every monitor's effective config", || {
        let cfg = get(&addr, "/api/config", Some(READ));
        cfg.json()["components"]["system_health"]["effective"].is_object().then_some(cfg)
    });
    assert!(!cfg.body.contains(ADMIN) && !cfg.body.contains(READ), "a secret leaked: {}", cfg.body);
    let v = cfg.json();
    assert_eq!(v["master_monitor"]["effective"]["dashboard"]["auth"]["tokens"][1]["token"], "***");

    // Restart through the API.
    let pid = |id: &str| stack.component(id)["pid"].as_u64();
    let before = pid("security");
    assert_eq!(send("POST", &addr, "/api/components/security/restart", &bearer(READ), None).status, 403);
    let r = send("POST", &addr, "/api/components/security/restart", &bearer(ADMIN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(5), "a new security pid", || pid("security").filter(|p| Some(*p) != before));
    // The supervisor-wide actions, as the CLI verbs: restart-all, reset, restart-dashboard.
    let (sh, sec) = (pid("system_health"), pid("security"));
    assert_eq!(send("POST", &addr, "/api/components/restart", &bearer(READ), None).status, 403);
    let r = send("POST", &addr, "/api/components/restart", &bearer(ADMIN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["message"].as_str().is_some_and(|m| m.contains("security") && m.contains("system_health")),
        "{}",
        r.body
    );
    wait_for(Duration::from_secs(5), "new pids for both", || {
        (pid("system_health").is_some_and(|p| Some(p) != sh) && pid("security").is_some_and(|p| Some(p) != sec))
            .then_some(())
    });
    let r = send("POST", &addr, "/api/reset", &bearer(ADMIN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send("POST", &addr, "/api/dashboard/restart", &bearer(ADMIN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(10), "the dashboard back", || {
        std::net::TcpStream::connect(&addr).ok().map(|_| get(&addr, "/healthz", None)).filter(|r| r.status == 200)
    });
    assert_eq!(send("POST", &addr, "/api/components/coffee/restart", &bearer(ADMIN), None).status, 404);

    // Every admin action is in the audit log, with who and from where.
    let audit = std::fs::read_to_string(stack.path("logs/audit.log")).unwrap_or_default();
    let entries: Vec<serde_json::Value> = audit.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for (who, action) in [
        ("admin-token", "restart_all"),
        ("admin-token", "reset"),
        ("admin-token", "restart_dashboard"),
        ("admin-token", "ack"),
        ("ops", "ack"),
        ("admin-token", "silence"),
        ("admin-token", "unsilence"),
        ("admin-token", "restart"),
    ] {
        assert!(
            entries.iter().any(|e| e["who"] == who && e["action"] == action && e["remote"] == "127.0.0.1"),
            "no audit entry {who} {action}: {audit}"
        );
    }

    // Last, as it locks this address out: guessing is cut short. After ten wrong
    // credentials within a minute (one was tried above) more guesses get 429, while a
    // right token is still served (it used to be locked out too).
    for _ in 0..9 {
        assert_eq!(get(&addr, "/api/alerts", Some("guess-guess-guess-guess")).status, 401);
    }
    let locked = get(&addr, "/api/alerts", Some("guess-guess-guess-guess"));
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.header("retry-after").is_some());
    assert_eq!(get(&addr, "/api/alerts", Some(READ)).status, 200);
}

#[test]
fn read_only_without_auth_and_refused_on_a_public_address() {
    let cfg = format!("[dashboard]\nport = 0\n[report]\ninterval = 1\n{}", fake("system_health", "warn"));
    let mut stack = Stack::new(&cfg);
    stack.start();
    let addr = stack.dashboard_addr();
    assert_eq!(get(&addr, "/api/monitor/status", None).status, 200);
    let r = send("POST", &addr, "/api/alerts/system_health%2Ffake/ack", "", None);
    assert_eq!(r.status, 403);
    assert!(r.json()["error"].as_str().is_some_and(|e| e.contains("admin actions need [dashboard.auth]")));

    let public = Stack::new("[dashboard]\nhost = \"0.0.0.0\"\n[monitoring_components.system_health]\n");
    let out = public.run(&["start"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key 'dashboard.host': '0.0.0.0' is not a loopback address") && err.contains("refusing"),
        "{err}"
    );
    assert!(!public.path("logs/system_health_latest.json").exists(), "nothing may start");
}

#[test]
fn rate_limit_answers_429_with_retry_after() {
    let cfg = "[dashboard]\nport = 0\n[dashboard.rate_limit]\nper_second = 1\nburst = 3\n[monitoring_components.system_health]\ninterval = 60\n";
    let mut stack = Stack::new(cfg);
    stack.start();
    let addr = stack.dashboard_addr();
    let codes: Vec<u16> = (0..5).map(|_| get(&addr, "/healthz", None).status).collect();
    assert_eq!(&codes[..3], &[200, 200, 200], "{codes:?}");
    assert_eq!(codes[4], 429, "{codes:?}");
    let r = get(&addr, "/healthz", None);
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok_and(|s| s >= 1)));
}

/// Read from `s` until `pred` holds on what arrived, or panic after `secs`.
fn read_until(s: &mut std::net::TcpStream, secs: u64, what: &str, pred: impl Fn(&str) -> bool) -> String {
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if pred(&String::from_utf8_lossy(&got)) {
                return String::from_utf8_lossy(&got).into_owned();
            }
        }
    }
    panic!("timed out waiting for {what}; got: {}", String::from_utf8_lossy(&got));
}

#[test]
fn live_updates_over_sse_and_websocket_and_restart_dashboard() {
    let cfg = format!("[dashboard]\nport = 0\n[report]\ninterval = 1\n{}", fake("system_health", "write"));
    let mut stack = Stack::new(&cfg);
    stack.start();
    let addr = stack.dashboard_addr();
    // SSE: the current overview at once, then a report event when the monitor writes again.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let _ = s.write_all(format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes());
    let text = read_until(&mut s, 10, "an SSE report event", |t| t.contains("\"type\":\"report\""));
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("content-type: text/event-stream"), "{text}");
    let first = text.lines().find(|l| l.starts_with("data: ")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(first.trim_start_matches("data: ")).unwrap_or_default();
    assert_eq!(v["type"], "overview");
    assert!(v["data"]["verdict"]["overall"].is_string(), "{first}");

    // WebSocket: handshake, then the overview as the first text frame.
    let mut w = std::net::TcpStream::connect(&addr).unwrap();
    let _ = w.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    let text = read_until(&mut w, 10, "a WebSocket frame", |t| t.contains("\"type\":\"overview\""));
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "accept key per RFC 6455: {text}");

    // restart-dashboard: same address, monitors untouched, live streams ended cleanly.
    let pid = stack.component("system_health")["pid"].as_u64();
    let out = stack.run(&["restart-dashboard"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("dashboard restarted on http://{addr}/"));
    assert_eq!(get(&addr, "/api/monitor/status", None).status, 200);
    assert_eq!(stack.component("system_health")["pid"].as_u64(), pid);
    // The old SSE connection was closed by the restart.
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let closed = s.read_to_end(&mut rest).is_ok();
    assert!(closed, "the SSE stream ended with the old server");
}

#[test]
fn metrics_pass_promtool() {
    if !qmoi_testkit::require_tool(&["promtool"], "apt-get install prometheus") {
        return;
    }
    // system_health and api_endpoints (whose latency is a summary) both report.
    let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = "[dashboard]\nport = 0\n[report]\ninterval = 1\n[monitoring_components.system_health]\ninterval = 1\n\
               [monitoring_components.api_endpoints]\ninterval = 1\n";
    let stack_cfg = Stack::new(cfg);
    let ep = format!("[[endpoints]]\nname = \"held\"\nkind = \"tcp\"\ntarget = \"{}\"\n", target.local_addr().unwrap());
    stack_cfg.write("config/api_endpoints.toml", &ep);
    let mut stack = stack_cfg;
    stack.start();
    let addr = stack.dashboard_addr();
    // The supervisor's own series come from its report, written once it has seen the
    // monitor's first report (a tick later): wait for them too, not only the monitors'
    // (under load they came a moment after; the test failed once in CI so).
    let text = wait_for(Duration::from_secs(15), "system_health and api_endpoints metrics", || {
        let r = get(&addr, "/metrics", None);
        (r.body.contains("qmoi_disk_used_ratio{component=\"system_health\"")
            && r.body.contains("qmoi_endpoint_latency_seconds_count{component=\"api_endpoints\",endpoint=\"held\"}")
            && r.body.contains("qmoi_component_up{component=\"system_health\"} 1"))
        .then_some(r)
    });
    assert!(text.body.contains("# TYPE qmoi_endpoint_latency_seconds summary"), "{}", text.body);
    assert_eq!(text.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    assert!(
        text.body.contains("# TYPE qmoi_verdict gauge")
            && text.body.contains("qmoi_component_up{component=\"system_health\"} 1")
    );
    let mut p = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = p.stdin.take().map(|mut i| i.write_all(text.body.as_bytes()));
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = read_json(&stack.path("logs/master_monitor_latest.json"));
}

/// HTTPS with a certificate made by `openssl` for this test, checked with `curl --cacert`;
/// a missing key file is a configuration error naming the file.
#[test]
fn tls_from_pem_files() {
    if !qmoi_testkit::require_tool(&["openssl", "curl"], "apt-get install openssl curl") {
        return;
    }
    let bad = Stack::new(
        "[dashboard]\nport = 0\n[dashboard.tls]\ncert = \"none.pem\"\nkey = \"none.key\"\n[monitoring_components.system_health]\n",
    );
    let out = bad.run(&["start"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("key 'dashboard.tls': cannot read TLS certificate none.pem"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut stack = Stack::new(
        "[dashboard]\nport = 0\n[dashboard.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n[monitoring_components.system_health]\ninterval = 60\n",
    );
    std::fs::create_dir_all(stack.path("tls")).unwrap();
    qmoi_testkit::self_signed_cert(&stack.path("tls"), 1);
    stack.start();
    let url = wait_for(Duration::from_secs(10), "run/dashboard.addr", || {
        std::fs::read_to_string(stack.path("run/dashboard.addr")).ok().map(|t| t.trim().to_string())
    });
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let curl = |extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert"])
            .arg(stack.path("tls/cert.pem"))
            .args(extra)
            .arg(format!("{url}healthz"))
            .output()
            .unwrap()
    };
    let out = curl(&[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{}", String::from_utf8_lossy(&out.stderr));
    // Plain HTTP to the TLS port gets no answer.
    let addr = url.trim_start_matches("https://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    s.set_read_timeout(Some(Duration::from_secs(3))).ok();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "plain HTTP must not be served on the TLS port");
    // restart-dashboard keeps TLS.
    let out = stack.run(&["restart-dashboard"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("dashboard restarted on {url}"));
    assert_eq!(String::from_utf8_lossy(&curl(&[]).stdout), "ok\n");
}
