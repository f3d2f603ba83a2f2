//! The gRPC API of the real supervisor, called by a real client: Python grpcio with
//! grpcio-reflection and grpcio-health-checking (tests/grpc_client.py), which finds the
//! services by reflection, calls each RPC, watches a restart arrive on a stream, checks
//! health per component, and sees unauthenticated and read-role calls refused with the
//! right codes.

use qmoi_testkit::{Stack, fake_component, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ADMIN: &str = "grpc-admin-token-0123456";
const READ: &str = "grpc-read-token-01234567";

#[test]
fn a_grpcio_client_discovers_calls_watches_and_is_refused_rightly() {
    let Some(py) =
        qmoi_testkit::python_with(&["grpc", "grpc_health.v1.health_pb2", "grpc_reflection.v1alpha.reflection_pb2"])
    else {
        return;
    };
    let monitors = fake_component("system_health", &["--mode", "warn", "--metric", "qmoi_load1=0.25"], "")
        + &fake_component("security", &[], "");
    let mut stack = Stack::new(&format!(
        "[dashboard]\nport = 0\n[grpc]\nenabled = true\nport = 0\n\
         [[dashboard.auth.tokens]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n\
         [[dashboard.auth.tokens]]\nname = \"reader\"\ntoken = \"{READ}\"\nrole = \"read\"\n\
         [report]\ninterval = 1\n{monitors}"
    ));
    stack.start();
    let _ = stack.dashboard_addr();
    let addr = wait_for(Duration::from_secs(10), "run/grpc.addr", || {
        Some(std::fs::read_to_string(stack.path("run/grpc.addr")).ok()?.trim().to_string()).filter(|a| !a.is_empty())
    });
    // Both monitors have reported (the client expects their alerts and metrics).
    wait_for(Duration::from_secs(20), "both monitors running", || {
        let s = stack.status();
        let comps = s["components"].as_array()?.clone();
        comps.iter().all(|c| c["state"] == "running").then_some(())
    });
    // A reload that changes nothing: the overview says when and that it went well.
    let reload = stack.run(&["reload"]);
    assert!(reload.status.success(), "{}", String::from_utf8_lossy(&reload.stderr));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_client.py");
    let out = Command::new(py).arg(&script).args([&addr, ADMIN, READ]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "the gRPC client found problems:\n{text}\n{}", stack.supervisor_stderr());
    assert!(text.matches("\nok ").count() + usize::from(text.starts_with("ok ")) >= 25, "{text}");
    // The restart through gRPC is in the audit log, as one through REST would be.
    let audit = std::fs::read_to_string(stack.path("logs/audit.log")).unwrap_or_default();
    for action in ["restart", "ack", "silence"] {
        assert!(audit.contains(&format!("\"action\":\"{action}\"")), "{action} not audited: {audit}");
    }
}

/// The dashboard's per-address rate limit covers gRPC too: past the burst, calls are
/// refused with RESOURCE_EXHAUSTED (grpcio, raw bytes: no proto needed for an empty
/// request).
#[test]
fn grpc_calls_past_the_rate_limit_are_resource_exhausted() {
    let Some(py) = qmoi_testkit::python_with(&["grpc"]) else { return };
    let mut stack = Stack::new(&format!(
        "[dashboard]\nport = 0\n[dashboard.rate_limit]\nper_second = 1\nburst = 3\n[grpc]\nenabled = true\nport = 0\n\
         [report]\ninterval = 1\n{}",
        fake_component("system_health", &[], "")
    ));
    stack.start();
    let _ = stack.dashboard_addr();
    let addr = wait_for(Duration::from_secs(10), "run/grpc.addr", || {
        Some(std::fs::read_to_string(stack.path("run/grpc.addr")).ok()?.trim().to_string()).filter(|a| !a.is_empty())
    });
    let script = "import grpc, sys\n\
        ch = grpc.insecure_channel(sys.argv[1])\n\
        get = ch.unary_unary('/qmoi.v1.Monitor/GetOverview', request_serializer=lambda x: x, response_deserializer=lambda b: b)\n\
        codes = []\n\
        for _ in range(10):\n\
        \x20   try:\n\
        \x20       get(b'', timeout=5); codes.append('OK')\n\
        \x20   except grpc.RpcError as e:\n\
        \x20       codes.append(e.code().name + ':' + (e.details() or ''))\n\
        print('\\n'.join(codes))\n";
    let out = Command::new(py).args(["-c", script, &addr]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let ok = text.lines().filter(|l| *l == "OK").count();
    let limited = text.lines().filter(|l| l.starts_with("RESOURCE_EXHAUSTED:rate limited")).count();
    assert!((1..=4).contains(&ok) && ok + limited == 10, "{text}");
}

/// `[grpc.tls]`: grpcio over TLS (the test's own certificate as the root) gets answers,
/// health included; a client without TLS gets none. A public address is accepted only
/// with auth and TLS both.
#[test]
fn grpc_over_tls_and_the_rules_of_a_public_address() {
    let Some(py) = qmoi_testkit::python_with(&["grpc", "grpc_health.v1.health_pb2"]) else { return };
    let tokens = format!("[[dashboard.auth.tokens]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n");
    let mut stack = Stack::new(&format!(
        "[dashboard]\nport = 0\n{tokens}[grpc]\nenabled = true\nport = 0\n\
         [grpc.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n\
         [report]\ninterval = 1\n{}",
        fake_component("system_health", &[], "")
    ));
    std::fs::create_dir_all(stack.path("tls")).unwrap();
    qmoi_testkit::self_signed_cert(&stack.path("tls"), 1);
    stack.start();
    let _ = stack.dashboard_addr();
    let addr = wait_for(Duration::from_secs(10), "run/grpc.addr", || {
        Some(std::fs::read_to_string(stack.path("run/grpc.addr")).ok()?.trim().to_string()).filter(|a| !a.is_empty())
    });
    let script = "import grpc, sys\n\
        from grpc_health.v1 import health_pb2, health_pb2_grpc\n\
        addr, token, cert = sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read()\n\
        md = [('authorization', 'Bearer ' + token)]\n\
        ch = grpc.secure_channel(addr, grpc.ssl_channel_credentials(root_certificates=cert),\n\
        \x20   options=[('grpc.ssl_target_name_override', 'localhost')])\n\
        get = ch.unary_unary('/qmoi.v1.Monitor/GetOverview', request_serializer=lambda x: x, response_deserializer=lambda b: b)\n\
        print('tls overview bytes', len(get(b'', metadata=md, timeout=10)))\n\
        h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=''), timeout=10)\n\
        print('tls health', health_pb2.HealthCheckResponse.ServingStatus.Name(h.status))\n\
        plain = grpc.insecure_channel(addr).unary_unary('/qmoi.v1.Monitor/GetOverview',\n\
        \x20   request_serializer=lambda x: x, response_deserializer=lambda b: b)\n\
        try:\n\
        \x20   plain(b'', metadata=md, timeout=5); print('plain answered')\n\
        except grpc.RpcError as e:\n\
        \x20   print('plain refused', e.code().name)\n";
    let cert = stack.path("tls/cert.pem").display().to_string();
    let out = Command::new(&py).args(["-c", script, &addr, ADMIN, &cert]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{}", stack.supervisor_stderr());
    let bytes: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("tls overview bytes "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(bytes > 50, "{text}");
    assert!(text.contains("tls health SERVING"), "{text}");
    assert!(text.contains("plain refused UNAVAILABLE"), "{text}");

    // A public address: refused without TLS, accepted with auth and TLS (validated only:
    // tests listen on loopback).
    let public = |tls: &str| {
        let s = Stack::new(&format!(
            "[dashboard]\n{tokens}[grpc]\nenabled = true\nhost = \"0.0.0.0\"\n{tls}{}",
            fake_component("system_health", &[], "")
        ));
        std::fs::create_dir_all(s.path("tls")).unwrap();
        qmoi_testkit::self_signed_cert(&s.path("tls"), 1);
        let out = s.run(&["validate"]);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = public("");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("grpc.host") && err.contains("no [grpc.tls] certificate"), "{err}");
    let (code, err) = public("[grpc.tls]\ncert = \"tls/cert.pem\"\nkey = \"tls/key.pem\"\n");
    assert_eq!(code, Some(0), "{err}");
}
