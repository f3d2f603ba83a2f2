//! The fake monitor behaves as the supervisor's tests rely on. (Having an integration test
//! here also makes `cargo test --workspace` build the `qmoi-fake-monitor` binary.)

use std::process::Command;

fn fake(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qmoi-fake-monitor"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the fake monitor: {e}"))
}

#[test]
fn modes_do_what_they_say() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = fake(dir.path(), &["--mode", "crash"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "fake monitor: simulated crash");
    let out = fake(dir.path(), &["--mode", "config-error"]);
    assert_eq!(out.status.code(), Some(2));
    // --validate succeeds whatever the mode, as the supervisor's pre-start check expects.
    assert_eq!(fake(dir.path(), &["--mode", "crash", "--validate"]).status.code(), Some(0));
    let out = fake(dir.path(), &["--mode", "critical", "--component", "security", "--once"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = qmoi_testkit::read_json(&dir.path().join("logs/security_latest.json")).unwrap_or_default();
    assert_eq!(r["component"], "security");
    assert_eq!(r["status"], "critical");
    assert_eq!(fake(dir.path(), &["--mode", "warn", "--check"]).status.code(), Some(1));
    Ok(())
}
