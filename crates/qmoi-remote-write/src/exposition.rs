//! Reading back the text exposition format (0.0.4) the dashboard serves on `/metrics`,
//! so that what is pushed is exactly what a scrape would see.

/// One sample line: its metric name and labels (in the order written), and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Every sample line of `text`; comment lines and lines that are not well formed are
/// skipped (the second value says how many of the latter there were).
pub fn parse(text: &str) -> (Vec<Line>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for l in text.lines() {
        let l = l.trim_end_matches('\r');
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        match parse_line(l) {
            Some(x) => out.push(x),
            None => bad += 1,
        }
    }
    (out, bad)
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn parse_line(l: &str) -> Option<Line> {
    let name_end = l.find(['{', ' ']).unwrap_or(l.len());
    let name = &l[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &l[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"")?;
            let key = &rest[..eq];
            if key.is_empty() || key.contains([',', '}', ' ']) {
                return None;
            }
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break eq + 2 + i + 1,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            rest = &rest[end..];
        }
    }
    // The value, and an optional timestamp (not used: the sample time is the push's).
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next()?)?;
    Some(Line { name: name.to_string(), labels, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_labels_escapes_and_special_values() {
        let text = "# HELP x y\n# TYPE x gauge\nqmoi_load1 0.25\n\
                    qmoi_w{component=\"c\",a=\"ok\\\"q\\n\\\\\"} 4\nqmoi_v{a=\"x\"} NaN\nqmoi_i +Inf 1700\n\
                    broken{a=\"x} 1\n{a=\"b\"} 1\nnovalue\n";
        let (lines, bad) = parse(text);
        assert_eq!(bad, 3, "{lines:?}");
        assert_eq!(lines[0], Line { name: "qmoi_load1".into(), labels: vec![], value: 0.25 });
        assert_eq!(lines[1].labels, vec![("component".into(), "c".into()), ("a".into(), "ok\"q\n\\".into())]);
        assert!(lines[2].value.is_nan());
        assert_eq!(lines[3].value, f64::INFINITY);
    }
}
