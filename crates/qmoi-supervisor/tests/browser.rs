//! The dashboard page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver loads the page from the real supervisor, sees
//! every component card and the verdict, sees a live update arrive without a reload, and
//! acknowledges an alert through the page, opens and ends a maintenance window with the
//! page's form and list, and lists the host in the Fleet section (from a real Prometheus
//! the stack pushes to). A screenshot is saved to
//! `target/qmoi-dashboard.png` on each run so a person can look at it.

use fantoccini::{ClientBuilder, Locator};
use qmoi_testkit::engines::Prometheus;
use qmoi_testkit::{Stack, bin, http, wait_for};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ADMIN: &str = "browser-admin-token-0123";

/// chromedriver on a free loopback port; killed on drop.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<Driver> {
    if !qmoi_testkit::require_tool(&["chromedriver", "chromium"], "apt-get install chromium chromium-driver") {
        return None;
    }
    let port = qmoi_testkit::free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
    let d = Driver(child, port);
    wait_for(Duration::from_secs(10), "chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    Some(d)
}

/// The text of the element matching `css`, looked up afresh (the page re-renders parts of
/// itself on live events, which makes held element handles stale); empty if not there.
/// Click the element at `css`, looking it up again on each try (live events re-render
/// the page, so a handle goes stale), for up to 5 s.
async fn click(client: &fantoccini::Client, css: &str) -> Result<(), String> {
    let mut clicked = Err("never tried".to_string());
    for _ in 0..50 {
        clicked = match client.find(Locator::Css(css)).await {
            Ok(b) => b.click().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if clicked.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    clicked
}

/// The text at `css` once it contains `want`, or the last text seen after 5 s.
async fn text_until(client: &fantoccini::Client, css: &str, want: &str) -> String {
    let mut text = String::new();
    for _ in 0..50 {
        text = text_of(client, css).await;
        if text.contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

async fn text_of(client: &fantoccini::Client, css: &str) -> String {
    for _ in 0..10 {
        if let Ok(el) = client.find(Locator::Css(css)).await
            && let Ok(t) = el.text().await
        {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_shows_the_stack_updates_live_and_acknowledges_an_alert() -> Result<(), Box<dyn std::error::Error>> {
    let Some(driver) = chromedriver() else { return Ok(()) };
    if !qmoi_testkit::engines::installed("prometheus", "prometheus") {
        return Ok(());
    }
    // The Fleet section: this stack pushes to a real Prometheus, which the page asks.
    let tmp = tempfile::tempdir()?;
    let prom = Prometheus::start(tmp.path(), "127.0.0.1:0", "global:\n  scrape_interval: 15s\n", &[]);
    let fake = bin("qmoi-fake-monitor");
    let cfg = format!(
        r#"
[remote_write]
interval = 1
host = "browser-host"
[[remote_write.receivers]]
url = "{write}"
[fleet]
query_url = "http://{query}"
[dashboard]
port = 0
[[dashboard.auth.tokens]]
name = "browser-admin"
token = "{ADMIN}"
role = "admin"
[report]
interval = 1
[monitoring_components.system_health]
interval = 1
command = "{f}"
args = ["--mode", "warn", "--component", "system_health", "--metric", "qmoi_cpu_usage_ratio=0.42", "--message", "<img src=x onerror='window.__pwned=1'><script>window.__pwned=2</script> fake warning"]
[monitoring_components.security]
interval = 1
command = "{f}"
args = ["--mode", "write", "--component", "security"]
[monitoring_components.notification]
interval = 1
[monitoring_components.backup]
interval = 1
[monitoring_components.performance]
interval = 1
[monitoring_components.cloud_resources]
interval = 1
"#,
        f = fake.display(),
        write = prom.write_url(),
        query = prom.listen
    );
    let mut stack = Stack::new(&cfg);
    // The real notifier, with a webhook nobody listens on: its one attempt fails, the
    // notification lands in the dead letters, and the page lists it.
    let closed = qmoi_testkit::free_port();
    stack.write(
        "config/notification.toml",
        &format!(
            "[grouping]\ngroup_wait = \"0s\"\n[priorities.warning]\nchannels = [\"hook\"]\nretry_attempts = 0\n\
             [channels.hook]\ntype = \"webhook\"\nurls = [\"http://127.0.0.1:{closed}/hook\"]\n"
        ),
    );
    // The real backup monitor with one folder target: the page shows its newest backup
    // and the recovery procedure an operator needs at 3 a.m.
    stack.write("backups/db-2026-11-27.sql", "-- dump\n");
    stack.write(
        "config/backup.toml",
        "[[targets]]\nname = \"pgdump\"\npath = \"backups\"\npattern = \"db-*.sql\"\nmax_age = \"1d\"\nverify = [\"metadata\"]\n\
         restore_command = \"psql app < {file}\"\n",
    );
    // The real cloud monitor with an Azure subscription whose login endpoint is down: the
    // panel lists the provider with its error (no emulator exists for Azure).
    stack.write(
        "config/cloud_resources.toml",
        &format!(
            "[[providers]]\nname = \"azure-prod\"\ntype = \"azure\"\nsubscriptions = [\"sub-1\"]\n\
             tenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
             login_url = \"http://127.0.0.1:{closed}\"\nmanagement_url = \"http://127.0.0.1:{closed}\"\n"
        ),
    );
    stack.start();
    let addr = stack.dashboard_addr();

    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,1000"]
        }
    }))?;
    let client = ClientBuilder::rustls()?.capabilities(caps).connect(&format!("http://127.0.0.1:{}", driver.1)).await?;
    let result = async {
        client.goto(&format!("http://{addr}/")).await?;
        let wait = || client.wait().at_most(Duration::from_secs(15));
        // The page asks for a token (auth is configured): sign in through the form.
        wait().for_element(Locator::Css("#signin-token")).await?;
        client.find(Locator::Id("signin-open")).await?.click().await.map_err(|e| format!("open sign-in: {e}"))?;
        client.find(Locator::Id("signin-token")).await?.send_keys(ADMIN).await.map_err(|e| format!("type token: {e}"))?;
        client.find(Locator::Id("signin-submit")).await?.click().await.map_err(|e| format!("submit: {e}"))?;

        // Verdict and one card per component.
        wait().for_element(Locator::Css("#verdict[data-verdict='degraded'], #verdict[data-verdict='healthy'], #verdict[data-verdict='critical']")).await?;
        for id in ["system_health", "security"] {
            wait().for_element(Locator::Css(&format!(".card[data-component='{id}']"))).await?;
        }
        let verdict = text_of(&client, "#verdict").await;
        assert!(["HEALTHY", "DEGRADED", "CRITICAL"].contains(&verdict.to_uppercase().as_str()), "{verdict}");

        // A report's text with markup and script is shown as text, never run: the alert's
        // row shows the tags, and the script's and the handler's assignments never happen.
        let row = text_until(&client, "tr[data-fingerprint='system_health/fake']", "<img src=x").await;
        assert!(row.contains("<script>window.__pwned=2</script>"), "the markup as text: '{row}'");
        let ran = client.execute("return typeof window.__pwned", vec![]).await?;
        assert_eq!(ran, serde_json::json!("undefined"), "markup from a report ran in the page");

        // A live update: restart the security monitor behind the page's back; its card
        // shows the new pid and one restart without a reload.
        let pid_css = ".card[data-component='security'] .pid";
        let first = text_of(&client, pid_css).await;
        assert!(first.parse::<u32>().is_ok(), "pid on the card: '{first}'");
        let r = http("POST", &addr, "/api/components/security/restart", &[("Authorization", &format!("Bearer {ADMIN}"))], None);
        assert_eq!(r.status, 200, "{}", r.body);
        let mut now = first.clone();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            now = text_of(&client, pid_css).await;
            if now != first && now.parse::<u32>().is_ok() {
                break;
            }
        }
        assert!(now != first && now.parse::<u32>().is_ok(), "no live update of the security card (pid still '{first}', now '{now}')");
        assert_eq!(text_of(&client, ".card[data-component='security'] .restarts").await, "1");

        // Acknowledge the firing alert from the page. Live events re-render the table, so
        // elements are looked up again on every try instead of holding a stale handle.
        let ack = "tr[data-fingerprint='system_health/fake'] button.ack";
        wait().for_element(Locator::Css(ack)).await?;
        click(&client, ack).await.map_err(|e| format!("click acknowledge: {e}"))?;
        let state = "tr[data-fingerprint='system_health/fake'] .alert-state";
        let text = text_until(&client, state, "acknowledged by browser-admin").await;
        assert!(text.contains("acknowledged by browser-admin"), "alert state on the page: '{text}'");

        // Silence it from the page (a path that had no test): the state says by which silence.
        let silence = "tr[data-fingerprint='system_health/fake'] button.silence";
        click(&client, silence).await.map_err(|e| format!("click silence: {e}"))?;
        let text = text_until(&client, state, "silenced (#").await;
        assert!(text.contains("silenced (#"), "alert state after silencing: '{text}'");
        let silences = http("GET", &addr, "/api/silences", &[("Authorization", &format!("Bearer {ADMIN}"))], None).json();
        assert!(
            silences["silences"].as_array().is_some_and(|a| a.iter().any(|x| x["fingerprint"] == "system_health/fake")),
            "{silences}"
        );

        // A maintenance window opened with the page's form, shown on the card, ended from
        // the page's list; the API sees both, with the signed-in name.
        let auth = [("Authorization", format!("Bearer {ADMIN}"))];
        let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
        wait().for_element(Locator::Css("#maint-component option[value='security']")).await?;
        client.execute("document.querySelector('#maint-component').value = 'security';", vec![]).await?;
        client.find(Locator::Id("maint-reason")).await?.send_keys("kernel upgrade").await?;
        click(&client, "#maint-start").await.map_err(|e| format!("click start maintenance: {e}"))?;
        let mut window = serde_json::Value::Null;
        for _ in 0..100 {
            let w = http("GET", &addr, "/api/maintenance", &auth, None).json();
            if let Some(found) = w["windows"].as_array().and_then(|a| a.iter().find(|x| x["component"] == "security")) {
                window = found.clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(window["created_by"], "browser-admin", "{window}");
        assert_eq!(window["reason"], "kernel upgrade");
        let card = text_until(&client, ".card[data-component='security'] .maintenance", "kernel upgrade").await;
        assert!(card.contains("in maintenance until") && card.contains("kernel upgrade"), "card: '{card}'");
        let end = format!("tr[data-window='{}'] button.end-maint", window["id"]);
        wait().for_element(Locator::Css(&end)).await?;
        click(&client, &end).await.map_err(|e| format!("click end: {e}"))?;
        let mut open = true;
        for _ in 0..100 {
            let w = http("GET", &addr, "/api/maintenance", &auth, None).json();
            open = w["windows"].as_array().is_some_and(|a| a.iter().any(|x| x["component"] == "security"));
            if !open {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!open, "the window was not ended from the page");

        // A window of labels over every component, from the same form: listed as such.
        client.execute("document.querySelector('#maint-component').value = '*';", vec![]).await?;
        client.find(Locator::Id("maint-labels")).await?.send_keys("team=payments").await?;
        client.find(Locator::Id("maint-reason")).await?.send_keys("payments release").await?;
        click(&client, "#maint-start").await.map_err(|e| format!("click start maintenance: {e}"))?;
        let row = text_until(&client, "#maint-table tbody", "payments release").await;
        assert!(row.contains("every component {team=payments}"), "list: '{row}'");
        let w = http("GET", &addr, "/api/maintenance", &auth, None).json();
        let by_label = w["windows"].as_array().and_then(|a| a.iter().find(|x| x["reason"] == "payments release")).cloned();
        assert_eq!(by_label.as_ref().map(|x| (x["component"].clone(), x["labels"].clone())),
            Some((serde_json::json!("*"), serde_json::json!({"team": "payments"}))), "{w}");

        // The notifier's dead letter, listed with the channel and the error.
        let mut dead = String::new();
        for _ in 0..150 {
            dead = text_of(&client, "#dead tbody").await;
            if dead.contains("hook") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(dead.contains("hook") && dead.contains("firing warning"), "dead letters on the page: '{dead}'");
        assert!(dead.contains("127.0.0.1") && dead.contains("Connection refused"), "the error names the target: '{dead}'");

        // The backup panel.
        let mut backups = String::new();
        for _ in 0..150 {
            backups = text_of(&client, "#backup-table tbody").await;
            if backups.contains("pgdump") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(backups.contains("pgdump") && backups.contains("db-2026-11-27.sql"), "backups on the page: '{backups}'");
        assert!(backups.contains("psql app < backups/db-2026-11-27.sql"), "the recovery procedure: '{backups}'");

        // The real performance monitor: its panel shows the sampled system summary.
        let mut perf = String::new();
        for _ in 0..150 {
            perf = text_of(&client, "#perf-system").await;
            if perf.contains("CPU busy") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(perf.contains("CPU busy") && perf.contains("samples"), "performance on the page: '{perf}'");
        // The cloud panel: the provider and why it could not be listed.
        let mut cloud = String::new();
        for _ in 0..150 {
            cloud = text_of(&client, "#cloud-providers tbody").await;
            if cloud.contains("azure-prod") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(cloud.contains("azure-prod (azure)") && cloud.contains("unreachable"), "cloud on the page: '{cloud}'");
        // A trend chart (a path that had no test): the CPU series from the history. The
        // page loads charts on start and on a range change: change the range until it is in.
        let chart = "#charts .chart[data-metric='qmoi_cpu_usage_ratio']";
        let mut legend = String::new();
        for _ in 0..60 {
            if client.find(Locator::Css(chart)).await.is_ok() {
                legend = text_of(&client, &format!("{chart} .legend")).await;
                break;
            }
            if let Ok(b) = client.find(Locator::Css(".ranges button")).await {
                let _ = b.click().await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(legend.contains("system_health"), "CPU chart legend: '{legend}'");
        let drawn = client
            .execute(
                &format!("const c = document.querySelector(\"{chart} canvas\"); return c ? c.toDataURL().length : 0;"),
                vec![],
            )
            .await?;
        assert!(drawn.as_u64().is_some_and(|n| n > 1000), "the chart's canvas is drawn: {drawn}");
        // The Fleet section lists this host, as Prometheus has it (refreshed every 15 s).
        let mut fleet = String::new();
        for _ in 0..40 {
            fleet = text_of(&client, "#fleet-hosts tr[data-host='browser-host']").await;
            if !fleet.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert!(fleet.contains("browser-host") && fleet.contains("ago"), "fleet row on the page: '{fleet}'");
        assert!(text_of(&client, "#fleet-summary").await.contains("1 hosts"), "fleet summary");
        // The security panel lists findings (the fake monitor has none).
        let sec = text_of(&client, "#security-findings tbody").await;
        assert!(sec.contains("None: no change since the baselines."), "security on the page: '{sec}'");
        // A maintenance window shows on its component's card, with why and by whom.
        let out = stack.run(&["maintenance", "add", "--for", "1h", "--component", "system_health", "--reason", "disk swap"]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let m = text_until(&client, ".card[data-component='system_health'] .maintenance", "disk swap").await;
        assert!(m.starts_with("in maintenance until") && m.contains("disk swap (cli:"), "maintenance on the card: '{m}'");
        // And in the list, at once (not at its next 15 s refresh): the card's change says so.
        let listed = text_until(&client, "#maint-table tbody", "disk swap").await;
        assert!(listed.contains("system_health") && listed.contains("cli:"), "the window in the list: '{listed}'");

        let png = client.screenshot().await?;
        let target = bin("qmoi-supervisor").parent().and_then(|p| p.parent()).map(|p| p.join("qmoi-dashboard.png"));
        if let Some(t) = target {
            std::fs::write(&t, png)?;
            eprintln!("screenshot: {}", t.display());
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    }
    .await;
    let _ = client.close().await;
    result?;

    // The acknowledgement reached the server, by the signed-in identity.
    let a = http("GET", &addr, "/api/alerts", &[("Authorization", &format!("Bearer {ADMIN}"))], None).json();
    let fp = a["active"]
        .as_array()
        .and_then(|x| x.iter().find(|x| x["fingerprint"] == "system_health/fake").cloned())
        .unwrap_or_default();
    assert_eq!(fp["acknowledged"]["by"], "browser-admin");
    Ok(())
}
