//! The address rules of the security config: networks (`auth_log.ignore`), listener allow
//! rules and connection deny rules. Pure parsing and matching: the config's validation and
//! the network and auth-log checks use them.

use std::net::IpAddr;

/// An address or network: `10.0.0.0/8`, `192.0.2.7`, `::1`, `fe80::/10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or network"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("'{s}': prefix length must be 0-{max}"))?,
            None => max,
        };
        Ok(Self { net, bits })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.bits == 0 { 0 } else { u32::MAX << (32 - u32::from(self.bits)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.bits == 0 { 0 } else { u128::MAX << (128 - u32::from(self.bits)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `::ffff:1.2.3.4` is `1.2.3.4`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `22`, `tcp:22`, `udp:*:53`, `tcp:127.0.0.1:631`, `tcp6:[::1]:25`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    proto: Option<String>,
    addr: Option<IpAddr>,
    port: u16,
}

impl AllowRule {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad =
            || format!("'{s}' is not a listener rule (examples: '22', 'tcp:22', 'udp:*:53', 'tcp:127.0.0.1:631')");
        let (proto, rest) = match s.split_once(':') {
            Some((p, r)) if ["tcp", "tcp6", "udp", "udp6"].contains(&p) => (Some(p.to_string()), r),
            _ => (None, s),
        };
        let (addr, port) = match rest.rsplit_once(':') {
            Some((a, p)) => (Some(a), p),
            None => (None, rest),
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        let addr = match addr {
            None | Some("*") => None,
            Some(a) => Some(a.trim_matches(|c| c == '[' || c == ']').parse().map_err(|_| bad())?),
        };
        Ok(Self { proto, addr, port })
    }

    /// Does the rule allow a listener of `proto` on `ip`:`port`?
    pub fn allows(&self, proto: &str, ip: IpAddr, port: u16) -> bool {
        self.port == port
            && self.proto.as_deref().is_none_or(|p| p == proto)
            && self.addr.is_none_or(|a| canonical(a) == canonical(ip))
    }
}

/// `10.0.0.0/8`, `192.0.2.7`, `192.0.2.0/24:25`, `*:6667`, `[2001:db8::1]:443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    net: Option<Cidr>,
    port: Option<u16>,
    /// The rule as written, for messages.
    pub text: String,
}

impl DenyRule {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!("'{s}' is not a deny rule ({why}; examples: '10.0.0.0/8', '192.0.2.0/24:25', '*:6667')")
        };
        let (net, port) = if let Some(rest) = s.strip_prefix('[') {
            let (a, p) = rest.split_once(']').ok_or_else(|| bad("unclosed '['".into()))?;
            (a, p.strip_prefix(':'))
        } else if s.matches(':').count() == 1 {
            let (a, p) = s.split_once(':').unwrap_or((s, ""));
            (a, Some(p))
        } else {
            (s, None)
        };
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad(format!("port '{p}'")))?),
            None => None,
        };
        let net = if net == "*" { None } else { Some(Cidr::parse(net).map_err(bad)?) };
        if net.is_none() && port.is_none() {
            return Err(bad("'*' needs a port".into()));
        }
        Ok(Self { net, port, text: s.to_string() })
    }

    pub fn matches(&self, ip: IpAddr, port: u16) -> bool {
        self.net.is_none_or(|n| n.contains(ip)) && self.port.is_none_or(|p| p == port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_match() -> Result<(), String> {
        let c = Cidr::parse("10.0.0.0/8")?;
        assert!(c.contains("10.1.2.3".parse().map_err(|_| "ip")?));
        assert!(c.contains("::ffff:10.1.2.3".parse().map_err(|_| "ip")?));
        assert!(!c.contains("11.0.0.1".parse().map_err(|_| "ip")?));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        let d = DenyRule::parse("192.0.2.0/24:25")?;
        assert!(d.matches("192.0.2.9".parse().map_err(|_| "ip")?, 25));
        assert!(!d.matches("192.0.2.9".parse().map_err(|_| "ip")?, 26));
        let any = DenyRule::parse("*:6667")?;
        assert!(any.matches("203.0.113.1".parse().map_err(|_| "ip")?, 6667));
        assert!(DenyRule::parse("[2001:db8::1]:443").is_ok());
        assert!(DenyRule::parse("*").is_err());
        assert!(AllowRule::parse("tcp:127.0.0.1:631").is_ok());
        assert!(AllowRule::parse("udp:*:53").is_ok());
        assert!(AllowRule::parse("tcp:x").is_err());
        let a = AllowRule::parse("tcp:127.0.0.1:631")?;
        assert!(a.allows("tcp", "127.0.0.1".parse().map_err(|_| "ip")?, 631));
        assert!(a.allows("tcp", "::ffff:127.0.0.1".parse().map_err(|_| "ip")?, 631));
        assert!(!a.allows("udp", "127.0.0.1".parse().map_err(|_| "ip")?, 631));
        assert!(!a.allows("tcp", "127.0.0.2".parse().map_err(|_| "ip")?, 631));
        Ok(())
    }
}
