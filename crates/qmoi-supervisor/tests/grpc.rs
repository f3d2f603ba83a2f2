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
