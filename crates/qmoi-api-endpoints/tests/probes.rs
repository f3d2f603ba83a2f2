//! The real `qmoi-api-endpoints` binary against real servers on loopback: an HTTP server
//! (ok, JSON, 503, slow, redirect, an endless body), a TCP banner server, a closed port, a
//! TLS server with a certificate made by `openssl` for this test, and DNS for localhost.

mod common;

use axum::Router;
use axum::routing::get;
use qmoi_testkit::check;
use qmoi_testkit::read_json;
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// Run the binary in `dir` with `args`, to its end.
fn run_in(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qmoi-api-endpoints"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Start the daemon in `dir` with its `c.toml`.
fn daemon_in(dir: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_qmoi-api-endpoints"))
        .current_dir(dir)
        .args(["--config", "c.toml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Start the test HTTP server on its own thread and runtime; returns its address.
fn http_server() -> std::net::SocketAddr {
    common::serve_on_thread(|l| async move {
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/json",
                get(|| async { ([("content-type", "application/json")], r#"{"status":"up","items":[1,2,3]}"#) }),
            )
            .route("/fail", get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    "late"
                }),
            )
            .route("/redirect", get(|| async { axum::response::Redirect::temporary("/ok") }))
            .route(
                "/endless",
                get(|| async {
                    let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                    let s = futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
                    axum::body::Body::from_stream(s)
                }),
            );
        let _ = axum::serve(l, app).await;
    })
}

/// A TCP server that answers "+PONG" to "PING".
fn banner_server() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let mut buf = [0u8; 64];
            if let Ok(n) = s.read(&mut buf)
                && buf[..n].starts_with(b"PING")
            {
                let _ = s.write_all(b"+PONG\r\n");
            }
        }
    });
    addr
}

/// A TLS server with the given PEM files (rustls); it completes handshakes and closes.
fn tls_server(cert: &std::path::Path, key: &std::path::Path) -> std::net::SocketAddr {
    let acceptor = common::tls_acceptor(cert, key, None);
    common::serve_on_thread(|l| async move {
        while let Ok((s, _)) = l.accept().await {
            let a = acceptor.clone();
            tokio::spawn(async move {
                let _ = a.accept(s).await;
            });
        }
    })
}

/// A DNS server on a loopback UDP port that knows one name, `svc.test`: A 10.1.2.3 and
/// TXT "v=ok". Anything else is NXDOMAIN. (The addresses are answers, never contacted.)
fn dns_server() -> std::net::SocketAddr {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = sock.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            // Question name starts at 12; read labels.
            let (mut pos, mut labels) = (12, Vec::new());
            while pos < n && q[pos] != 0 {
                let l = q[pos] as usize;
                labels.push(String::from_utf8_lossy(&q[pos + 1..pos + 1 + l]).into_owned());
                pos += 1 + l;
            }
            let qtype = u16::from_be_bytes([q[pos + 1], q[pos + 2]]);
            let end = pos + 5;
            let mut r = q[..end].to_vec();
            r[2] = 0x81;
            let answer: Option<Vec<u8>> = match (labels.join(".").as_str(), qtype) {
                ("svc.test", 1) => Some(vec![10, 1, 2, 3]),
                ("svc.test", 16) => Some([&[4u8][..], b"v=ok"].concat()),
                _ => None,
            };
            match answer {
                Some(rd) => {
                    r[3] = 0x80;
                    r[7] = 1;
                    r.extend_from_slice(&[0xC0, 12]);
                    r.extend_from_slice(&qtype.to_be_bytes());
                    r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
                    r.extend_from_slice(&(rd.len() as u16).to_be_bytes());
                    r.extend_from_slice(&rd);
                }
                None => r[3] = 0x83,
            }
            let _ = sock.send_to(&r, from);
        }
    });
    addr
}

fn endpoint<'a>(r: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    r["details"]["endpoints"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

