//! The notifier's read-only tool modes, `--status` and `--history`: the database as a
//! table, JSON or CSV.

use crate::store::Store;
use clap::ValueEnum;
use qmoi_core::human::escape_control as esc;
use std::path::Path;
use std::process::ExitCode;

/// How `--status` and `--history` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("qmoi-notify: {msg}");
    ExitCode::from(3)
}

/// `--status`: the outbox, the dead letters and the channels' counters.
pub fn status(db: &Path, format: Format, limit: u64) -> ExitCode {
    let store = match Store::open_existing(db) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let (pending, dead, recent) = match (store.pending(1000), store.dead_letters(1000), store.history(limit)) {
        (Ok(p), Ok(d), Ok(h)) => (p, d, h),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return fail(&e.to_string()),
    };
    if format == Format::Json {
        let v = serde_json::json!({"pending": pending, "dead_letters": dead, "recent": recent});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return ExitCode::SUCCESS;
    }
    println!("Notification database: {}\n", db.display());
    println!("Pending ({}):", pending.len());
    if pending.is_empty() {
        println!("  none");
    }
    for p in &pending {
        let err =
            if p.last_error.is_empty() { String::new() } else { format!(" — last error: {}", esc(&p.last_error)) };
        println!(
            "  #{:<5} {:<12} {:<40} attempts {}/{} next {}{err}",
            p.id,
            p.channel,
            qmoi_core::human::clip(&esc(&p.description), 40),
            p.attempts,
            p.max_attempts,
            p.next_attempt_at
        );
    }
    println!(
        "\nDead letters ({}):{}",
        dead.len(),
        if dead.is_empty() { "" } else { "   (qmoi-notify --retry-dead sends them again)" }
    );
    if dead.is_empty() {
        println!("  none");
    }
    for d in &dead {
        println!(
            "  #{:<5} {:<12} {:<40} failed {} after {} attempt(s): {}",
            d.id,
            d.channel,
            qmoi_core::human::clip(&esc(&d.description), 40),
            d.failed_at,
            d.attempts,
            esc(&d.last_error)
        );
    }
    println!("\nRecent history ({}):", recent.len());
    print_history_table(&recent);
    ExitCode::SUCCESS
}

fn print_history_table(rows: &[crate::store::HistoryRow]) {
    if rows.is_empty() {
        println!("  none");
    }
    for h in rows {
        println!(
            "  {}  {:<10} {:<12} {:<28} {:<40} {}",
            h.at,
            h.result,
            h.channel,
            qmoi_core::human::clip(&esc(&h.target), 28),
            qmoi_core::human::clip(&esc(&h.description), 40),
            esc(&h.detail)
        );
    }
}

/// `--history`: the last `limit` notifications.
pub fn history(db: &Path, format: Format, limit: u64) -> ExitCode {
    let store = match Store::open_existing(db) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let rows = match store.history(limit) {
        Ok(r) => r,
        Err(e) => return fail(&e.to_string()),
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default()),
        Format::Table => print_history_table(&rows),
        Format::Csv => {
            println!("id,at,msg_id,channel,target,result,description,fingerprints,attempt,latency_ms,detail");
            for h in &rows {
                let fields = [
                    h.id.to_string(),
                    h.at.clone(),
                    h.msg_id.clone(),
                    h.channel.clone(),
                    h.target.clone(),
                    h.result.clone(),
                    h.description.clone(),
                    h.fingerprints.clone(),
                    h.attempt.to_string(),
                    h.latency_ms.map(|l| l.to_string()).unwrap_or_default(),
                    h.detail.clone(),
                ];
                println!("{}", fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            }
        }
    }
    ExitCode::SUCCESS
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}
