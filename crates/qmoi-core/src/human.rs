//! Human-readable formatting shared by the `--check` output, `status` and messages.

/// Lower-case hex of bytes (hashes, HMACs, keys), as `sha256sum` and `b3sum` print them.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `3d 4h`, `5h 2m`, `5m 2s`, `42s`; `-` for a negative or non-finite number.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    let s = secs.round() as u64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// `512 B`, `1.5 GiB`
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{v:.0} {}", UNITS[i]) } else { format!("{v:.1} {}", UNITS[i]) }
}

/// `text` followed by every cause in `source`'s chain that it does not already say, in one
/// line ("error sending request: client error (Connect): Connection refused").
pub fn with_causes(mut text: String, mut source: Option<&dyn std::error::Error>) -> String {
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

/// Cut `s` to at most `w` characters, ending with `…` when cut.
pub fn clip(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// `s` with every control character made visible (`\x1b`, `\n`, `\u{9b}`): observed data
/// (process names, paths, log lines, header values) goes through this before it reaches
/// a terminal or a log line. An unprivileged user can name a file or process
/// `evil<ESC>[2J…`; printed raw, that clears the operator's screen and can hide the very
/// finding that names it. Borrowed when there is nothing to escape.
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_made_visible() {
        assert!(matches!(escape_control("plain /tmp/x ü"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            escape_control("/dev/shm/evil\x1b[2J\x1b]0;pwned\x07\u{9b}31m\nx\ty"),
            "/dev/shm/evil\\x1b[2J\\x1b]0;pwned\\x07\\u{9b}31m\\nx\\ty"
        );
    }

    #[test]
    fn causes_are_appended_once() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let outer = std::io::Error::other(inner);
        // The outer error's text already says its cause: not repeated.
        assert_eq!(with_causes("connect".into(), Some(&outer)), "connect: Connection refused");
        assert_eq!(with_causes("x: Connection refused".into(), Some(&outer)), "x: Connection refused");
        assert_eq!(with_causes("plain".into(), None), "plain");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(42.0), "42s");
        assert_eq!(duration(302.0), "5m 2s");
        assert_eq!(duration(3720.0), "1h 2m");
        assert_eq!(duration((3 * 86_400 + 4 * 3600 + 5) as f64), "3d 4h");
        assert_eq!(duration(f64::NAN), "-");
    }

    #[test]
    fn sizes_and_clipping() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0 * 1024.0 * 1024.0), "1.5 GiB");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
