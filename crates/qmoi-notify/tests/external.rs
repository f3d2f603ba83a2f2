//! The notifier against real third-party servers on loopback: Python's aiosmtpd (a real
//! SMTP server; scripts/test.sh creates its venv and sets QMOI_TEST_PYTHON) and Debian's
//! prometheus-alertmanager with a webhook receiver. Without them (outside scripts/test.sh)
//! these tests say so and skip, unless QMOI_REQUIRE_EXTERNAL=1 makes that a failure.

mod common;

use common::{Env, Receiver, write_report};
use qmoi_testkit::require_external;
use qmoi_testkit::wait_for;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

use qmoi_testkit::{Kill, free_port};

fn python_with_aiosmtpd() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> =
        std::env::var_os("QMOI_TEST_PYTHON").map(PathBuf::from).into_iter().chain([PathBuf::from("python3")]).collect();
    candidates.into_iter().find(|p| {
        Command::new(p).args(["-c", "import aiosmtpd"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    })
}

/// An aiosmtpd handler that stores each message as JSON (write, then rename).
const HANDLER: &str = r#"
import json, os, itertools
class Saver:
    def __init__(self, folder):
        self.folder = folder
        self.n = itertools.count()
    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)
    async def handle_DATA(self, server, session, envelope):
        i = next(self.n)
        tmp = os.path.join(self.folder, f".{i}.tmp")
        with open(tmp, "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "data": envelope.content.decode("utf8", "replace")}, f)
        os.rename(tmp, os.path.join(self.folder, f"{i}.json"))
        return "250 Message accepted for delivery"
"#;

fn start_smtp(dir: &Path) -> Option<(Kill, u16, PathBuf)> {
    start_smtp_with(dir, "mail", &[])
}

/// aiosmtpd storing into `dir/<folder>`, with extra arguments (TLS).
fn start_smtp_with(dir: &Path, folder: &str, extra: &[&str]) -> Option<(Kill, u16, PathBuf)> {
    let Some(py) = python_with_aiosmtpd() else {
        assert!(!require_external(), "aiosmtpd is not installed (scripts/test.sh creates its venv)");
        eprintln!("SKIPPED: aiosmtpd not installed; run scripts/test.sh");
        return None;
    };
    let mail = dir.join(folder);
    std::fs::create_dir_all(&mail).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("qmoi_smtp_saver.py"), HANDLER).unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let child = Command::new(py)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(extra)
        .args(["-c", "qmoi_smtp_saver.Saver"])
        .arg(&mail)
        .env("PYTHONPATH", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let k = Kill(child);
    wait_for(WAIT, "aiosmtpd listening", || std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()));
    Some((k, port, mail))
}

fn mails(folder: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect()
        })
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| qmoi_testkit::read_json(p)).collect()
}

#[test]
fn email_through_a_real_smtp_server() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_smtp, port, mail)) = start_smtp(tmp.path()) else { return };
    let mut env = Env::new(&format!(
        r#"
dashboard_url = "http://127.0.0.1:8080/"
[grouping]
group_wait = "0s"
group_interval = "0s"
[priorities.critical]
channels = ["email"]
[priorities.warning]
channels = ["email"]
[channels.email]
smtp_server = "127.0.0.1"
smtp_port = {port}
security = "plain"
from = "QMOI <qmoi@example.test>"
to = ["ops@example.test", "oncall@example.test"]
"#
    ));
    // --test-email: a real message, and the server's answer printed.
    let out = env.run(&["--test-email"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("OK in") && text.contains("250"), "{text}");
    let first = wait_for(WAIT, "the test email", || mails(&mail).into_iter().next());
    assert!(first["data"].as_str().unwrap_or_default().contains("Subject: [QMOI test]"), "{first}");

    write_report(
        &env.logs(),
        "backup",
        &[("stale:db", "critical", "Backup db is 3 days old"), ("size:db", "warning", "Backup <db> shrank")],
    );
    env.start();
    let m = wait_for(WAIT, "the alert email", || mails(&mail).into_iter().nth(1));
    assert_eq!(m["mail_from"], "qmoi@example.test");
    let mut rcpt: Vec<String> =
        m["rcpt_tos"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
    rcpt.sort();
    assert_eq!(rcpt, ["oncall@example.test", "ops@example.test"]);
    let data = m["data"].as_str().unwrap_or_default();
    // Inhibition: the critical alert of `backup` holds back its warning, so one alert.
    assert!(data.contains("Subject: [QMOI CRITICAL] test-host: Backup db is 3 days old"), "{data}");
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("Content-Type: text/plain"), "{data}");
    assert!(data.contains("Content-Type: text/html"), "{data}");
    assert!(data.contains("[CRITICAL] Backup db is 3 days old"), "{data}");
    assert!(data.contains("fingerprint: backup/stale:db"), "{data}");
    assert!(data.contains("http://127.0.0.1:8080/"), "{data}");

    // The critical resolves: its resolution, and now the warning (no longer inhibited).
    write_report(&env.logs(), "backup", &[("size:db", "warning", "Backup <db> shrank")]);
    let m = wait_for(WAIT, "the second alert email", || mails(&mail).into_iter().nth(2));
    let data = m["data"].as_str().unwrap_or_default();
    assert!(data.contains("1 firing, 1 resolved (backup)"), "{data}");
    assert!(data.contains("Backup &lt;db&gt; shrank"), "HTML is escaped: {data}");
    env.stop();
}

