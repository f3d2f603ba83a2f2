//! Hostile clients against the dashboard of the real supervisor (tests/hostile_clients.py:
//! slowloris, streams that never read, endless and oversized requests, 200 client
//! addresses, path traversal and garbage parameters, cross-origin form posts), bounded
//! in count and time, loopback only. Auth is on (an admin token), as on a dashboard that
//! listens beyond loopback. The script prints, for each attack, how `/healthz` answered
//! meanwhile and the supervisor's RSS and descriptors before, at the peak and after.
//! Latency is printed, never asserted (this machine is shared); that `/healthz` answers
//! every time is.

use qmoi_testkit::{Stack, fake_component};
use std::path::Path;
use std::process::Command;

const ADMIN: &str = "hostile-admin-token-0123456789";

#[test]
fn hostile_clients_leave_the_dashboard_answering_and_bounded() {
    let Some(py) = qmoi_testkit::python_with(&["asyncio"]) else { return };
    let mut stack = Stack::new(&format!(
        "[dashboard]\nport = 0\n[[dashboard.auth.tokens]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n\
         [report]\ninterval = 1\n{}",
        fake_component("system_health", &["--mode", "warn"], "")
    ));
    let pid = stack.start();
    let addr = stack.dashboard_addr();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile_clients.py");
    let out = Command::new(py).arg(&script).args([&addr, &pid.to_string(), ADMIN]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "hostile clients found problems:\n{text}\n{}", stack.supervisor_stderr());
    assert!(qmoi_testkit::alive(pid), "the supervisor is alive");
    assert_eq!(stack.status()["supervisor"]["pid"], pid, "and answers on its control socket");
}
