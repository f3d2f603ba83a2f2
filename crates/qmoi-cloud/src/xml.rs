//! A streaming walk over the XML answers of the AWS Query APIs (EC2, CloudWatch): no
//! tree is built, so a 5 MB `DescribeInstances` page costs what the caller keeps of it.
//!
//! [`walk`] calls back once per closed element with the path of local names from the root
//! (namespace prefixes dropped) and the element's own text, entities decoded. Callers
//! match the path with slice patterns:
//!
//! ```
//! let xml = "<r><set><item><id>i-1</id></item><item><id>i-2</id></item></set></r>";
//! let mut ids = Vec::new();
//! qmoi_cloud::xml::walk(xml, |path, text| {
//!     if let [_, "set", "item", "id"] = path {
//!         ids.push(text.to_string());
//!     }
//! })
//! .unwrap();
//! assert_eq!(ids, ["i-1", "i-2"]);
//! ```

use std::borrow::Cow;
use xmlparser::{ElementEnd, Token, Tokenizer};

/// Walk `body`, calling `on_close(path, text)` as each element closes. An error names
/// what is wrong and the byte offset where.
pub fn walk<'a>(body: &'a str, mut on_close: impl FnMut(&[&'a str], &str)) -> Result<(), String> {
    let mut path: Vec<&'a str> = Vec::new();
    // The text of each open element: borrowed from `body` while it is one chunk without
    // entities (the usual case), owned otherwise.
    let mut texts: Vec<Cow<'a, str>> = Vec::new();
    for token in Tokenizer::from(body) {
        match token.map_err(|e| format!("malformed XML: {e}"))? {
            Token::ElementStart { local, .. } => {
                path.push(local.as_str());
                texts.push(Cow::Borrowed(""));
            }
            Token::ElementEnd { end: ElementEnd::Open, .. } => {}
            Token::ElementEnd { end, span } => {
                if let ElementEnd::Close(_, local) = end
                    && path.last() != Some(&local.as_str())
                {
                    return Err(format!(
                        "malformed XML: </{}> at byte {} closes <{}>",
                        local.as_str(),
                        span.start(),
                        path.last().copied().unwrap_or("(nothing)")
                    ));
                }
                let text = texts.pop().unwrap_or_default();
                on_close(&path, &text);
                path.pop();
            }
            Token::Text { text } => {
                if let Some(t) = texts.last_mut() {
                    append(t, text.as_str(), text.start())?;
                }
            }
            Token::Cdata { text, .. } => {
                if let Some(t) = texts.last_mut() {
                    t.to_mut().push_str(text.as_str());
                }
            }
            _ => {}
        }
    }
    match path.last() {
        Some(open) => Err(format!("malformed XML: the answer ends inside <{open}>")),
        None => Ok(()),
    }
}

/// Append a text chunk to `t`, decoding the five predefined entities and character
/// references.
fn append<'a>(t: &mut Cow<'a, str>, chunk: &'a str, at: usize) -> Result<(), String> {
    if !chunk.contains('&') {
        if t.is_empty() {
            *t = Cow::Borrowed(chunk);
        } else {
            t.to_mut().push_str(chunk);
        }
        return Ok(());
    }
    let out = t.to_mut();
    let mut rest = chunk;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';') else {
            return Err(format!("malformed XML: unterminated entity at byte {}", at + chunk.len() - rest.len() + amp));
        };
        let name = &after[..semi];
        let c = match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => name
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| name.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        let Some(c) = c else {
            return Err(format!(
                "malformed XML: unknown entity &{name}; at byte {}",
                at + chunk.len() - rest.len() + amp
            ));
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closes(xml: &str) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        walk(xml, |path, text| out.push((path.join("/"), text.to_string())))?;
        Ok(out)
    }

    #[test]
    fn paths_texts_and_entities() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<R xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><a:k>x &amp; y &lt;&#65;&#x42;&gt;</a:k><e/><c><![CDATA[<raw>]]></c></R>"#;
        let got = closes(xml).unwrap();
        assert_eq!(got[0], ("R/k".into(), "x & y <AB>".into()));
        assert_eq!(got[1], ("R/e".into(), String::new()));
        assert_eq!(got[2], ("R/c".into(), "<raw>".into()));
        assert_eq!(got[3].0, "R");
    }

    #[test]
    fn broken_answers_are_errors_that_say_where() {
        assert!(closes("<a><b></a>").unwrap_err().contains("</a> at byte 6 closes <b>"));
        assert!(closes("<a><b>").unwrap_err().contains("ends inside <b>"));
        assert!(closes("<a>&nope;</a>").unwrap_err().contains("unknown entity &nope; at byte 3"));
        assert!(closes("<a>x &amp y</a>").is_err());
        assert!(closes("<a><").unwrap_err().starts_with("malformed XML"));
    }
}
