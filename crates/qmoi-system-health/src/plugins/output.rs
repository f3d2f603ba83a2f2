//! What a Nagios / Monitoring Plugins check prints, read as the plugin guidelines define
//! it (monitoring-plugins.org, "Plugin Output" and "Performance data"):
//!
//! ```text
//! TEXT OUTPUT | OPTIONAL PERFDATA
//! LONG TEXT LINE 1
//! LONG TEXT LINE 2 | PERFDATA 2
//! PERFDATA 3
//! ```
//!
//! Performance data is space-separated `'label'=value[UOM];[warn];[crit];[min];[max]`:
//! a label with spaces or `=` is in single quotes (a quote inside doubled: `''`), the value
//! is a number or `U` (could not be determined), trailing fields may be left out or empty,
//! `warn` and `crit` are ranges (`10`, `10:`, `~:10`, `10:20`, `@10:20`). Nothing here
//! panics or allocates without bound on what a plugin prints: the text is capped before
//! it comes here, and a malformed item is skipped with a note naming it.

/// A plugin's output, split.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    /// The first line's text (before any `|`).
    pub message: String,
    /// The lines after the first, up to where their performance data starts.
    pub long_text: Vec<String>,
    pub perfdata: Vec<Perf>,
    /// Items that could not be read, each with the reason.
    pub problems: Vec<String>,
}

/// One performance data item.
#[derive(Debug, Clone, PartialEq)]
pub struct Perf {
    pub label: String,
    /// `None`: the plugin printed `U` (undetermined).
    pub value: Option<f64>,
    /// As printed: `s`, `ms`, `us`, `%`, `B`, `KB`, `MB`, `GB`, `TB`, `c`, or empty.
    pub uom: String,
    /// Ranges as printed (empty when not given).
    pub warn: String,
    pub crit: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Perf {
    /// The unit a metric takes and the factor to it: seconds, bytes (1024-based, as
    /// the Monitoring Plugins count), percent, count (`c`), or the UOM as printed.
    pub fn unit(&self) -> (&str, f64) {
        match self.uom.as_str() {
            "" => ("", 1.0),
            "s" => ("seconds", 1.0),
            "ms" => ("seconds", 1e-3),
            "us" => ("seconds", 1e-6),
            "%" => ("percent", 1.0),
            "B" => ("bytes", 1.0),
            "KB" | "kB" | "KiB" => ("bytes", 1024.0),
            "MB" | "MiB" => ("bytes", 1024.0 * 1024.0),
            "GB" | "GiB" => ("bytes", 1024.0 * 1024.0 * 1024.0),
            "TB" | "TiB" => ("bytes", 1024.0 * 1024.0 * 1024.0 * 1024.0),
            "c" => ("count", 1.0),
            other => (other, 1.0),
        }
    }
}

/// A range's threshold as one number, when it is the plain form `N` (alert outside
/// `0..N`) or `N:` with the other side open; other ranges have no single number.
pub fn plain_threshold(range: &str) -> Option<f64> {
    let r = range.trim();
    if r.is_empty() || r.starts_with('@') || r.starts_with('~') {
        return None;
    }
    r.strip_suffix(':').unwrap_or(r).parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Split a plugin's standard output.
pub fn parse(text: &str) -> Output {
    let mut out = Output::default();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let (message, perf) = first.split_once('|').unwrap_or((first, ""));
    out.message = message.trim().to_string();
    let mut perf_text = perf.to_string();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf_text.push(' ');
            perf_text.push_str(line);
        } else if let Some((text, perf)) = line.split_once('|') {
            out.long_text.push(text.trim_end().to_string());
            perf_text.push(' ');
            perf_text.push_str(perf);
            in_perf = true;
        } else {
            out.long_text.push(line.trim_end().to_string());
        }
    }
    while out.long_text.last().is_some_and(|l| l.trim().is_empty()) {
        out.long_text.pop();
    }
    let (items, problems) = parse_perfdata(&perf_text);
    out.perfdata = items;
    out.problems = problems;
    out
}

/// Performance data items; what cannot be read is skipped and named.
pub fn parse_perfdata(s: &str) -> (Vec<Perf>, Vec<String>) {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // The label: quoted ('' is a quote), or up to '='.
        let mut label = String::new();
        if chars[i] == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => break,
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        label.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        label.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
                label.push(chars[i]);
                i += 1;
            }
        }
        // The rest of the item: up to the next whitespace.
        let rest_start = i;
        while i < chars.len() && !chars[i].is_whitespace() {
            i += 1;
        }
        let item: String = chars[start..i].iter().collect();
        let rest: String = chars[rest_start..i].iter().collect();
        match rest.strip_prefix('=') {
            Some(fields) if !label.is_empty() => match parse_fields(label, fields) {
                Ok(p) => items.push(p),
                Err(why) => problems.push(format!("'{item}': {why}")),
            },
            _ => problems.push(format!("'{item}': not label=value")),
        }
    }
    (items, problems)
}

