//! The GraphQL API of the real supervisor, used by real clients: the Python `gql` library
//! (requests transport for queries and mutations, websockets transport with
//! graphql-transport-ws for subscriptions) and `requests` for hostile requests
//! (tests/graphql_client.py). A real `qmoi-notify` runs in the stack, so the notifier's
//! deliveries and dead letters are real ones.

use qmoi_testkit::{Stack, fake_component, free_port, wait_for};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ADMIN: &str = "graphql-admin-token-0123";
const READ: &str = "graphql-read-token-01234";

#[test]
fn gql_clients_query_mutate_subscribe_and_are_refused_rightly() {
    let Some(py) = qmoi_testkit::python_with(&["gql.transport.websockets", "gql.transport.requests", "requests"])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let warn = dir.path().join("warn");
    let warn_arg = warn.display().to_string();
    let monitors = fake_component("system_health", &["--metric", "qmoi_load1=0.25", "--warn-while", &warn_arg], "")
        + &fake_component("security", &[], "")
        + "[monitoring_components.notification]\ninterval = 1\n";
    let mut stack = Stack::new(&format!(
        "[dashboard]\nport = 0\n\
         [[dashboard.auth.tokens]]\nname = \"admin\"\ntoken = \"{ADMIN}\"\nrole = \"admin\"\n\
         [[dashboard.auth.tokens]]\nname = \"reader\"\ntoken = \"{READ}\"\nrole = \"read\"\n\
         [report]\ninterval = 1\n{monitors}"
    ));
    // Warnings go to the internal channel (delivered) and to a webhook nobody listens on
    // (a dead letter after its one attempt).
    stack.write(
        "config/notification.toml",
        &format!(
            "interval = \"1s\"\n[grouping]\ngroup_wait = \"0s\"\ngroup_interval = \"1s\"\n\
             [retry]\nbackoff_initial = \"1s\"\nbackoff_max = \"1s\"\n\
             [priorities.warning]\nchannels = [\"internal\", \"hook\"]\nretry_attempts = 1\n\
             [channels.internal]\nenabled = true\n\
             [channels.hook]\ntype = \"webhook\"\nurls = [\"http://127.0.0.1:{}/hook\"]\n",
            free_port()
        ),
    );
    stack.start();
    let addr = stack.dashboard_addr();
    wait_for(Duration::from_secs(30), "every monitor running", || {
        let s = stack.status();
        let comps = s["components"].as_array()?.clone();
        (comps.len() == 3 && comps.iter().all(|c| c["state"] == "running")).then_some(())
    });
    // The history has a point of the metric.
    std::thread::sleep(Duration::from_secs(2));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphql_client.py");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.graphql");
    let out = Command::new(py)
        .arg(&script)
        .args([&format!("http://{addr}"), ADMIN, READ, &warn_arg, &schema.display().to_string()])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{text}");
    assert!(out.status.success(), "the GraphQL clients found problems:\n{text}\n{}", stack.supervisor_stderr());
    assert!(text.matches("\nok ").count() + usize::from(text.starts_with("ok ")) >= 45, "{text}");
    // Every mutation is audited as its REST twin is.
    let audit = std::fs::read_to_string(stack.path("logs/audit.log")).unwrap_or_default();
    for action in ["ack", "silence", "unsilence", "restart", "reset", "maintenance", "maintenance_end"] {
        assert!(audit.contains(&format!("\"action\":\"{action}\"")), "{action} not audited: {audit}");
    }
}
