//! # qmoi-security
//!
//! The seed's "critical" security monitor, in three parts:
//!
//! - [`integrity`]: file integrity monitoring (AIDE/Tripwire's job): a sealed baseline of
//!   hashes and attributes, parallel BLAKE3 (or SHA-256) scans that rehash only what
//!   metadata says changed, a periodic full rehash, and inotify so that a change is in the
//!   report within about a second.
//! - [`network`]: listening sockets with their process against a learned baseline and an
//!   allow list, established connections per remote address and process, denied
//!   destinations, connection spikes.
//! - [`authlog`] and [`host`]: SSH brute force from the authentication log (fail2ban's
//!   patterns), account / group / sudoers changes, processes running from deleted or
//!   world-writable locations, kernel modules loaded since the baseline.
//!
//! Every finding is its own check with a stable name (`file:/etc/passwd`,
//! `listener:tcp:0.0.0.0:4444`, `auth:bruteforce:203.0.113.5`), so the notifier alerts
//! once per finding and resolves it when it is accepted (`--accept`) or clears.

pub mod authlog;
pub mod config;
pub mod host;
pub mod integrity;
pub mod netrules;
pub mod network;
pub mod seal;
pub mod tools;

pub use config::SecurityConfig;

use host::{HOST_FILE, HostBaseline};
use integrity::Integrity;
use netrules::{AllowRule, DenyRule};
use network::NetworkState;
use qmoi_core::runner::Collected;
use qmoi_core::runner::{Monitor, Outcome, RunContext};
use qmoi_core::{CheckResult, Status};
use seal::Key;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;

/// How the monitor is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Watch files with inotify (the daemon; not for `--once` / `--check`).
    pub realtime: bool,
    /// The first scan rehashes every file.
    pub full_first: bool,
    /// Folders this process writes (reports, logs): never watched.
    pub own_dirs: Vec<PathBuf>,
    /// `--validate`: check what building finds (key file, rules, auth log) but create no
    /// file, load no baseline and start no thread.
    pub validate_only: bool,
}

pub struct SecurityMonitor {
    cfg: SecurityConfig,
    key: Key,
    integrity: Option<Integrity>,
    auth: Option<authlog::AuthLog>,
    net_state: NetworkState,
    allow: Vec<AllowRule>,
    deny: Vec<DenyRule>,
    host_path: PathBuf,
    host: HostBaseline,
    host_tamper: Option<String>,
    wake: Option<Arc<Notify>>,
    /// Results of the parts that run on the schedule, repeated in reports that inotify
    /// asked for between runs.
    scheduled: Option<Collected>,
}

impl std::fmt::Debug for SecurityMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityMonitor").field("integrity", &self.integrity).finish()
    }
}

impl SecurityMonitor {
    pub fn new(cfg: &SecurityConfig, opts: Options) -> Result<Self, String> {
        let data_dir = PathBuf::from(cfg.data_dir.as_str());
        let configured = if cfg.hmac_key.is_empty() && !cfg.hmac_key_file.as_str().is_empty() {
            let path = cfg.hmac_key_file.as_str();
            let text = fs_err::read_to_string(path).map_err(|e| format!("hmac_key_file: {e}"))?;
            qmoi_core::config::Secret::new(text.trim())
        } else {
            cfg.hmac_key.clone()
        };
        let key = if opts.validate_only { Key::load_existing } else { Key::load }(configured.expose(), &data_dir)
            .map_err(|e| format!("baseline key: {e}"))?;
        let wake = opts.realtime.then(|| Arc::new(Notify::new()));
        let integrity = if opts.validate_only {
            integrity::check_rules(&cfg.integrity)?;
            None
        } else if cfg.integrity.enabled {
            let mut own = opts.own_dirs.clone();
            own.push(data_dir.clone());
            let mut i = Integrity::new(&cfg.integrity, &data_dir, key.clone(), own, wake.clone())?;
            if opts.full_first {
                i.force_full();
            }
            Some(i)
        } else {
            None
        };
        let auth = if cfg.auth_log.enabled { Some(authlog::AuthLog::new(&cfg.auth_log)?) } else { None };
        let allow = cfg.network.allow.iter().map(|a| AllowRule::parse(a)).collect::<Result<_, _>>()?;
        let deny = cfg.network.deny.iter().map(|d| DenyRule::parse(d)).collect::<Result<_, _>>()?;
        let host_path = data_dir.join(HOST_FILE);
        let (host, host_tamper) = match HostBaseline::load(&host_path, &key) {
            Ok(h) => (h, None),
            Err(e) => (HostBaseline::default(), Some(e)),
        };
        Ok(Self {
            cfg: cfg.clone(),
            key,
            integrity,
            auth,
            net_state: NetworkState::default(),
            allow,
            deny,
            host_path,
            host,
            host_tamper,
            wake,
            scheduled: None,
        })
    }

