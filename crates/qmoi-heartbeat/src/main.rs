//! `qmoi-heartbeat`: see the crate docs in `lib.rs`.

use clap::Parser;
use qmoi_core::cli::MonitorArgs;
use qmoi_core::component;
use qmoi_heartbeat::{Heartbeats, HeartbeatsConfig};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// QMOI heartbeats: dead-man's switches for cron jobs, backups and batch work. Jobs ping
/// /ping/<uuid>[/start|/fail|/log|/<exit status>] (Healthchecks' URLs) or
/// /api/push/<token>?status=up (Uptime Kuma's); a check is reported when its job is late,
/// failed, or ran too often, too short or too long.
///
/// Without --once/--check it listens for pings and runs every interval, writing
/// <report-dir>/heartbeats_latest.json until SIGTERM or Ctrl-C.
///
/// `qmoi-heartbeat --run NAME -- COMMAND ARGS…` runs COMMAND as check NAME instead, in
/// place of a curl line in a crontab: a start ping, the command (its output passes
/// through), then its exit status with the tail of its output; exits as the command did.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    args: MonitorArgs,
    /// Run COMMAND as the check NAME (see above)
    #[arg(long, value_name = "NAME", requires = "command")]
    run: Option<String>,
    /// With --run: the listener's base URL (default: http://<listen> of the config)
    #[arg(long, value_name = "URL", requires = "run")]
    url: Option<String>,
    /// With --run: the command and its arguments, after `--`
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    sla: qmoi_core::slo::month::ReportArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let info = component::HEARTBEATS;
    if let Some(name) = &cli.run {
        return run_wrapped(info, &cli.args, name, cli.url.as_deref(), &cli.command);
    }
    if cli.sla.sla_report {
        return sla_report(info, &cli);
    }
    // One glibc arena for both threads: what a report of 10,000 checks frees goes back.
    qmoi_core::mem::single_arena();
    // Two threads: the listener answers pings while a report of thousands of checks is built.
    qmoi_core::runner::main_with_threads::<HeartbeatsConfig, _>(info, cli.args, 2, |cfg| Heartbeats::new(cfg.clone()))
}

/// `--sla-report [--month YYYY-MM] [--format …]`: 0 printed, 2 a bad month or config, 3
/// the database cannot be read.
fn sla_report(info: &component::ComponentInfo, cli: &Cli) -> ExitCode {
    let (cfg, _) = match qmoi_core::runner::load_config::<HeartbeatsConfig>(info, &cli.args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let subjects = qmoi_core::slo::month::Subjects {
        component: info.id,
        subject: "check",
        unit: "seconds",
        targets: cfg.checks.iter().filter_map(|c| Some((c.name.as_str(), c.slo.as_deref()?))).collect(),
    };
    qmoi_core::slo::month::run(info.binary, &cfg.slo, &subjects, &cli.sla)
}

/// Bytes of the command's output sent with its end ping.
const TAIL: usize = 10_000;

fn run_wrapped(
    info: &component::ComponentInfo,
    args: &MonitorArgs,
    name: &str,
    url: Option<&str>,
    command: &[String],
) -> ExitCode {
    let Ok((cfg, _)) = qmoi_core::runner::load_config::<HeartbeatsConfig>(info, args) else {
        return ExitCode::from(2);
    };
    let Some(check) = cfg.checks.iter().find(|c| c.name == name) else {
        eprintln!("qmoi-heartbeat: no check '{name}' in the configuration");
        return ExitCode::from(2);
    };
    let path = match (&check.uuid, &cfg.ping_key) {
        (Some(u), _) => format!("/ping/{}", u.expose()),
        (None, Some(k)) => format!("/ping/{}/{name}", k.expose()),
        (None, None) => {
            eprintln!("qmoi-heartbeat: check '{name}' needs a uuid (or the config a ping_key) for --run");
            return ExitCode::from(2);
        }
    };
    let base = url.map_or_else(|| format!("http://{}", cfg.listen), |u| u.trim_end_matches('/').to_string());
    let rid = format!("{:016x}", fastrand::u64(..));
    let _ = ping(&base, &format!("{path}/start?rid={rid}"), b"");

    let Some((program, rest)) = command.split_first() else {
        eprintln!("qmoi-heartbeat: give the command after --");
        return ExitCode::from(2);
    };
    let child = std::process::Command::new(program)
        .args(rest)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot run {program}: {e}");
            eprintln!("qmoi-heartbeat: {msg}");
            let _ = ping(&base, &format!("{path}/127?rid={rid}"), msg.as_bytes());
            return ExitCode::from(127);
        }
    };
    // Both streams pass through as they come; the last TAIL bytes of them are kept.
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let pipe = |r: Option<Box<dyn Read + Send>>, mut w: Box<dyn Write + Send>| {
        let tail = tail.clone();
        std::thread::spawn(move || {
            let Some(mut r) = r else { return };
            let mut buf = [0u8; 8192];
            while let Ok(n) = r.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = w.write_all(&buf[..n]);
                let _ = w.flush();
                let mut t = tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                t.extend_from_slice(&buf[..n]);
                let excess = t.len().saturating_sub(TAIL);
                t.drain(..excess);
            }
        })
    };
    let out = pipe(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>), Box::new(std::io::stdout()));
    let err = pipe(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>), Box::new(std::io::stderr()));
    let status = child.wait();
    let _ = (out.join(), err.join());
    let code = match status {
        Ok(s) => s.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt as _;
            128 + s.signal().unwrap_or(0)
        }),
        Err(_) => 1,
    };
    let body = tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let word = u8::try_from(code).map_or_else(|_| "fail".to_string(), |c| c.to_string());
    let _ = ping(&base, &format!("{path}/{word}?rid={rid}"), &body);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// POST `body` to `base` + `path` (plain HTTP/1.1, 10 s at most). A failure is printed,
/// never fatal: the job itself must run whatever happens to its pings.
fn ping(base: &str, path: &str, body: &[u8]) -> Result<(), ()> {
    let result = (|| -> std::io::Result<String> {
        let authority = base
            .strip_prefix("http://")
            .ok_or_else(|| std::io::Error::other(format!("'{base}' is not an http:// URL")))?;
        let authority = authority.split('/').next().unwrap_or(authority);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("'{authority}' resolves to nothing")))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer.lines().next().unwrap_or_default().to_string())
    })();
    match result {
        Ok(line) if line.split_whitespace().nth(1) == Some("200") => Ok(()),
        Ok(line) => {
            eprintln!("qmoi-heartbeat: the ping was refused: {line}");
            Err(())
        }
        Err(e) => {
            eprintln!("qmoi-heartbeat: cannot ping {base}: {e}");
            Err(())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