#[test]
fn email_over_starttls_and_implicit_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(!require_external(), "openssl is required (scripts/test.sh installs it)");
        return;
    }
    qmoi_testkit::self_signed_cert(d, 2);
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    let (cert, key) = (cert.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
    let Some((_a, starttls_port, starttls_mail)) =
        start_smtp_with(d, "starttls", &["--tlscert", &cert, "--tlskey", &key])
    else {
        return;
    };
    let Some((_b, tls_port, tls_mail)) = start_smtp_with(d, "smtps", &["--smtpscert", &cert, "--smtpskey", &key])
    else {
        return;
    };
    let env = Env::new(&format!(
        r#"
[channels.starttls]
type = "email"
smtp_server = "127.0.0.1"
smtp_port = {starttls_port}
security = "starttls"
ca_file = "{cert}"
from = "qmoi@example.test"
to = ["ops@example.test"]

[channels.smtps]
type = "email"
smtp_server = "127.0.0.1"
smtp_port = {tls_port}
security = "tls"
ca_file = "{cert}"
from = "qmoi@example.test"
to = ["ops@example.test"]

[channels.untrusted]
type = "email"
smtp_server = "127.0.0.1"
smtp_port = {starttls_port}
security = "starttls"
from = "qmoi@example.test"
to = ["ops@example.test"]
"#
    ));
    for (channel, folder) in [("starttls", &starttls_mail), ("smtps", &tls_mail)] {
        let out = env.run(&["--test-email", "--channel", channel]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{channel}: {text}{}", String::from_utf8_lossy(&out.stderr));
        let m = wait_for(WAIT, "the test email over TLS", || mails(folder).into_iter().next());
        assert!(m["data"].as_str().unwrap_or_default().contains("Subject: [QMOI test]"), "{m}");
    }
    // Without the CA the self-signed certificate is refused, and the error says so.
    let out = env.run(&["--test-email", "--channel", "untrusted"]);
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("certificate") || text.contains("unknownissuer") || text.contains("tls"), "{text}");
}

#[test]
fn forwarded_alerts_arrive_through_a_real_alertmanager() {
    let am_bin = Path::new("/usr/bin/prometheus-alertmanager");
    if !am_bin.exists() {
        assert!(!require_external(), "prometheus-alertmanager is not installed (scripts/test.sh installs it)");
        eprintln!("SKIPPED: prometheus-alertmanager not installed");
        return;
    }
    let rx = Receiver::start();
    let tmp = tempfile::tempdir().unwrap();
    let am_cfg = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: ['alertname', 'component']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: '{}'\n        send_resolved: true\n",
            rx.url("/am-hook")
        ),
    )
    .unwrap();
    let port = free_port();
    let am = Kill(
        Command::new(am_bin)
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!("--storage.path={}", tmp.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(tmp.path().join("am.log")).unwrap()))
            .spawn()
            .unwrap(),
    );
    wait_for(WAIT, "Alertmanager ready", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let r = qmoi_testkit::http("GET", &format!("127.0.0.1:{port}"), "/-/ready", &[], None);
        (r.status == 200).then_some(())
    });
    let mut env = Env::new(&format!(
        r#"
[grouping]
group_wait = "0s"
group_interval = "0s"
[priorities.critical]
channels = ["alertmanager"]
[channels.alertmanager]
urls = ["http://127.0.0.1:{port}"]
resend_interval = "2s"
"#
    ));
    write_report(&env.logs(), "security", &[("fim:/etc/passwd", "critical", "/etc/passwd changed")]);
    env.start();
    let hook = wait_for(WAIT, "Alertmanager's webhook", || {
        rx.requests("/am-hook").into_iter().map(|r| r.json()).find(|j| j["status"] == "firing")
    });
    let a = &hook["alerts"][0];
    assert_eq!(a["labels"]["alertname"], "fim:/etc/passwd");
    assert_eq!(a["labels"]["component"], "security");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["fingerprint"], "security/fim:/etc/passwd");
    assert_eq!(a["labels"]["instance"], "test-host");
    assert_eq!(a["labels"]["host"], "test-host");
    assert_eq!(a["annotations"]["summary"], "/etc/passwd changed");
    // Resolution travels the same way.
    write_report(&env.logs(), "security", &[]);
    wait_for(WAIT, "the resolution through Alertmanager", || {
        rx.requests("/am-hook").into_iter().map(|r| r.json()).find(|j| j["status"] == "resolved")
    });
    env.stop();
    drop(am);
}
