//! Network activity from `/proc/net/{tcp,tcp6,udp,udp6}`: listening sockets with their
//! process (from `/proc/<pid>/fd`), established connections per remote address and per
//! process, connections to denied addresses, connection-count spikes.
//!
//! Without root only this user's processes' sockets can be tied to a process; the others
//! are listed with `pid: null`.

use crate::config::NetworkConfig;
use crate::netrules::canonical;
pub use crate::netrules::{AllowRule, Cidr, DenyRule};
use qmoi_core::runner::Collected;
use qmoi_core::{CheckResult, Status};
use serde::Serialize;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// One line of `/proc/net/*`.
#[derive(Debug, Clone, Serialize)]
pub struct Socket {
    pub proto: &'static str,
    pub local_ip: IpAddr,
    pub local_port: u16,
    pub remote_ip: IpAddr,
    pub remote_port: u16,
    /// Kernel TCP state number (`0A` listen, `01` established).
    #[serde(skip)]
    pub state: u8,
    pub uid: u32,
    #[serde(skip)]
    pub inode: u64,
}

impl Socket {
    /// `tcp:127.0.0.1:8080`, `tcp6:[::]:22`: the listener's identity in the baseline.
    pub fn listener_key(&self) -> String {
        match self.local_ip {
            IpAddr::V4(a) => format!("{}:{a}:{}", self.proto, self.local_port),
            IpAddr::V6(a) => format!("{}:[{a}]:{}", self.proto, self.local_port),
        }
    }

    fn is_listener(&self) -> bool {
        match self.proto {
            "tcp" | "tcp6" => self.state == 0x0A,
            // UDP "listens" when bound and not connected (state 07, no remote).
            _ => self.state == 0x07 && self.remote_port == 0,
        }
    }
}

const TCP_ESTABLISHED: u8 = 0x01;

/// Parse one `/proc/net/{tcp,udp}{,6}` table.
pub fn parse_table(text: &str, proto: &'static str) -> Vec<Socket> {
    text.lines().skip(1).filter_map(|l| parse_line(l, proto)).collect()
}

fn parse_line(line: &str, proto: &'static str) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    let (local_ip, local_port) = parse_addr(f[1])?;
    let (remote_ip, remote_port) = parse_addr(f[2])?;
    Some(Socket {
        proto,
        local_ip,
        local_port,
        remote_ip,
        remote_port,
        state: u8::from_str_radix(f[3], 16).ok()?,
        uid: f[7].parse().ok()?,
        inode: f[9].parse().ok()?,
    })
}

/// `0100007F:1F90` (IPv4: one little-endian word) or 32 hex digits (IPv6: four
/// little-endian words), then the port in big-endian hex.
fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(u32::from_str_radix(ip, 16).ok()?.swap_bytes().into()),
        32 => {
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                // `get`: 32 bytes need not be 32 characters (found by fuzzing: a slice
                // inside a multi-byte character panicked).
                let word = u32::from_str_radix(ip.get(w * 8..w * 8 + 8)?, 16).ok()?.swap_bytes();
                bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_be_bytes());
            }
            IpAddr::V6(bytes.into())
        }
        _ => return None,
    };
    Some((ip, port))
}

#[derive(Debug, Clone, Serialize)]
pub struct Owner {
    pub pid: u32,
    pub process: String,
}

/// socket inode → process, from `/proc/<pid>/fd/*` (only processes we may look into).
pub fn socket_owners(proc_dir: &str) -> HashMap<u64, Owner> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(proc_dir) else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else { continue };
        let mut comm: Option<String> = None;
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            let process = comm
                .get_or_insert_with(|| {
                    std::fs::read_to_string(e.path().join("comm")).map(|s| s.trim().to_string()).unwrap_or_default()
                })
                .clone();
            out.entry(inode).or_insert(Owner { pid, process });
        }
    }
    out
}

/// State kept between runs: the running average of established connections.
#[derive(Debug, Default)]
pub struct NetworkState {
    avg: Option<f64>,
    samples: u32,
}

/// What the network check saw, for the caller to compare listeners with the baseline.
#[derive(Debug, Default)]
pub struct Seen {
    pub listeners: Vec<(Socket, Option<Owner>)>,
}

pub fn read_sockets(proc_dir: &str) -> Result<Vec<Socket>, String> {
    let mut all = Vec::new();
    let mut read_any = false;
    let mut last_err = String::new();
    for proto in ["tcp", "tcp6", "udp", "udp6"] {
        let path = format!("{proc_dir}/net/{proto}");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                read_any = true;
                all.extend(parse_table(&text, proto));
            }
            // A kernel without IPv6 has no tcp6: not an error.
            Err(e) => last_err = format!("{path}: {e}"),
        }
    }
    if read_any { Ok(all) } else { Err(last_err) }
}

