//! The real `qmoi-notify` binary delivering to real HTTP receivers on loopback: Slack-,
//! Discord- and generic-format webhooks (with HMAC signature and custom headers), a
//! Twilio-like Messages endpoint, a receiver that fails twice then succeeds (retries), one
//! that always fails and one that is too slow (dead letters); then kill -9 mid-delivery
//! (nothing lost, at most the in-flight message twice) and a flood against a rate limit.

mod common;

use common::{Env, Receiver, write_report};
use hmac::{Hmac, Mac};
use qmoi_testkit::{read_json, wait_for};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn hex_hmac(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|e| panic!("{e}"));
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn webhooks_sms_retries_and_dead_letters() {
    let rx = Receiver::start();
    let config = format!(
        r#"
interval = "1s"
[grouping]
group_wait = "0s"
group_interval = "0s"
[retry]
backoff_initial = "100ms"
backoff_max = "200ms"
[priorities.critical]
channels = ["slack", "discord", "generic", "flaky", "dead", "slow", "sms"]
retry_attempts = 2
[channels.slack]
type = "webhook"
urls = ["{slack}"]
format = "slack"
[channels.discord]
type = "webhook"
urls = [{{ url = "{discord}", format = "discord" }}]
[channels.generic]
type = "webhook"
urls = ["{generic}"]
secret = "${{QMOI_TEST_HOOK_KEY}}"
headers = {{ X-Token = "${{QMOI_TEST_HOOK_TOKEN}}" }}
[channels.flaky]
type = "webhook"
urls = ["{flaky}"]
[channels.dead]
type = "webhook"
urls = ["{dead}"]
[channels.slow]
type = "webhook"
urls = ["{slow}"]
timeout = "300ms"
[channels.sms]
base_url = "{twilio}"
account_sid = "AC123"
auth_token = "${{QMOI_TEST_TWILIO_TOKEN}}"
from = "+15550001111"
to = ["+15550002222", "+1999000"]
"#,
        slack = rx.url("/slack/T000/B000/SECRETTOKEN"),
        discord = rx.url("/discord/api/webhooks/1/tok"),
        generic = rx.url("/generic"),
        flaky = rx.url("/flaky"),
        dead = rx.url("/dead"),
        slow = rx.url("/slow"),
        twilio = rx.url("/twilio"),
    );
    let mut env = Env::new(&config);
    write_report(&env.logs(), "system_health", &[("disk_usage:/", "critical", "Disk / almost full")]);
    for (k, v) in [
        ("QMOI_TEST_HOOK_KEY", "hook-key"),
        ("QMOI_TEST_HOOK_TOKEN", "tok-123"),
        ("QMOI_TEST_TWILIO_TOKEN", "twilio-secret"),
    ] {
        env.vars.push((k.into(), v.into()));
    }
    env.start();

    // Slack: text plus an attachment coloured for critical.
    let slack = rx.wait("/slack", 1, WAIT)[0].json();
    assert!(slack["text"].as_str().unwrap_or_default().contains("CRITICAL test-host: Disk / almost full"), "{slack}");
    assert_eq!(slack["attachments"][0]["color"], "#B00020");
    assert_eq!(slack["attachments"][0]["title"], "[CRITICAL] Disk / almost full");
    // Discord: content plus embeds.
    let discord = rx.wait("/discord", 1, WAIT)[0].json();
    assert_eq!(discord["embeds"][0]["title"], "[CRITICAL] Disk / almost full");
    assert_eq!(discord["embeds"][0]["color"], 0xB00020);
    assert_eq!(discord["embeds"][0]["footer"]["text"], "system_health/disk_usage:/");
    // Generic: the documented schema, signed, with the custom header from ${ENV}.
    let generic = rx.wait("/generic", 1, WAIT).remove(0);
    let g = generic.json();
    assert_eq!(g["version"], "1");
    assert_eq!(g["status"], "firing");
    assert_eq!(g["alerts"][0]["fingerprint"], "system_health/disk_usage:/");
    assert_eq!(g["alerts"][0]["level"], "critical");
    assert_eq!(g["alerts"][0]["component"], "system_health");
    assert_eq!(generic.headers.get("x-token").map(String::as_str), Some("tok-123"));
    let expected = format!("sha256={}", hex_hmac(b"hook-key", generic.body.as_bytes()));
    assert_eq!(generic.headers.get("x-qmoi-signature"), Some(&expected));
    assert_eq!(generic.headers.get("x-qmoi-notification-id").map(String::as_str), g["id"].as_str());
    // Flaky: two failures, then delivered on the third attempt.
    let flaky = rx.wait("/flaky", 3, WAIT);
    assert_eq!(flaky.len(), 3);
    // Twilio: a form post with basic auth per number; the invalid number gets Twilio's error.
    let sms = rx.wait("/twilio/2010-04-01/Accounts/AC123/Messages.json", 2, WAIT);
    let good = sms.iter().find(|r| r.body.contains("To=%2B15550002222")).unwrap_or_else(|| panic!("{sms:?}"));
    assert!(good.body.contains("From=%2B15550001111"), "{}", good.body);
    assert!(good.body.contains("Body=QMOI+CRITICAL+test-host%3A+Disk+%2F+almost+full"), "{}", good.body);
    // base64("AC123:twilio-secret")
    assert_eq!(good.headers.get("authorization").map(String::as_str), Some("Basic QUMxMjM6dHdpbGlvLXNlY3JldA=="));

    // Always failing and too slow: 1 + 2 retries, then the dead letters.
    let dead = wait_for(WAIT, "three dead letters (dead, slow, bad number)", || {
        let s = env.status_json();
        let d: Vec<serde_json::Value> = s["dead_letters"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d["description"].as_str().unwrap_or_default().contains("Disk / almost full"))
            .collect();
        let chans: HashSet<&str> = d.iter().filter_map(|d| d["channel"].as_str()).collect();
        (["dead", "slow", "sms"].iter().all(|c| chans.contains(c))).then_some(d.clone())
    });
    let about_disk = |prefix: &str| {
        rx.requests(prefix).into_iter().filter(|r| r.body.contains("system_health/disk_usage:/")).count()
    };
    assert_eq!(about_disk("/dead"), 3, "1 attempt + 2 retries");
    let by_channel: HashMap<&str, &serde_json::Value> =
        dead.iter().map(|d| (d["channel"].as_str().unwrap_or_default(), d)).collect();
    assert!(
        by_channel["dead"]["last_error"].as_str().unwrap_or_default().contains("HTTP 500 Internal Server Error: boom"),
        "{dead:?}"
    );
    assert_eq!(by_channel["dead"]["attempts"], 3);
    assert!(by_channel["slow"]["last_error"].as_str().unwrap_or_default().contains("timed out"), "{dead:?}");
    let sms_dead = by_channel["sms"];
    assert!(sms_dead["last_error"].as_str().unwrap_or_default().contains("Twilio error 21211"), "{sms_dead}");
    assert_eq!(sms_dead["attempts"], 1, "a 400 is permanent: no retries");

    // The notifier's own report shows the dead channel as critical, with masked secrets.
    let report = wait_for(WAIT, "notification report with the dead channel", || {
        let r = read_json(&env.logs().join("notification_latest.json"))?;
        let dead_check = r["checks"].as_array()?.iter().find(|c| c["name"] == "channel:dead")?.clone();
        (dead_check["status"] == "critical").then_some(r)
    });
    let text = report.to_string();
    assert!(!text.contains("SECRETTOKEN") && !text.contains("twilio-secret") && !text.contains("hook-key"), "{text}");
    assert!(text.contains("http://127.0.0.1"), "targets are shown masked: {text}");

    // Resolve: every channel that was told hears about it.
    write_report(&env.logs(), "system_health", &[]);
    wait_for(WAIT, "resolution on slack", || {
        rx.requests("/slack")
            .iter()
            .any(|r| {
                r.json()["text"].as_str().unwrap_or_default().starts_with("RESOLVED test-host: Disk / almost full")
            })
            .then_some(())
    });
    wait_for(WAIT, "resolution on the generic webhook", || {
        rx.requests("/generic")
            .iter()
            .any(|r| r.json()["status"] == "resolved" && r.body.contains("system_health/disk_usage:/"))
            .then_some(())
    });
    // The notifier's own alert about the dead channel went to the other channels, not to it.
    wait_for(WAIT, "the dead-channel alert on slack", || {
        rx.requests("/slack").iter().any(|r| r.body.contains("notification/channel:dead")).then_some(())
    });
    assert!(!rx.requests("/dead").iter().any(|r| r.body.contains("notification/channel:dead")));

    // History export: CSV with a header and sent rows; JSON parses.
    let csv = env.run(&["--history", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(csv.starts_with("id,at,msg_id,channel,target,result,"), "{csv}");
    assert!(csv.lines().any(|l| l.contains(",slack,") && l.contains(",sent,")), "{csv}");
    assert!(!csv.contains("SECRETTOKEN"), "{csv}");
    let hist = env.run(&["--history", "--format", "json"]);
    let hist: serde_json::Value = serde_json::from_slice(&hist.stdout).unwrap();
    assert!(hist.as_array().is_some_and(|h| h.iter().any(|r| r["result"] == "dead")));

    // --retry-dead puts them back; the running notifier tries them again.
    let before = about_disk("/dead");
    let out = env.run(&["--retry-dead"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("dead letter(s) put back"), "{out:?}");
    wait_for(WAIT, "a retried dead letter", || (about_disk("/dead") > before).then_some(()));
    env.stop();
}

#[test]
fn kill_9_mid_delivery_loses_nothing() {
    let rx = Receiver::start();
    let config = format!(
        r#"
[grouping]
group_wait = "0s"
group_interval = "0s"
group_by = "fingerprint"
[priorities.warning]
channels = ["hook"]
[channels.hook]
type = "webhook"
urls = ["{}"]
format = "generic"
"#,
        rx.url("/slowish")
    );
    let mut env = Env::new(&config);
    let subjects: Vec<String> = (0..30).map(|i| format!("check{i:02}")).collect();
    let alerts: Vec<(&str, &str, &str)> = subjects.iter().map(|s| (s.as_str(), "warning", "Something slow")).collect();
    write_report(&env.logs(), "api_endpoints", &alerts);
    env.start();
    // 300 ms per delivery, one at a time per target: kill while messages are in flight.
    rx.wait("/slowish", 5, WAIT);
    std::thread::sleep(Duration::from_millis(150));
    env.kill9();
    let at_kill = rx.requests("/slowish").len();
    assert!(at_kill < 30, "the kill came too late to test anything ({at_kill} delivered)");
    env.start();
    let all = wait_for(Duration::from_secs(40), "every alert delivered after the restart", || {
        let r = rx.requests("/slowish");
        let fps: HashSet<String> =
            r.iter().filter_map(|q| q.json()["alerts"][0]["fingerprint"].as_str().map(str::to_string)).collect();
        (fps.len() == 30).then_some(r)
    });
    // Let anything still pending arrive before counting duplicates.
    wait_for(WAIT, "empty outbox", || env.status_json()["pending"].as_array().is_some_and(Vec::is_empty).then_some(()));
    let all = if rx.requests("/slowish").len() > all.len() { rx.requests("/slowish") } else { all };
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &all {
        *per_id.entry(r.headers.get("x-qmoi-notification-id").cloned().unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 30, "one message per alert, none lost: {per_id:?}");
    let dupes: usize = per_id.values().map(|n| n - 1).sum();
    assert!(dupes <= 1, "only the message in flight at the kill may come twice; got {dupes} duplicates");
    // Nothing was notified again as new after the restart.
    assert_eq!(all.len(), 30 + dupes);
    env.stop();
}

#[test]
fn flood_is_rate_limited_and_summarised() {
    let rx = Receiver::start();
    let config = format!(
        r#"
interval = "1s"
[grouping]
group_wait = "0s"
group_interval = "0s"
group_by = "fingerprint"
[priorities.warning]
channels = ["hook"]
[channels.hook]
type = "webhook"
urls = ["{}"]
format = "generic"
rate_limit = {{ count = 10, per = "1m" }}
"#,
        rx.url("/flood")
    );
    let mut env = Env::new(&config);
    let pid = env.start();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    // 50 reports × 100 alerts, each report replacing the previous alerts:
    // 5,000 new alerts and 5,000 resolutions, i.e. 10,000 transitions.
    for round in 0..50 {
        let subjects: Vec<String> = (0..100).map(|i| format!("r{round}-a{i}")).collect();
        let alerts: Vec<(&str, &str, &str)> = subjects.iter().map(|s| (s.as_str(), "warning", "Flood")).collect();
        write_report(&env.logs(), "performance", &alerts);
        std::thread::sleep(Duration::from_millis(100));
    }
    write_report(&env.logs(), "performance", &[]);
    // A summary follows once the bucket has a token again (one every 6 s).
    let reqs = wait_for(Duration::from_secs(30), "a summary message", || {
        let r = rx.requests("/flood");
        r.iter().any(|q| q.json()["suppressed"].as_u64().unwrap_or(0) > 0).then_some(r)
    });
    let elapsed = started.elapsed().as_secs_f64();
    let (summaries, normal): (Vec<_>, Vec<_>) = reqs
        .iter()
        .map(common::Req::json)
        .partition(|j| j["suppressed"].as_u64().unwrap_or(0) > 0 && j["alerts"].as_array().is_some_and(Vec::is_empty));
    let allowed = 10.0 + elapsed / 6.0;
    assert!(
        (reqs.len() as f64) <= allowed + 1.0,
        "{} messages ({} summaries) in {elapsed:.1}s exceed the limit of 10/min",
        reqs.len(),
        summaries.len()
    );
    assert!(!normal.is_empty());
    let summarised: u64 = summaries.iter().map(|j| j["suppressed"].as_u64().unwrap_or(0)).sum();
    assert!(summarised > 1000, "the summary counts the suppressed notifications: {summarised}");
    // Nothing silently lost: every suppressed notification is in the history.
    let report = wait_for(WAIT, "report with counters", || {
        let r = read_json(&env.logs().join("notification_latest.json"))?;
        let v = r["metrics"]["qmoi_notify_messages_total{channel=\"hook\",result=\"suppressed\"}"].as_f64()?;
        (v >= summarised as f64).then_some(r)
    });
    assert_eq!(report["checks"].as_array().map(|c| c.iter().any(|c| c["name"] == "channel:hook")), Some(true));
    let hwm = qmoi_testkit::proc_status_kib(pid, "VmHWM");
    assert!(hwm > 0 && hwm < 64 * 1024, "notifier peak RSS {hwm} KiB during the flood: not bounded");
    env.stop();
}

#[test]
fn configuration_errors_and_seed_json() {
    let env = Env::new(
        "[channels.email]\nsmtp_server = \"mail.example.com\"\nsecurity = \"plain\"\nto = [\"a@example.com\"]\nfrom = \"q@example.com\"\n",
    );
    let out = env.run(&["--validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notification.toml") && err.contains("channels.email.security") && err.contains("loopback"),
        "{err}"
    );
    // The daemon refuses to start on it too (exit 2 before anything starts).
    let out = env.run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!env.path("data/notification.db").exists(), "nothing created on a bad config");

    let seed = r#"{
      "channels": {
        "email": {"enabled": true, "smtp_server": "smtp.gmail.com", "smtp_port": 587,
                  "username": "your-email@gmail.com", "password": "your-app-password"},
        "webhook": {"enabled": true, "urls": ["https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK"]}
      },
      "priorities": {"critical": {"channels": ["email", "sms", "webhook"], "retry_attempts": 5}}
    }"#;
    std::fs::write(env.path("notification_config.json"), seed).unwrap();
    let out = env.command_with("notification_config.json").arg("--validate").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("priorities.critical.channels: channel 'sms' is not configured"), "{text}");
    let out = env.command_with("notification_config.json").arg("--print-config").output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("your-app-password") && !printed.contains("YOUR/SLACK"), "{printed}");

    // --test-webhook against a dead port: the exact error, exit 1.
    let dead_port = qmoi_testkit::free_port();
    let env = Env::new(&format!("[channels.webhook]\nurls = [\"http://127.0.0.1:{dead_port}/hook/SECRET\"]\n"));
    let out = env.run(&["--test-webhook"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED") && text.contains("Connection refused") || text.contains("connect"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
    let out = env.run(&["--test-sms"]);
    assert_eq!(out.status.code(), Some(2), "no sms channel configured");
}

/// Regression: when the notifier's database could not be read, its own report fell back
/// to zeros ("0 pending"). Now it says the database is unreadable (`unknown`) and leaves
/// out the figures it could not read.
#[test]
fn an_unreadable_database_is_unknown_never_zero() {
    let mut env = Env::new("interval = \"1s\"\n");
    env.start();
    let latest = env.logs().join("notification_latest.json");
    wait_for(Duration::from_secs(15), "the first report", || read_json(&latest));
    // The outbox disappears under the running notifier (a damaged or replaced database).
    let py = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('ALTER TABLE outbox RENAME TO outbox_gone'); c.commit()"])
        .arg(env.path("data/notification.db"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(py, "python3 sqlite3");
    let r = wait_for(Duration::from_secs(15), "a report that says so", || {
        read_json(&latest).filter(|r| {
            r["checks"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["name"] == "database" && c["status"] == "unknown"))
        })
    });
    let backlog =
        r["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "backlog").cloned()).unwrap_or_default();
    assert_eq!(backlog["status"], "unknown", "{backlog}");
    assert!(r["metrics"].get("qmoi_notify_pending").is_none(), "no false zero: {}", r["metrics"]);
    assert_eq!(r["status"], "unknown", "{}", r["summary"]);
    env.stop();
}

/// The notifier on the shared runner's rules (issue: it re-implemented the run loop and
/// missed them): two notifiers on one database refuse to both send, its own alerts keep
/// their `since` across a restart, and `--validate` finds what only building it finds.
#[test]
fn one_sender_per_outbox_since_survives_restarts_and_validate_builds() {
    // "sms" is named but not configured: a routing warning, so the report has an alert.
    let mut env = Env::new("interval = \"1s\"\n[priorities.critical]\nchannels = [\"sms\"]\n");
    let pid = env.start();
    let latest = env.logs().join("notification_latest.json");
    let first = wait_for(Duration::from_secs(15), "the routing alert", || {
        read_json(&latest).filter(|r| r["alerts"].as_array().is_some_and(|a| !a.is_empty()))
    });
    let since = first["alerts"][0]["since"].clone();
    // A second notifier on the same database, reporting elsewhere: refused.
    let out = std::process::Command::new(qmoi_testkit::bin("qmoi-notify"))
        .current_dir(env.path(""))
        .args(["--config", "notification.toml", "--report-dir", "logs2", "--log-dir", "logs2", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("another notifier (pid {pid}) already sends from data/notification.db")), "{err}");
    // Restarted, its alert keeps its since.
    env.stop();
    std::thread::sleep(Duration::from_millis(1100));
    env.start();
    let again = wait_for(Duration::from_secs(15), "a report of the new process", || {
        read_json(&latest).filter(|r| {
            r["generated_at"] != first["generated_at"] && r["alerts"].as_array().is_some_and(|a| !a.is_empty())
        })
    });
    assert_eq!(again["alerts"][0]["since"], since, "{again}");
    env.stop();

    // --once works through the outbox and says how many it attempted; --check only reads.
    let out = env.command_with("notification.toml").arg("--once").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let once = read_json(&latest).unwrap_or_default();
    let delivery = once["checks"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "delivery")).cloned();
    let message = delivery.as_ref().and_then(|c| c["message"].as_str()).unwrap_or_default().to_string();
    assert!(message.ends_with("delivery attempt(s) in this run"), "{once}");
    let out = env.command_with("notification.toml").arg("--check").output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("routing") && !table.contains("delivery"), "{table}");

    // A template that does not compile is a configuration error for --validate.
    std::fs::create_dir_all(env.path("templates")).unwrap();
    std::fs::write(env.path("templates/sms.txt"), "{{ alert.title ").unwrap();
    std::fs::write(env.path("bad.toml"), "templates = \"templates\"\n").unwrap();
    let out = env.command_with("bad.toml").arg("--validate").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("template sms.txt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `[[dependencies]]`: the gateway fails and 30 endpoints behind it with it, their report
/// first: one notification (the gateway's), not 31; the report lists the 30 held back;
/// when everything recovers, the gateway's resolve and nothing for the endpoints.
#[test]
fn a_failing_parent_is_one_notification_not_thirty() {
    let rx = Receiver::start();
    let config = format!(
        r#"
interval = "1s"
[grouping]
group_wait = "0s"
group_interval = "0s"
group_by = "fingerprint"
[priorities.critical]
channels = ["hook"]
[channels.hook]
type = "webhook"
urls = ["{}"]
format = "generic"
[[dependencies]]
name = "gateway"
parent = "^system_health/connectivity:gateway$"
children = "^api_endpoints/"
hold = "3s"
"#,
        rx.url("/dep")
    );
    let mut env = Env::new(&config);
    env.start();
    std::thread::sleep(Duration::from_millis(300));
    let subjects: Vec<String> = (0..30).map(|i| format!("endpoint:e{i}")).collect();
    let endpoints: Vec<(&str, &str, &str)> =
        subjects.iter().map(|s| (s.as_str(), "critical", "Endpoint down")).collect();
    write_report(&env.logs(), "api_endpoints", &endpoints);
    std::thread::sleep(Duration::from_millis(500));
    write_report(&env.logs(), "system_health", &[("connectivity:gateway", "critical", "Gateway unreachable")]);
    let report = wait_for(WAIT, "the report listing the held alerts", || {
        let r = read_json(&env.logs().join("notification_latest.json"))?;
        (r["metrics"]["qmoi_notify_suppressed_by_parent"].as_f64()? == 30.0).then_some(r)
    });
    assert_eq!(report["details"]["suppressed_by_parent"][0]["parent"], "system_health/connectivity:gateway");
    std::thread::sleep(Duration::from_secs(5)); // past the hold
    let fingerprints = |reqs: &[common::Req]| -> Vec<String> {
        reqs.iter()
            .flat_map(|q| q.json()["alerts"].as_array().cloned().unwrap_or_default())
            .map(|a| format!("{}:{}", a["status"].as_str().unwrap_or(""), a["fingerprint"].as_str().unwrap_or("")))
            .collect()
    };
    assert_eq!(fingerprints(&rx.requests("/dep")), ["firing:system_health/connectivity:gateway"]);
    // Everything recovers: the gateway's resolve, nothing for the endpoints.
    write_report(&env.logs(), "system_health", &[]);
    write_report(&env.logs(), "api_endpoints", &[]);
    rx.wait("/dep", 2, WAIT);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        fingerprints(&rx.requests("/dep")),
        ["firing:system_health/connectivity:gateway", "resolved:system_health/connectivity:gateway"]
    );
    env.stop();
}
