//! DNS probes. Without `server`: the system resolver (getaddrinfo), A/AAAA answers. With
//! `server = "ip:port"`: one query over UDP to that server for `record_type` (A, AAAA,
//! CNAME, NS, MX, TXT), read with this module's small parser; the answer must contain
//! `expect` when given. NXDOMAIN, SERVFAIL and friends are failures named by their code.

use super::ProbeResult;
use crate::config::Endpoint;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

pub async fn probe(e: &Endpoint, timeout: Duration) -> ProbeResult {
    let name = e.target.as_ref().map(|t| t.as_str().to_string()).unwrap_or_default();
    let started = Instant::now();
    let answers = match &e.server {
        Some(server) => {
            match tokio::time::timeout(timeout, query(server.as_str(), &name, e.record_type.as_deref().unwrap_or("A")))
                .await
            {
                Err(_) => {
                    Err(format!("{server}: no answer for {name} within {}", qmoi_core::config::ConfigDuration(timeout)))
                }
                Ok(r) => r,
            }
        }
        None => match tokio::time::timeout(timeout, tokio::net::lookup_host((name.as_str(), 0))).await {
            Err(_) => Err(format!("{name}: no answer within {}", qmoi_core::config::ConfigDuration(timeout))),
            Ok(Err(err)) => Err(format!("cannot resolve {name}: {err}")),
            Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip().to_string()).collect()),
        },
    };
    let latency = started.elapsed();
    match answers {
        Err(why) => ProbeResult::failed(latency, why),
        Ok(list) if list.is_empty() => ProbeResult::failed(latency, format!("{name}: no answer of that type")),
        Ok(list) => match &e.expect {
            Some(want) if !list.iter().any(|a| a == want) => {
                ProbeResult::failed(latency, format!("{name} resolved to {}, not {want}", list.join(", ")))
            }
            _ => ProbeResult { ok: true, latency, ..ProbeResult::default() },
        },
    }
}

/// Encode a query for `name`/`qtype` with id `id`.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; 1 question
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("'{name}' is not a valid DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]); // IN
    Ok(q)
}

fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len == 0 {
            return Some((labels.join("."), end.unwrap_or(pos + 1)));
        }
        if len & 0xC0 == 0xC0 {
            let ptr = ((len & 0x3F) << 8) | *msg.get(pos + 1)? as usize;
            end.get_or_insert(pos + 2);
            pos = ptr;
            continue;
        }
        labels.push(String::from_utf8_lossy(msg.get(pos + 1..pos + 1 + len)?).into_owned());
        pos += 1 + len;
    }
    None // a pointer loop
}

/// Decode the answers of `qtype` in a response with id `id`.
pub fn decode_answers(msg: &[u8], id: u16, qtype: u16) -> Result<Vec<String>, String> {
    let bad = || "malformed DNS response".to_string();
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id {
        return Err(bad());
    }
    let rcode = msg[3] & 0x0F;
    if rcode != 0 {
        let name = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"]
            .get(rcode as usize)
            .copied()
            .unwrap_or("error");
        return Err(format!("the server answered {name} (rcode {rcode})"));
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = 12;
    for _ in 0..qd {
        pos = read_name(msg, pos).ok_or_else(bad)?.1 + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        let (_, p) = read_name(msg, pos).ok_or_else(bad)?;
        let h = msg.get(p..p + 10).ok_or_else(bad)?;
        let (rtype, rdlen) = (u16::from_be_bytes([h[0], h[1]]), u16::from_be_bytes([h[8], h[9]]) as usize);
        let rd_start = p + 10;
        let rd = msg.get(rd_start..rd_start + rdlen).ok_or_else(bad)?;
        pos = rd_start + rdlen;
        if rtype != qtype {
            continue;
        }
        out.push(match rtype {
            1 if rd.len() == 4 => Ipv4Addr::new(rd[0], rd[1], rd[2], rd[3]).to_string(),
            28 if rd.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rd);
                Ipv6Addr::from(a).to_string()
            }
            2 | 5 => read_name(msg, rd_start).ok_or_else(bad)?.0,
            15 if rd.len() > 2 => read_name(msg, rd_start + 2).ok_or_else(bad)?.0,
            16 => {
                let mut s = String::new();
                let mut i = 0;
                while i < rd.len() {
                    let l = rd[i] as usize;
                    s.push_str(&String::from_utf8_lossy(rd.get(i + 1..i + 1 + l).ok_or_else(bad)?));
                    i += 1 + l;
                }
                s
            }
            _ => return Err(bad()),
        });
    }
    Ok(out)
}

/// One query over UDP.
pub async fn query(server: &str, name: &str, record_type: &str) -> Result<Vec<String>, String> {
    let qtype = crate::config::dns_type_code(record_type)
        .ok_or_else(|| format!("record type '{record_type}' is not one of A, AAAA, CNAME, NS, MX, TXT"))?;
    let id = fastrand::u16(..);
    let q = encode_query(id, name, qtype)?;
    let bind = if server.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" };
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    sock.connect(server).await.map_err(|e| format!("{server}: {e}"))?;
    sock.send(&q).await.map_err(|e| format!("cannot send to {server}: {e}"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await.map_err(|e| format!("no answer from {server}: {e}"))?;
        // Ignore stray datagrams with another id; the timeout bounds the wait.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return decode_answers(&buf[..n], id, qtype);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_compression_pointers() {
        let q = encode_query(7, "svc.test", 1).unwrap_or_default();
        // Response: the question, then an A answer whose name points at offset 12.
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]);
        assert_eq!(decode_answers(&r, 7, 1), Ok(vec!["10.1.2.3".to_string()]));
        let mut nx = q;
        nx[3] = 0x83;
        assert!(decode_answers(&nx, 7, 1).err().unwrap_or_default().contains("NXDOMAIN"));
        assert!(encode_query(1, "a..b", 1).is_err());
    }
}