#[test]
fn probes_real_servers_and_reports_every_condition() {
    let have_openssl = qmoi_testkit::require_tool(&["openssl"], "apt-get install openssl");
    let dir = tempfile::tempdir().unwrap();
    let http = http_server();
    let banner = banner_server();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap();
    let dns = dns_server();
    let mut tls_block = String::new();
    if have_openssl {
        qmoi_testkit::self_signed_cert(dir.path(), 3);
        let tls = tls_server(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
        tls_block = format!(
            r#"
[[endpoints]]
name = "tls-trusted"
kind = "tls"
target = "{tls}"
server_name = "localhost"
ca_file = "cert.pem"

[[endpoints]]
name = "tls-untrusted"
kind = "tls"
target = "{tls}"
server_name = "localhost"
"#
        );
    }
    let cfg = format!(
        r#"
state_file = "state/endpoints.json"
max_body_bytes = 1024
[[endpoints]]
name = "ok"
kind = "http"
url = "http://{http}/ok"
conditions = ["status == 200", "body contains \"ok\"", "response_time < 5s"]

[[endpoints]]
name = "json"
kind = "http"
url = "http://{http}/json"
conditions = ["$.status == \"up\"", "$.items.length > 2", "header.Content-Type contains \"json\""]

[[endpoints]]
name = "fail"
kind = "http"
url = "http://{http}/fail"
critical = true
conditions = ["status == 200", "body contains \"ok\""]

[[endpoints]]
name = "slow"
kind = "http"
url = "http://{http}/slow"
conditions = ["response_time < 100ms"]

[[endpoints]]
name = "redirect-not-followed"
kind = "http"
url = "http://{http}/redirect"
follow_redirects = false
conditions = ["status == 307", "header.Location == \"/ok\""]

[[endpoints]]
name = "endless"
kind = "http"
url = "http://{http}/endless"
timeout = "3s"
conditions = ["status == 200"]

[[endpoints]]
name = "banner"
kind = "tcp"
target = "{banner}"
send = "PING\r\n"
expect = "+PONG"

[[endpoints]]
name = "closed"
kind = "tcp"
target = "{closed}"

[[endpoints]]
name = "localhost"
kind = "dns"
target = "localhost"
expect = "127.0.0.1"

[[endpoints]]
name = "dns-a"
kind = "dns"
target = "svc.test"
server = "{dns}"
expect = "10.1.2.3"

[[endpoints]]
name = "dns-txt"
kind = "dns"
target = "svc.test"
server = "{dns}"
record_type = "TXT"
expect = "v=ok"

[[endpoints]]
name = "dns-nx"
kind = "dns"
target = "nothing.test"
server = "{dns}"
{tls_block}"#
    );
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let run = || {
        let out = run_in(dir.path(), &["--once", "--config", "c.toml"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        read_json(&dir.path().join("logs/api_endpoints_latest.json")).unwrap_or_else(|| panic!("no report"))
    };
    let r = run();
    assert_eq!(check(&r, "endpoint:ok")["status"], "ok", "{}", check(&r, "endpoint:ok"));
    assert_eq!(check(&r, "endpoint:json")["status"], "ok", "{}", check(&r, "endpoint:json"));
    let fail = check(&r, "endpoint:fail");
    assert_eq!(fail["status"], "critical", "critical = true: {fail}");
    let msg = fail["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("status == 200 failed: status was 503")
            && msg.contains("body contains \"ok\" failed: body was 'down'"),
        "{msg}"
    );
    assert_eq!(check(&r, "endpoint:slow")["status"], "warning");
    assert!(check(&r, "endpoint:slow")["message"].as_str().is_some_and(|m| m.contains("response_time < 100ms failed")));
    assert_eq!(
        check(&r, "endpoint:redirect-not-followed")["status"],
        "ok",
        "{}",
        check(&r, "endpoint:redirect-not-followed")
    );
    // The endless body is read up to max_body_bytes only: the probe finishes, and fast.
    assert_eq!(check(&r, "endpoint:endless")["status"], "ok", "{}", check(&r, "endpoint:endless"));
    assert_eq!(check(&r, "endpoint:banner")["status"], "ok", "{}", check(&r, "endpoint:banner"));
    assert!(check(&r, "endpoint:closed")["message"].as_str().is_some_and(|m| m.contains("cannot connect")));
    assert_eq!(check(&r, "endpoint:localhost")["status"], "ok", "{}", check(&r, "endpoint:localhost"));
    assert_eq!(check(&r, "endpoint:dns-a")["status"], "ok", "{}", check(&r, "endpoint:dns-a"));
    assert_eq!(check(&r, "endpoint:dns-txt")["status"], "ok", "{}", check(&r, "endpoint:dns-txt"));
    assert!(
        check(&r, "endpoint:dns-nx")["message"].as_str().is_some_and(|m| m.contains("NXDOMAIN")),
        "{}",
        check(&r, "endpoint:dns-nx")
    );
    if have_openssl {
        let trusted = check(&r, "certificate:tls-trusted");
        assert_eq!(trusted["status"], "warning", "expires in 3 days (< 14): {trusted}");
        assert!(trusted["value"].as_f64().is_some_and(|d| d > 2.0 && d <= 3.0), "{trusted}");
        let untrusted = check(&r, "certificate:tls-untrusted");
        assert_eq!(untrusted["status"], "critical", "{untrusted}");
        assert!(untrusted["message"].as_str().is_some_and(|m| m.contains("is not valid")), "{untrusted}");
        assert!(
            endpoint(&r, "tls-untrusted")["cert_expiry_days"].as_f64().is_some_and(|d| d > 2.0),
            "dates read despite the invalid chain"
        );
    }
    // Alerts, metrics and details.
    let alerts = r["alerts"].as_array().cloned().unwrap_or_default();
    assert!(alerts.iter().any(|a| a["fingerprint"] == "api_endpoints/endpoint:fail" && a["level"] == "critical"));
    assert_eq!(r["metrics"]["qmoi_endpoint_up{endpoint=\"ok\"}"], 1.0);
    assert_eq!(r["metrics"]["qmoi_endpoint_up{endpoint=\"fail\"}"], 0.0);
    assert_eq!(r["metrics"]["qmoi_endpoint_status_code{endpoint=\"fail\"}"], 503.0);
    assert!(r["metrics"]["qmoi_endpoint_latency_seconds{endpoint=\"ok\",quantile=\"0.99\"}"].is_number());
    assert_eq!(endpoint(&r, "fail")["availability_percent"]["1h"], 0.0);
    // A second run continues from the state file: two probes in the last hour.
    let r2 = run();
    assert_eq!(endpoint(&r2, "ok")["availability_percent"]["1h"], 100.0);
    let state = read_json(&dir.path().join("state/endpoints.json")).unwrap_or_default();
    assert_eq!(state["ok"]["recent"].as_array().map(Vec::len), Some(2), "{}", state["ok"]);
}

/// `--once` probes every endpoint exactly once, even when the probe interval is shorter
/// than the run: the fast endpoint is not probed again while the slow one (400 ms) is
/// waited for, so the state file holds one probe of each.
#[test]
fn once_probes_each_endpoint_exactly_once() {
    let http = http_server();
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "state_file = \"state.json\"\nprobe_interval = \"100ms\"\n\
         [[endpoints]]\nname = \"fast\"\nkind = \"http\"\nurl = \"http://{http}/ok\"\n\
         [[endpoints]]\nname = \"slow\"\nkind = \"http\"\nurl = \"http://{http}/slow\"\n"
    );
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let out = run_in(dir.path(), &["--once", "--config", "c.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state = read_json(&dir.path().join("state.json")).unwrap_or_else(|| panic!("no state file"));
    for name in ["fast", "slow"] {
        assert_eq!(state[name]["recent"].as_array().map(Vec::len), Some(1), "{name}: {}", state[name]);
    }
    let r = read_json(&dir.path().join("logs/api_endpoints_latest.json")).unwrap_or_else(|| panic!("no report"));
    assert_eq!(r["metrics"]["qmoi_endpoint_probes_total"], 2.0, "{}", r["metrics"]);
}

#[test]
fn bad_conditions_and_urls_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[endpoints]]\nname = \"x\"\nkind = \"http\"\nurl = \"ftp://h/\"\nconditions = [\"status === 200\"]\n[[endpoints]]\nname = \"x\"\nkind = \"tcp\"\nconditions = [\"status == 200\"]\n",
    )
    .unwrap();
    let out = run_in(dir.path(), &["--validate", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "key 'endpoints[0].url': scheme must be http or https, got 'ftp'",
        "key 'endpoints[0].conditions[0]': unknown operator '==='",
        "key 'endpoints[1].name': 'x' is used twice",
        "key 'endpoints[1].target': needs host:port",
        "key 'endpoints[1].conditions': conditions apply to http endpoints only",
    ] {
        assert!(err.contains(want), "expected '{want}' in: {err}");
    }
}

/// In daemon mode: an endpoint that is down raises its alert; once it answers again
/// (after `success_threshold` probes) the next report no longer lists it. A redirect chain
/// is followed to its end.
#[test]
fn a_down_endpoint_alerts_and_a_recovered_one_clears() {
    let dir = tempfile::tempdir().unwrap();
    let http = http_server();
    // A port that is closed now and will be opened later.
    let port = qmoi_testkit::free_port();
    let cfg = format!(
        r#"
interval = 1
probe_interval = "200ms"
state_file = "state.json"
[[endpoints]]
name = "flaky"
kind = "tcp"
target = "127.0.0.1:{port}"
failure_threshold = 2
success_threshold = 2
[[endpoints]]
name = "chain"
kind = "http"
url = "http://{http}/redirect"
conditions = ["status == 200", "body == \"ok\""]
"#
    );
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let mut child = daemon_in(dir.path());
    let latest = dir.path().join("logs/api_endpoints_latest.json");
    // The binary re-executes itself with mimalloc's settings (same pid): they are in its
    // environment once the first report is out. Regression: it went through
    // /proc/self/exe, so `ps`, `top` and the security monitor saw it as `exe`; now it
    // runs under its own name.
    qmoi_testkit::wait_for(Duration::from_secs(10), "the first report", || latest.exists().then_some(()));
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap_or_default();
    let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
    assert!(vars.contains(&&b"MIMALLOC_ARENA_EAGER_COMMIT=0"[..]) && vars.contains(&&b"MIMALLOC_PURGE_DELAY=0"[..]));
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
    assert_eq!(comm.trim(), "qmoi-api-endpoi", "the kernel's 15-character name");
    let exe = std::fs::read_link(format!("/proc/{}/exe", child.id())).unwrap_or_default();
    assert!(exe.ends_with("qmoi-api-endpoints"), "{}", exe.display());
    let has_alert = |r: &serde_json::Value| {
        r["alerts"].as_array().is_some_and(|a| a.iter().any(|a| a["fingerprint"] == "api_endpoints/endpoint:flaky"))
    };
    let down = qmoi_testkit::wait_for(Duration::from_secs(10), "the down alert", || {
        read_json(&latest).filter(|r| has_alert(r))
    });
    assert_eq!(check(&down, "endpoint:chain")["status"], "ok", "redirect followed: {}", check(&down, "endpoint:chain"));
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let up = qmoi_testkit::wait_for(Duration::from_secs(10), "the alert to clear", || {
        read_json(&latest).filter(|r| !has_alert(r))
    });
    assert_eq!(endpoint(&up, "flaky")["up"], true);
    assert!(endpoint(&up, "flaky")["availability_percent"]["1h"].as_f64().is_some_and(|a| a > 0.0 && a < 100.0));
    qmoi_testkit::signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
    drop(listener);
}

/// A probe slower than its interval (400 ms against 100 ms) is never started again while
/// the previous one runs: the server sees one request at a time, and probing goes on.
#[test]
fn a_slow_endpoint_is_never_probed_twice_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (now, most, total) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counters = (now.clone(), most.clone(), total.clone());
    let http = common::serve_on_thread(move |l| async move {
        let app = Router::new().route(
            "/slow",
            get(move || {
                let (now, most, total) = counters.clone();
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    total.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    "late"
                }
            }),
        );
        let _ = axum::serve(l, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "interval = 1\nprobe_interval = \"100ms\"\nstate_file = \"state.json\"\n\
         [[endpoints]]\nname = \"slow\"\nkind = \"http\"\nurl = \"http://{http}/slow\"\n"
    );
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let mut child = daemon_in(dir.path());
    qmoi_testkit::wait_for(Duration::from_secs(15), "four probes of the slow endpoint", || {
        (total.load(Ordering::SeqCst) >= 4).then_some(())
    });
    qmoi_testkit::signal(child.id(), nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
    assert_eq!(most.load(Ordering::SeqCst), 1, "probes of one endpoint overlapped");
}

/// ICMP echo to the loopback addresses (and `localhost`). Whether this process may send
/// ICMP depends on the machine (a ping socket for its group in net.ipv4.ping_group_range,
/// or CAP_NET_RAW for a raw one): the test finds out the same way, then expects either
/// replies with their round-trip time, or a failure that names both settings.
#[test]
fn icmp_echo_to_loopback_or_a_clear_refusal() {
    use socket2::{Domain, Protocol, Socket, Type};
    let permitted = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4))
        .or_else(|_| Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)))
        .is_ok();
    let v6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from(
        "state_file = \"state.json\"\n\
         [[endpoints]]\nname = \"v4\"\nkind = \"icmp\"\ntarget = \"127.0.0.1\"\n\
         [[endpoints]]\nname = \"by-name\"\nkind = \"icmp\"\ntarget = \"localhost\"\n",
    );
    if v6 {
        cfg.push_str("[[endpoints]]\nname = \"v6\"\nkind = \"icmp\"\ntarget = \"::1\"\n");
    }
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let out = run_in(dir.path(), &["--once", "--config", "c.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = read_json(&dir.path().join("logs/api_endpoints_latest.json")).unwrap_or_else(|| panic!("no report"));
    let names: &[&str] = if v6 { &["v4", "by-name", "v6"] } else { &["v4", "by-name"] };
    for name in names {
        let c = check(&r, &format!("endpoint:{name}"));
        let msg = c["message"].as_str().unwrap_or_default();
        if permitted {
            assert_eq!(c["status"], "ok", "{c}");
            assert!(c["value"].as_f64().is_some_and(|ms| ms > 0.0 && ms < 1000.0), "round trip in ms: {c}");
            assert_eq!(r["metrics"][format!("qmoi_endpoint_up{{endpoint=\"{name}\"}}")], 1.0);
        } else {
            assert!(msg.contains("ping_group_range") && msg.contains("CAP_NET_RAW"), "{c}");
        }
    }
    // As root, the unprivileged paths too, without touching this machine's settings: the
    // binary runs as nobody with no capabilities, in a private network namespace (its own
    // loopback and its own net.ipv4.ping_group_range), once with ping sockets opened to
    // every group (as systemd sets it) and once with the kernel's default (none).
    let root = nix::unistd::geteuid().is_root();
    if root && qmoi_testkit::require_tool(&["unshare", "setpriv", "ip"], "apt-get install util-linux iproute2") {
        use std::os::unix::fs::PermissionsExt;
        let nobody = dir.path().join("nobody");
        std::fs::create_dir(&nobody).unwrap();
        std::fs::copy(dir.path().join("c.toml"), nobody.join("c.toml")).unwrap();
        for (p, mode) in [(dir.path().to_path_buf(), 0o755), (nobody.clone(), 0o777), (nobody.join("c.toml"), 0o644)] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let as_nobody = |range: &str| {
            let script = format!(
                "ip link set lo up && {range} exec setpriv --reuid=65534 --regid=65534 --clear-groups \
                 --inh-caps=-all --bounding-set=-all {} --check --config c.toml --report-dir logs",
                env!("CARGO_BIN_EXE_qmoi-api-endpoints")
            );
            let out =
                Command::new("unshare").args(["--net", "sh", "-c", &script]).current_dir(&nobody).output().unwrap();
            (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let (code, text) = as_nobody("echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range &&");
        assert_eq!(code, Some(0), "ping sockets as nobody: {text}");
        assert!(text.contains("v4 up (ok)") && text.contains("by-name up (ok)"), "{text}");
        let (code, text) = as_nobody("");
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("v4 down: ICMP is not permitted") && text.contains("ping_group_range"), "{text}");
    } else {
        eprintln!("not root (or no unshare/setpriv/ip): the unprivileged ICMP paths are not exercised");
    }
    // A port is a configuration error for an icmp target.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[endpoints]]\nname = \"x\"\nkind = \"icmp\"\ntarget = \"127.0.0.1:80\"\n",
    )
    .unwrap();
    let bad = run_in(dir.path(), &["--validate", "--config", "bad.toml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("key 'endpoints[0].target': an icmp target is a host, without a port")
    );
}

/// `--probe URL` times each phase and exits 0 on success, 2 on failure.
#[test]
fn ad_hoc_probe_prints_phases_and_exit_codes() {
    let http = http_server();
    let run =
        |url: String| Command::new(env!("CARGO_BIN_EXE_qmoi-api-endpoints")).args(["--probe", &url]).output().unwrap();
    let ok = run(format!("http://{http}/json"));
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    for phase in ["DNS", "connect", "first byte", "total"] {
        let line = text.lines().find(|l| l.trim_start().starts_with(phase)).unwrap_or_default();
        assert!(line.trim_end().ends_with(" ms") || line.contains(" ms "), "{phase} timed: {text}");
    }
    assert!(text.contains("HTTP 200"), "{text}");
    let bad = run(format!("http://{http}/fail"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("FAILED: HTTP 503"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap();
    let refused = run(format!("http://{closed}/"));
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("cannot connect"));
}

/// `shard = "i/n"`: three hosts with the same 300 endpoints (tcp, to one loopback
/// listener that counts its connections) probe each endpoint exactly once between them.
#[test]
fn three_shards_probe_each_of_300_endpoints_exactly_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(s);
        }
    });
    let endpoints: String = (0..300)
        .map(|i| format!("[[endpoints]]\nname = \"ep-{i:03}\"\nkind = \"tcp\"\ntarget = \"{target}\"\n"))
        .collect();
    let mut seen: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut per_shard = Vec::new();
    for i in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!("state_file = \"state.json\"\nshard = \"{i}/3\"\n{endpoints}");
        std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
        let out = run_in(dir.path(), &["--once", "--config", "c.toml"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r = read_json(&dir.path().join("logs/api_endpoints_latest.json")).unwrap_or_else(|| panic!("no report"));
        let names: Vec<String> = r["details"]["endpoints"]
            .as_array()
            .map(|a| a.iter().filter_map(|e| e["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        assert_eq!(r["metrics"]["qmoi_endpoint_probes_total"], names.len() as f64, "{}", r["metrics"]);
        per_shard.push(names.len());
        for n in names {
            *seen.entry(n).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 300, "every endpoint probed by some shard");
    assert!(seen.values().all(|n| *n == 1), "one shard each: {seen:?}");
    assert!(per_shard.iter().all(|n| (60..=140).contains(n)), "an even split: {per_shard:?}");
    // The listener's thread accepts what the kernel already completed: wait for it.
    let n = qmoi_testkit::wait_for(Duration::from_secs(10), "300 connections accepted", || {
        let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
        (n >= 300).then_some(n)
    });
    assert_eq!(n, 300, "300 connections in all");
    eprintln!("300 endpoints over 3 shards: {per_shard:?}");
}
