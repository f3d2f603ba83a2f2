//! ICMP echo ("ping") probes, IPv4 and IPv6.
//!
//! Unprivileged where the system allows it: Linux "ping sockets" (a datagram ICMP socket)
//! are open to the groups in `net.ipv4.ping_group_range` (systemd sets it to every group;
//! the kernel's own default, `1 0`, to none). Where that is refused, a raw ICMP socket is
//! used, which only a process with CAP_NET_RAW may open (root, or a unit granted it). With
//! neither, the probe fails and says which setting to change; nothing is escalated.

use super::ProbeResult;
use crate::config::Endpoint;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Bytes after the 8-byte ICMP header: a random token, so that our reply is told apart
/// from every other ICMP message a raw socket also receives.
const TOKEN_LEN: usize = 16;

pub async fn probe(e: &Endpoint, timeout: Duration) -> ProbeResult {
    let target = e.target.as_ref().map(|t| t.as_str().trim().to_string()).unwrap_or_default();
    let started = Instant::now();
    match tokio::time::timeout(timeout, ping(&target)).await {
        Ok(Ok(rtt)) => ProbeResult { ok: true, latency: rtt, ..ProbeResult::default() },
        Ok(Err(why)) => ProbeResult::failed(started.elapsed(), why),
        Err(_) => ProbeResult::failed(
            started.elapsed(),
            format!("{target}: no echo reply within {}", qmoi_core::config::ConfigDuration(timeout)),
        ),
    }
}

/// Resolve `target`, send one echo request, wait for its reply; the round-trip time.
async fn ping(target: &str) -> Result<Duration, String> {
    let ip = match target.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => tokio::net::lookup_host((target, 0))
            .await
            .map_err(|err| format!("cannot resolve {target}: {err}"))?
            .next()
            .map(|a| a.ip())
            .ok_or_else(|| format!("cannot resolve {target}: no address"))?,
    };
    let (sock, raw) = open(ip)?;
    let sock = tokio::net::UdpSocket::from_std(sock.into()).map_err(|err| format!("ICMP socket: {err}"))?;
    let seq = fastrand::u16(..);
    let mut token = [0u8; TOKEN_LEN];
    token.iter_mut().for_each(|b| *b = fastrand::u8(..));
    let request = echo_request(ip.is_ipv6(), fastrand::u16(..), seq, &token);
    let sent = Instant::now();
    sock.send_to(&request, SocketAddr::new(ip, 0)).await.map_err(|err| format!("cannot send to {ip}: {err}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await.map_err(|err| format!("reading from {ip}: {err}"))?;
        // A raw IPv4 socket hands over the IP header too; IPv6 and ping sockets do not.
        let icmp = if raw && ip.is_ipv4() { strip_ipv4_header(&buf[..n]) } else { Some(&buf[..n]) };
        if from.ip() == ip && icmp.is_some_and(|m| is_our_reply(m, ip.is_ipv6(), seq, &token)) {
            return Ok(sent.elapsed());
        }
    }
}

/// A ping socket when the system allows one, else a raw socket: (socket, raw).
fn open(ip: IpAddr) -> Result<(Socket, bool), String> {
    let (domain, proto) =
        if ip.is_ipv4() { (Domain::IPV4, Protocol::ICMPV4) } else { (Domain::IPV6, Protocol::ICMPV6) };
    let made = match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => Ok((s, false)),
        Err(dgram) => match Socket::new(domain, Type::RAW, Some(proto)) {
            Ok(s) => Ok((s, true)),
            Err(_) => Err(format!(
                "ICMP is not permitted to this process ({dgram}): add its group to sysctl \
                 net.ipv4.ping_group_range (e.g. '0 2147483647', as systemd sets it), or grant \
                 CAP_NET_RAW"
            )),
        },
    }?;
    made.0.set_nonblocking(true).map_err(|err| format!("ICMP socket: {err}"))?;
    Ok(made)
}

/// An echo request: type, code 0, checksum, identifier, sequence, token. The checksum is
/// filled for IPv4 (the kernel computes ICMPv6's, which covers a pseudo-header).
pub fn echo_request(v6: bool, id: u16, seq: u16, token: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + token.len());
    m.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    m.push(0);
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(token);
    if !v6 {
        let sum = checksum(&m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    m
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP message inside an IPv4 packet (None when it is too short to be one).
pub fn strip_ipv4_header(packet: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(packet.first()? & 0x0F) * 4;
    (ihl >= 20).then(|| packet.get(ihl..)).flatten()
}

/// An echo reply to our request: reply type, our sequence number and token. The
/// identifier is not compared: a ping socket replaces it with its own.
pub fn is_our_reply(icmp: &[u8], v6: bool, seq: u16, token: &[u8]) -> bool {
    let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    icmp.len() >= 8 + token.len()
        && icmp[0] == reply
        && icmp[1] == 0
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..8 + token.len()] == token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies_and_replies_are_matched_by_sequence_and_token() {
        let token = [7u8; TOKEN_LEN];
        let req = echo_request(false, 0x1234, 42, &token);
        assert_eq!((req[0], req.len()), (ECHO_REQUEST_V4, 8 + TOKEN_LEN));
        assert_eq!(checksum(&req), 0, "a message with its checksum sums to zero");
        // The reply as a raw IPv4 socket reads it: a 20-byte IP header first, then the
        // echoed message with type 0 and any identifier (a ping socket rewrites it).
        let mut reply = req.clone();
        reply[0] = ECHO_REPLY_V4;
        reply[4..6].copy_from_slice(&9u16.to_be_bytes());
        let mut packet = vec![0x45u8];
        packet.extend_from_slice(&[0; 19]);
        packet.extend_from_slice(&reply);
        let icmp = strip_ipv4_header(&packet).unwrap_or_default();
        assert!(is_our_reply(icmp, false, 42, &token));
        assert!(!is_our_reply(icmp, false, 43, &token), "another sequence number");
        assert!(!is_our_reply(icmp, false, 42, &[8u8; TOKEN_LEN]), "another token");
        assert!(!is_our_reply(&req, false, 42, &token), "our own request seen on loopback");
        assert!(!is_our_reply(&reply[..10], false, 42, &token), "truncated");
        assert_eq!(strip_ipv4_header(&[0x41, 0, 0]), None, "header length below 20");
        let v6 = echo_request(true, 1, 42, &token);
        assert_eq!((v6[0], v6[2], v6[3]), (ECHO_REQUEST_V6, 0, 0), "ICMPv6 checksum left to the kernel");
        // RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2, complemented 220d.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
    }
}