    pub fn integrity_mut(&mut self) -> Option<&mut Integrity> {
        self.integrity.as_mut()
    }

    /// Network, accounts, processes, modules and the auth log: the parts that run on the
    /// schedule.
    fn scheduled_checks(&mut self) -> Collected {
        let mut out = Collected::default();
        // Another process (`--accept`) may have replaced the host baseline.
        match HostBaseline::load(&self.host_path, &self.key) {
            Ok(h) => {
                if self.host_tamper.is_none() {
                    self.host = h;
                }
            }
            Err(e) => self.host_tamper = Some(e),
        }
        if let Some(t) = &self.host_tamper {
            out.check(
                CheckResult::new("host:baseline", Status::Critical, format!("host baseline cannot be trusted: {t}"))
                    .with_title("Security host baseline was tampered with"),
            );
        }
        let mut learned = false;
        if self.cfg.network.enabled {
            let empty = Default::default();
            let known = match (&self.host.listeners, self.cfg.network.learn) {
                (Some(k), _) => Some(k),
                (None, true) => None,
                (None, false) => Some(&empty),
            };
            let seen = out.timed("network", |out| {
                network::check(&self.cfg.network, &mut self.net_state, known, &self.allow, &self.deny, out)
            });
            if self.host.listeners.is_none() && self.cfg.network.learn && !seen.listeners.is_empty() {
                self.host.listeners = Some(seen.listeners.iter().map(|(s, _)| s.listener_key()).collect());
                learned = true;
            }
        }
        if self.cfg.accounts.enabled {
            let k = self.key.derive32("qmoi-security accounts");
            out.timed("accounts", |out| {
                host::check_accounts(&self.cfg.accounts, &k, &mut self.host, &mut learned, out)
            });
        }
        if self.cfg.processes.enabled {
            out.timed("processes", |out| host::check_processes(&self.cfg.processes, out));
        }
        if self.cfg.kernel_modules.enabled {
            out.timed("kernel_modules", |out| {
                host::check_modules(&self.cfg.kernel_modules, &mut self.host, &mut learned, out);
            });
        }
        if let Some(a) = self.auth.as_mut() {
            out.timed("auth_log", |out| a.check(out));
        }
        if learned
            && self.host_tamper.is_none()
            && let Err(e) = self.host.save(&self.host_path, &self.key)
        {
            out.check(
                CheckResult::new("host:baseline", Status::Warning, format!("cannot save the host baseline: {e}"))
                    .with_title("Security host baseline cannot be saved"),
            );
        }
        out
    }

    /// `--accept` without paths: the listeners, accounts and modules seen now become the
    /// host baseline.
    pub fn accept_host(&mut self) -> Result<String, String> {
        let fresh = self.current_host();
        fresh.save(&self.host_path, &self.key)?;
        self.host = fresh;
        self.host_tamper = None;
        Ok(format!(
            "{} listeners, {} accounts, {} modules",
            self.host.listeners.as_ref().map_or(0, |l| l.len()),
            self.host.accounts.as_ref().map_or(0, |a| a.len()),
            self.host.modules.as_ref().map_or(0, |m| m.len())
        ))
    }