fn parse_fields(label: String, fields: &str) -> Result<Perf, String> {
    let mut f = fields.split(';');
    let first = f.next().unwrap_or("");
    let (value, uom) = if first == "U" {
        (None, String::new())
    } else {
        let n = first
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
            .unwrap_or(first.len());
        // An exponent's 'e' must not swallow a unit that starts with it: back off until
        // the number parses.
        let mut end = n;
        while end > 0 && first[..end].parse::<f64>().is_err() {
            end -= 1;
        }
        let v: f64 = first[..end].parse().map_err(|_| format!("the value '{first}' is not a number or U"))?;
        if !v.is_finite() {
            return Err(format!("the value '{first}' is not finite"));
        }
        (Some(v), first[end..].to_string())
    };
    let warn = f.next().unwrap_or("").to_string();
    let crit = f.next().unwrap_or("").to_string();
    let num = |s: Option<&str>, what: &str| -> Result<Option<f64>, String> {
        match s.map(str::trim) {
            None | Some("") => Ok(None),
            Some(t) => t.parse::<f64>().map(Some).map_err(|_| format!("{what} '{t}' is not a number")),
        }
    };
    let min = num(f.next(), "min")?;
    let max = num(f.next(), "max")?;
    Ok(Perf { label, value, uom, warn, crit, min, max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(
        label: &str,
        value: Option<f64>,
        uom: &str,
        warn: &str,
        crit: &str,
        min: Option<f64>,
        max: Option<f64>,
    ) -> Perf {
        Perf { label: label.into(), value, uom: uom.into(), warn: warn.into(), crit: crit.into(), min, max }
    }

    /// Every form of the plugin guidelines, and what real plugins print.
    #[test]
    fn every_perfdata_form() {
        let cases: &[(&str, Vec<Perf>)] = &[
            ("load1=0.150", vec![p("load1", Some(0.15), "", "", "", None, None)]),
            (
                "time=0.000123s;;;0.000000;10.000000",
                vec![p("time", Some(0.000123), "s", "", "", Some(0.0), Some(10.0))],
            ),
            (
                "'/ free'=2048MB;100;50;0;4096",
                vec![p("/ free", Some(2048.0), "MB", "100", "50", Some(0.0), Some(4096.0))],
            ),
            ("'it''s'=1", vec![p("it's", Some(1.0), "", "", "", None, None)]),
            ("'a=b'=5%;80;90", vec![p("a=b", Some(5.0), "%", "80", "90", None, None)]),
            ("rta=U;;;;", vec![p("rta", None, "", "", "", None, None)]),
            ("x=-3.5;@-10:-1;~:0", vec![p("x", Some(-3.5), "", "@-10:-1", "~:0", None, None)]),
            ("c=1024c", vec![p("c", Some(1024.0), "c", "", "", None, None)]),
            ("big=1.5e3B", vec![p("big", Some(1500.0), "B", "", "", None, None)]),
            ("t=12ms;100;200;0;", vec![p("t", Some(12.0), "ms", "100", "200", Some(0.0), None)]),
            ("r=5;10:;20:", vec![p("r", Some(5.0), "", "10:", "20:", None, None)]),
            ("u=3us", vec![p("u", Some(3.0), "us", "", "", None, None)]),
        ];
        for (text, want) in cases {
            let (got, problems) = parse_perfdata(text);
            assert_eq!(&got, want, "{text}");
            assert!(problems.is_empty(), "{text}: {problems:?}");
        }
    }

    #[test]
    fn malformed_items_are_skipped_and_named() {
        let (got, problems) = parse_perfdata("ok=1 =2 nolabel bad=abc min=1;;;x 'open=3");
        assert_eq!(got, vec![p("ok", Some(1.0), "", "", "", None, None)]);
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[2].contains("'bad=abc'") && problems[2].contains("not a number or U"), "{problems:?}");
        assert!(problems[3].contains("min 'x'"), "{problems:?}");
    }

    #[test]
    fn output_lines_split_as_the_guidelines_say() {
        let text = "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n\
                    / 15272 MB (77%);\n\
                    /boot 68 MB (69%);\n\
                    /home 69357 MB (27%);\n\
                    /var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n\
                    /home=69357MB;253404;253409;0;253414\n\
                    /var/log=818MB;970;975;0;980\n";
        let o = parse(text);
        assert_eq!(o.message, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(o.long_text.len(), 4);
        assert_eq!(o.long_text[3], "/var/log 819 MB (84%);");
        let labels: Vec<&str> = o.perfdata.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home", "/var/log"]);
        assert_eq!(o.perfdata[3].max, Some(980.0));
        assert_eq!(parse("").message, "");
        assert_eq!(parse("OK|").perfdata, vec![]);
    }

    #[test]
    fn units_and_plain_thresholds() {
        let (v, _) = parse_perfdata("a=2MB b=250ms c=7%");
        assert_eq!(v[0].unit(), ("bytes", 1024.0 * 1024.0));
        assert_eq!(v[1].unit(), ("seconds", 1e-3));
        assert_eq!(v[2].unit(), ("percent", 1.0));
        assert_eq!(plain_threshold("80"), Some(80.0));
        assert_eq!(plain_threshold("10:"), Some(10.0));
        assert_eq!(plain_threshold("@10:20"), None);
        assert_eq!(plain_threshold("~:5"), None);
        assert_eq!(plain_threshold("10:20"), None);
        assert_eq!(plain_threshold(""), None);
    }
}
