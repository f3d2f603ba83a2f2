//! The one-shot verbs of `qmoi-supervisor` that print and exit: control requests to the
//! running supervisor, `validate`, `hash-password`.

use crate::config::Plan;
use crate::{Error, control};

/// Send a control request to the running supervisor and print its answer: 0 done, 1
/// refused or no supervisor running.
pub fn answer(plan: &Plan, req: &control::Request) -> Result<u8, Error> {
    match crate::send(plan, req)? {
        None => {
            eprintln!(
                "qmoi-supervisor: no supervisor is running (nothing answers on {}/{})",
                plan.config.paths.run.display(),
                control::SOCKET_NAME
            );
            Ok(1)
        }
        Some(r) if r.ok => {
            println!("{}", r.message.unwrap_or_else(|| "done".into()));
            Ok(0)
        }
        Some(r) => {
            eprintln!("qmoi-supervisor: {}", r.error.unwrap_or_else(|| "request refused".into()));
            Ok(1)
        }
    }
}

/// `hash-password`: one line from stdin (so the password is not in the shell history).
pub fn hash_password() -> Result<u8, Error> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(|e| Error::Runtime(format!("cannot read the password: {e}")))?;
    let pw = line.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        return Err(Error::Config("no password on stdin".into()));
    }
    let hash = qmoi_dashboard::auth::hash_password(pw).map_err(Error::Runtime)?;
    println!("{hash}");
    Ok(0)
}

/// `validate`: the master config, every component's own `--validate`, every binary.
pub fn validate(plan: &Plan) -> Result<u8, Error> {
    let source = plan.source.as_ref().map_or_else(|| "built-in defaults".into(), |p| p.display().to_string());
    println!("master config: OK ({source})");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let mut problems = rt.block_on(crate::validate_children(plan));
    for s in &plan.components {
        let state = if s.enabled { "" } else { " (disabled)" };
        match &s.binary {
            Ok(b) => println!(
                "  {}{state}: {} {}",
                s.id,
                b.display(),
                s.config.as_ref().map_or_else(String::new, |c| format!("--config {}", c.display()))
            ),
            Err(e) if s.enabled => problems.push(format!("{}: {e}", s.id)),
            Err(_) => println!("  {}{state}: binary not found", s.id),
        }
    }
    if problems.is_empty() {
        println!("all component configs OK");
        Ok(0)
    } else {
        for p in &problems {
            eprintln!("error: {p}");
        }
        Ok(2)
    }
}