    /// `--accept listener:… account:… group:… sudoers:… module:…`: accept these findings
    /// only (as the checks name them), leaving the rest of the host baseline as it is.
    pub fn accept_findings(&mut self, names: &[String]) -> Result<String, String> {
        if let Some(t) = &self.host_tamper {
            return Err(format!("{t}\nRecreate it with --init-baseline after checking the host."));
        }
        let now = self.current_host();
        let mut base = self.host.clone();
        let mut done = Vec::new();
        for name in names {
            let (kind, what) = name.split_once(':').unwrap_or((name.as_str(), ""));
            let map_pick = |slot: &mut Option<std::collections::BTreeMap<String, String>>,
                            current: &Option<std::collections::BTreeMap<String, String>>| {
                let slot = slot.get_or_insert_with(Default::default);
                match current.as_ref().and_then(|c| c.get(what)) {
                    Some(v) => slot.insert(what.to_string(), v.clone()),
                    None => slot.remove(what),
                };
            };
            match kind {
                "listener" => {
                    if !now.listeners.as_ref().is_some_and(|l| l.contains(what)) {
                        return Err(format!("no listener {what} is open now (see `qmoi-security --check`)"));
                    }
                    base.listeners.get_or_insert_with(Default::default).insert(what.to_string());
                }
                "account" => map_pick(&mut base.accounts, &now.accounts),
                "group" => map_pick(&mut base.groups, &now.groups),
                "sudoers" => map_pick(&mut base.sudoers, &now.sudoers),
                "module" => {
                    if !now.modules.as_ref().is_some_and(|m| m.contains(what)) {
                        return Err(format!("no kernel module {what} is loaded now"));
                    }
                    base.modules.get_or_insert_with(Default::default).insert(what.to_string());
                }
                _ => {
                    return Err(format!(
                        "'{name}' is not a finding to accept (listener:…, account:…, group:…, sudoers:…, module:…, or a path)"
                    ));
                }
            }
            done.push(name.as_str());
        }
        base.save(&self.host_path, &self.key)?;
        self.host = base;
        Ok(done.join(", "))
    }

    /// The listeners, accounts and modules as they are now.
    fn current_host(&self) -> HostBaseline {
        let mut fresh = HostBaseline::default();
        let mut learned = false;
        let mut scratch = Collected::default();
        if self.cfg.network.enabled {
            let seen = network::check(&self.cfg.network, &mut NetworkState::default(), None, &[], &[], &mut scratch);
            fresh.listeners = Some(seen.listeners.iter().map(|(s, _)| s.listener_key()).collect());
        }
        if self.cfg.accounts.enabled {
            let k = self.key.derive32("qmoi-security accounts");
            host::check_accounts(&self.cfg.accounts, &k, &mut fresh, &mut learned, &mut scratch);
        }
        if self.cfg.kernel_modules.enabled {
            host::check_modules(&self.cfg.kernel_modules, &mut fresh, &mut learned, &mut scratch);
        }
        fresh
    }

    /// Is this `--accept` argument a host finding (rather than a path)?
    pub fn is_host_finding(arg: &str) -> bool {
        ["listener:", "account:", "group:", "sudoers:", "module:"].iter().any(|p| arg.starts_with(p))
    }

    pub fn data_dir(&self) -> &Path {
        Path::new(self.cfg.data_dir.as_str())
    }
}

impl Monitor for SecurityMonitor {
    async fn run(&mut self, ctx: &RunContext) -> Outcome {
        let mut out = Collected::default();
        if let Some(i) = self.integrity.as_mut() {
            let since = std::time::Instant::now();
            i.run(&mut out).await;
            out.took("integrity", since.elapsed());
        }
        if !ctx.woken || self.scheduled.is_none() {
            self.scheduled = Some(self.scheduled_checks());
        }
        if let Some(s) = &self.scheduled {
            out.extend(s.clone());
        }
        out.into_outcome()
    }

    fn waker(&self) -> Option<Arc<Notify>> {
        self.wake.clone()
    }
}
