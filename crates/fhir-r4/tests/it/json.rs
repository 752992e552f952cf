//! A JSON tree for comparing documents with numbers compared as written (`0.50` is not `0.5`).

use std::collections::BTreeMap;

/// A JSON value whose numbers keep their text.
#[derive(Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

/// Parses `text`, or says where it is malformed.
pub fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        b: text.as_bytes(),
        pos: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.pos != p.b.len() {
        return Err(format!("trailing text at {}", p.pos));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.b.get(self.pos).is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.b.get(self.pos) {
            Some(b'{') => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                loop {
                    self.ws();
                    if self.b.get(self.pos) == Some(&b'}') {
                        self.pos += 1;
                        return Ok(Json::Object(map));
                    }
                    if self.b.get(self.pos) == Some(&b',') {
                        self.pos += 1;
                        self.ws();
                    }
                    let Json::String(key) = self.value()? else {
                        return Err(format!("key at {}", self.pos));
                    };
                    self.ws();
                    self.pos += 1; // ':'
                    let v = self.value()?;
                    map.insert(key, v);
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    match self.b.get(self.pos) {
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Json::Array(items));
                        }
                        Some(b',') => self.pos += 1,
                        _ => items.push(self.value()?),
                    }
                }
            }
            Some(b'"') => {
                let start = self.pos;
                self.pos += 1;
                while let Some(&c) = self.b.get(self.pos) {
                    self.pos += 1;
                    match c {
                        b'\\' => self.pos += 1,
                        b'"' => break,
                        _ => {}
                    }
                }
                let raw = std::str::from_utf8(&self.b[start..self.pos]).map_err(|e| e.to_string())?;
                // serde_json decodes the escapes; its numbers are never involved here.
                serde_json::from_str::<String>(raw)
                    .map(Json::String)
                    .map_err(|e| e.to_string())
            }
            Some(b't') => self.word("true", Json::Bool(true)),
            Some(b'f') => self.word("false", Json::Bool(false)),
            Some(b'n') => self.word("null", Json::Null),
            Some(_) => {
                let start = self.pos;
                while self
                    .b
                    .get(self.pos)
                    .is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                {
                    self.pos += 1;
                }
                if start == self.pos {
                    return Err(format!("unexpected byte at {start}"));
                }
                Ok(Json::Number(
                    String::from_utf8_lossy(&self.b[start..self.pos]).into_owned(),
                ))
            }
            None => Err("unexpected end".to_string()),
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Result<Json, String> {
        if self.b[self.pos..].starts_with(w.as_bytes()) {
            self.pos += w.len();
            Ok(v)
        } else {
            Err(format!("bad literal at {}", self.pos))
        }
    }
}

/// The path of the first difference between `expected` and `actual`, with both sides.
pub fn first_difference(path: &str, expected: &Json, actual: &Json) -> Option<String> {
    match (expected, actual) {
        (Json::Object(e), Json::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => {
                        if let Some(d) = first_difference(&format!("{path}.{k}"), ev, av) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{path}.{k}: missing after the round trip")),
                }
            }
            a.keys()
                .find(|k| !e.contains_key(*k))
                .map(|k| format!("{path}.{k}: added by the round trip"))
        }
        (Json::Array(e), Json::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| first_difference(&format!("{path}[{i}]"), ev, av)),
        _ if expected == actual => None,
        _ => Some(format!("{path}: expected {expected:?}, got {actual:?}")),
    }
}
