//! `qmoi-notify`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use qmoi_core::runner::EXIT_CONFIG;
use qmoi_notify::config::{ChannelKind, NotifyConfig};
use qmoi_notify::store::Store;
use qmoi_notify::tools::{self, Format};
use qmoi_notify::{NotifyMonitor, make_sender, send_test};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// QMOI notifier: watches the monitors' reports and turns their alerts into email,
/// webhook (Slack, Discord, generic), SMS (Twilio), Alertmanager and internal
/// notifications — grouped, deduplicated, rate-limited, retried, and never silently lost
/// (every notification is in data/notification.db before it is sent).
///
/// Without a mode flag it runs until SIGTERM or Ctrl-C and writes
/// <report-dir>/notification_latest.json every interval.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,

    /// Send a test email through every email channel (or --channel) and print the result
    #[arg(long, group = "mode")]
    test_email: bool,

    /// Send a test message to every webhook URL (or --channel's) and print the result
    #[arg(long, group = "mode")]
    test_webhook: bool,

    /// Send a test SMS to every configured number (or --channel's) and print the result
    #[arg(long, group = "mode")]
    test_sms: bool,

    /// Post a test alert to every Alertmanager URL (or --channel's) and print the result
    #[arg(long, group = "mode")]
    test_alertmanager: bool,

    /// Limit a --test-* flag to this channel
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,

    /// Print pending notifications, dead letters and recent history, then exit
    #[arg(long, group = "mode")]
    status: bool,

    /// Export the delivery history (oldest first) to standard output, then exit
    #[arg(long, group = "mode")]
    history: bool,

    /// Format of --history (and of --status with json)
    #[arg(long, value_enum, default_value = "table")]
    format: Format,

    /// How many history rows --history and --status show
    #[arg(long, default_value_t = 1000)]
    limit: u64,

    /// Put every dead letter back into the outbox to be sent again, then exit
    #[arg(long, group = "mode")]
    retry_dead: bool,

    /// Delete every dead letter (after reading them with --status), then exit
    #[arg(long, group = "mode")]
    purge_dead: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let info = component::NOTIFICATION;
    let testing = cli.test_email || cli.test_webhook || cli.test_sms || cli.test_alertmanager;
    if testing || cli.status || cli.history || cli.retry_dead || cli.purge_dead {
        return tool(info, &cli, testing);
    }
    let report_dir = cli.args.common.report_dir.clone();
    qmoi_core::runner::main::<NotifyConfig, _>(info, cli.args, |cfg| NotifyMonitor::new(cfg, &report_dir))
}

/// The modes that act on the database or the channels and exit.
fn tool(info: &component::ComponentInfo, cli: &Cli, testing: bool) -> ExitCode {
    let (cfg, _) = match qmoi_core::runner::load_config::<NotifyConfig>(info, &cli.args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let db = PathBuf::from(cfg.database.path.as_str());
    if cli.status {
        return tools::status(&db, cli.format, cli.limit.min(50));
    }
    if cli.history {
        return tools::history(&db, cli.format, cli.limit);
    }
    if !testing {
        let mut store = match Store::open_existing(&db) {
            Ok(s) => s,
            Err(e) => return fail(&e.to_string()),
        };
        let r = if cli.retry_dead {
            store
                .retry_dead(chrono::Utc::now().timestamp_millis())
                .map(|n| format!("{n} dead letter(s) put back into the outbox; the running notifier sends them now"))
        } else {
            store.purge_dead().map(|n| format!("{n} dead letter(s) deleted"))
        };
        return match r {
            Ok(t) => {
                println!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let cfg = Arc::new(cfg);
    let kind = if cli.test_email {
        ChannelKind::Email
    } else if cli.test_webhook {
        ChannelKind::Webhook
    } else if cli.test_sms {
        ChannelKind::Sms
    } else {
        ChannelKind::Alertmanager
    };
    let sender = match make_sender(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: configuration error: {e}", info.binary);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match rt.block_on(send_test(&cfg, &sender, kind, cli.channel.as_deref())) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{}: {e}", info.binary);
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("qmoi-notify: {msg}");
    ExitCode::from(3)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
