//! Address checks shared by every config that refuses to send secrets off the machine
//! unencrypted.

use std::net::IpAddr;

/// Is `host` (`localhost`, an IPv4 or IPv6 address, bracketed or not) on loopback?
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host as lo;

    #[test]
    fn loopback_in_every_spelling_and_nothing_else() {
        for h in ["localhost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "::1", "[::1]"] {
            assert!(lo(h), "{h}");
        }
        for h in ["10.0.0.1", "[10.0.0.1]", "::", "0.0.0.0", "localhost.example.com", "[::1", "", "example.com"] {
            assert!(!lo(h), "{h}");
        }
    }
}