/// Connections and listeners. `known`: the listener baseline (None: being learned now).
pub fn check(
    cfg: &NetworkConfig,
    state: &mut NetworkState,
    known: Option<&BTreeSet<String>>,
    allow: &[AllowRule],
    deny: &[DenyRule],
    out: &mut Collected,
) -> Seen {
    let sockets = match read_sockets("/proc") {
        Ok(s) => s,
        Err(e) => {
            out.check(qmoi_core::runner::unreadable("network:listeners", "the socket tables", e));
            return Seen::default();
        }
    };
    let owners = socket_owners("/proc");
    let owner_of = |s: &Socket| owners.get(&s.inode).cloned();
    let mut seen = Seen::default();
    let mut established = 0usize;
    let mut per_remote: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let mut per_process: BTreeMap<String, usize> = BTreeMap::new();
    let mut denied = Vec::new();
    for s in &sockets {
        if s.is_listener() {
            seen.listeners.push((s.clone(), owner_of(s)));
            continue;
        }
        if s.proto.starts_with("tcp") && s.state == TCP_ESTABLISHED {
            established += 1;
            let remote = canonical(s.remote_ip);
            *per_remote.entry(remote).or_default() += 1;
            if let Some(o) = owners.get(&s.inode) {
                *per_process.entry(format!("{} ({})", o.process, o.pid)).or_default() += 1;
            }
            if let Some(rule) = deny.iter().find(|d| d.matches(remote, s.remote_port)) {
                denied.push((s, rule, owner_of(s)));
            }
        }
    }
    seen.listeners.sort_by_key(|(s, _)| s.listener_key());
    seen.listeners.dedup_by_key(|(s, _)| s.listener_key());
    let (listener_rows, new_count) = listeners(cfg, &seen, known, allow, out);
    denied_destinations(&denied, out);
    for (ip, n) in &per_remote {
        if *n > cfg.max_per_remote {
            out.check(
                CheckResult::new(
                    format!("network:remote:{ip}"),
                    Status::Warning,
                    format!("{n} established connections with {ip} (more than {})", cfg.max_per_remote),
                )
                .with_title(format!("Many connections with {ip}")),
            );
        }
    }
    connections(cfg, state, established, out);
    out.metric("qmoi_security_listeners", &[], seen.listeners.len() as f64);
    out.metric("qmoi_security_new_listeners", &[], f64::from(new_count));
    out.metric("qmoi_security_established_connections", &[], established as f64);
    out.metric("qmoi_security_denied_connections", &[], denied.len() as f64);
    let top = |m: BTreeMap<String, usize>| {
        let mut v: Vec<(String, usize)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(cfg.top);
        v.into_iter().map(|(k, n)| json!({"name": k, "connections": n})).collect::<Vec<_>>()
    };
    out.detail(
        "network",
        json!({
            "listeners": listener_rows,
            "established": established,
            "running_average": state.avg,
            "top_remotes": top(per_remote.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            "top_processes": top(per_process),
            "denied": denied.iter().map(|(s, r, o)| json!({"remote": s.remote_ip, "port": s.remote_port, "rule": r.text, "pid": o.as_ref().map(|o| o.pid)})).collect::<Vec<_>>(),
        }),
    );
    seen
}

/// Listening sockets: one finding per listener not in the baseline or the allow list.
/// Returns the `details.network.listeners` rows and how many were new.
fn listeners(
    cfg: &NetworkConfig,
    seen: &Seen,
    known: Option<&BTreeSet<String>>,
    allow: &[AllowRule],
    out: &mut Collected,
) -> (Vec<serde_json::Value>, u32) {
    let mut listener_rows = Vec::new();
    let mut new_count = 0u32;
    for (s, owner) in &seen.listeners {
        let key = s.listener_key();
        // No baseline yet: this run learns it, nothing is new.
        let allowed =
            known.is_none_or(|k| k.contains(&key)) || allow.iter().any(|a| a.allows(s.proto, s.local_ip, s.local_port));
        if !allowed {
            new_count += 1;
            let who = owner.as_ref().map_or_else(
                || "process unknown (not ours to see)".to_string(),
                |o| format!("pid {} {}", o.pid, o.process),
            );
            out.check(
                CheckResult::new(
                    format!("listener:{key}"),
                    cfg.new_listener_level.status(),
                    format!("new listening socket {key} ({who}, uid {}) not in the baseline or allow list", s.uid),
                )
                .with_title(format!("New listening socket {key}")),
            );
        }
        listener_rows.push(json!({
            "key": key, "proto": s.proto, "address": s.local_ip, "port": s.local_port, "uid": s.uid,
            "pid": owner.as_ref().map(|o| o.pid), "process": owner.as_ref().map(|o| o.process.clone()),
            "known": allowed,
        }));
    }
    out.check(CheckResult::ok(
        "network:listeners",
        format!("{} listening sockets, {} not in the baseline", seen.listeners.len(), new_count),
    ));
    (listener_rows, new_count)
}

/// One finding per denied destination, however many connections (and processes) go
/// there: its name, and so its alert, survives reconnections.
fn denied_destinations(denied: &[(&Socket, &DenyRule, Option<Owner>)], out: &mut Collected) {
    // (connection, deny rule, "pid N process") per destination.
    type Denied<'a> = Vec<(&'a Socket, &'a str, Option<String>)>;
    let mut per_denied: BTreeMap<(IpAddr, u16), Denied> = BTreeMap::new();
    for (s, rule, owner) in denied {
        let who = owner.as_ref().map(|o| format!("pid {} {}", o.pid, o.process));
        per_denied.entry((canonical(s.remote_ip), s.remote_port)).or_default().push((s, rule.text.as_str(), who));
    }
    for ((ip, port), conns) in &per_denied {
        let (first, rule, _) = &conns[0];
        let mut who: Vec<&str> = conns.iter().filter_map(|(_, _, w)| w.as_deref()).collect();
        who.sort_unstable();
        who.dedup();
        let by = if who.is_empty() { String::new() } else { format!(" by {}", who.join(", ")) };
        let what = if conns.len() == 1 {
            format!("connection {}:{} → {ip}:{port}", first.local_ip, first.local_port)
        } else {
            format!("{} connections → {ip}:{port}", conns.len())
        };
        out.check(
            CheckResult::new(
                format!("network:denied:{ip}:{port}"),
                Status::Critical,
                format!("{what}{by} {} deny rule '{rule}'", if conns.len() == 1 { "matches" } else { "match" }),
            )
            .with_title(format!("Connection to denied address {ip}:{port}")),
        );
    }
}

/// The established connections against the running average of earlier runs (EWMA,
/// α = 0.2): a spike is a warning.
fn connections(cfg: &NetworkConfig, state: &mut NetworkState, established: usize, out: &mut Collected) {
    let avg = state.avg;
    let spike = avg
        .filter(|_| state.samples >= 5)
        .is_some_and(|a| established >= cfg.spike_min && established as f64 > cfg.spike_factor * a.max(1.0));
    let conn_check = if spike {
        CheckResult::new(
            "network:connections",
            Status::Warning,
            format!(
                "{established} established connections, {:.1}× the running average of {:.0}",
                established as f64 / avg.unwrap_or(1.0).max(1.0),
                avg.unwrap_or(0.0)
            ),
        )
        .with_title("Connection count spike")
    } else {
        CheckResult::ok("network:connections", format!("{established} established connections"))
    };
    out.check(conn_check.with_value(established as f64, "connections"));
    state.avg = Some(avg.map_or(established as f64, |a| 0.8 * a + 0.2 * established as f64));
    state.samples = state.samples.saturating_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_of_32_bytes_that_are_not_32_hex_digits_is_no_address() {
        let ip = format!("010{}{}", "\u{00ba}".repeat(7), "0".repeat(15));
        assert_eq!(ip.len(), 32);
        assert!(super::parse_addr(&format!("{ip}:1F90")).is_none());
        assert!(super::parse_addr("0000000000000000FFFF00000100007F:1F90").is_some());
    }

    #[test]
    fn parses_proc_net_lines() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0\n";
        let s = parse_table(tcp, "tcp");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].local_ip, "127.0.0.1".parse::<IpAddr>().unwrap_or(IpAddr::V4(0.into())));
        assert_eq!((s[0].local_port, s[0].state, s[0].uid, s[0].inode), (8080, 0x0A, 1000, 12345));
        assert_eq!(s[0].listener_key(), "tcp:127.0.0.1:8080");
        let tcp6 = "header\n   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        let s = parse_table(tcp6, "tcp6");
        assert_eq!(s[0].listener_key(), "tcp6:[::1]:22");
    }
}
