//! `Reader`: a JSON pull reader over one UTF-8 document that fills the generated models in place, keeps
//! numbers as written, keeps what it cannot hold as raw JSON, and records issues with their FHIR path.

use std::borrow::Cow;

use super::decimal::number_len;
use super::{Error, Issue, IssueKind, Members, Object, PrimValue, Primitive, PrimitiveElement};
use crate::Resource;

/// How deep objects and arrays may nest before the reader gives up (real FHIR stays far below).
const MAX_DEPTH: usize = 256;

/// One step of the path being read.
#[derive(Clone, Copy, Debug)]
enum Seg<'a> {
    Root(&'a str),
    Key(&'a str),
    Index(usize),
}

/// An object member's name: as written (for paths) and unescaped (for matching).
struct Key<'a> {
    raw: &'a str,
    text: Cow<'a, str>,
}

/// Reads one JSON document into the generated models (used by the generated code; see [`crate::from_slice`]).
pub struct Reader<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    path: Vec<Seg<'a>>,
    issues: Vec<Issue>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Reader {
            src,
            pos: 0,
            depth: 0,
            path: Vec::with_capacity(16),
            issues: Vec::new(),
        }
    }

    pub(crate) fn into_issues(self) -> Vec<Issue> {
        self.issues
    }

    /// The current position, to come back to.
    pub(crate) fn clone_pos(&self) -> usize {
        self.pos
    }

    /// Goes back to a position from [`Reader::clone_pos`].
    pub(crate) fn restore_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    // ---- lexing -------------------------------------------------------------------------------------------

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.src.as_bytes()
    }

    #[inline]
    fn ws(&mut self) {
        let b = self.bytes();
        while let Some(c) = b.get(self.pos) {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.pos).copied()
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A syntax error at the current position.
    pub(crate) fn syntax(&self, message: &'static str) -> Error {
        let before = &self.bytes()[..self.pos.min(self.src.len())];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let column = self.pos - before.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1) + 1;
        Error::Syntax {
            message,
            line,
            column,
            path: self.path_string(),
        }
    }

    fn expect(&mut self, c: u8, message: &'static str) -> Result<(), Error> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(message))
        }
    }

    /// The string starting at the current `"`: its raw content and whether it has escapes.
    fn string_span(&mut self) -> Result<(&'a str, bool), Error> {
        self.pos += 1;
        let b = self.bytes();
        let start = self.pos;
        let mut escaped = false;
        loop {
            // Eight bytes at a time: the lowest flagged byte of a word is always a real `"`, `\\` or control.
            while let Some(chunk) = b.get(self.pos..self.pos + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let mask = special_bytes(u64::from_le_bytes(word));
                if mask != 0 {
                    self.pos += (mask.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            match b.get(self.pos) {
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    self.pos += 2;
                }
                Some(c) if *c < 0x20 => return Err(self.syntax("control character in a string")),
                Some(_) => self.pos += 1,
                None => return Err(self.syntax("unterminated string")),
            }
        }
        let raw = self
            .src
            .get(start..self.pos)
            .ok_or_else(|| self.syntax("bad escape"))?;
        self.pos += 1;
        Ok((raw, escaped))
    }

    /// A string value at the current position (which must be `"`).
    fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        let (raw, escaped) = self.string_span()?;
        if escaped {
            unescape(raw)
                .map(Cow::Owned)
                .ok_or_else(|| self.syntax("bad escape"))
        } else {
            Ok(Cow::Borrowed(raw))
        }
    }

    /// The number token at the current position, if one starts there.
    fn number(&mut self) -> Option<&'a str> {
        let len = number_len(&self.bytes()[self.pos..])?;
        let text = self.src.get(self.pos..self.pos + len)?;
        self.pos += len;
        Some(text)
    }

    fn literal(&mut self, word: &'static str) -> bool {
        if self.bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// The next member name of an object whose `{` was consumed, or `None` after its `}`.
    fn next_key(&mut self, first: &mut bool) -> Result<Option<Key<'a>>, Error> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.syntax("expected ',' or '}'")),
        }
        *first = false;
        if self.peek() != Some(b'"') {
            return Err(self.syntax("expected a member name"));
        }
        let (raw, escaped) = self.string_span()?;
        let text = if escaped {
            Cow::Owned(unescape(raw).ok_or_else(|| self.syntax("bad escape"))?)
        } else {
            Cow::Borrowed(raw)
        };
        self.expect(b':', "expected ':'")?;
        self.ws();
        Ok(Some(Key { raw, text }))
    }

    /// Moves past the next array element separator; `false` after the closing `]`.
    fn next_element(&mut self, first: &mut bool) -> Result<bool, Error> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                return Ok(false);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if *first => {}
            _ => return Err(self.syntax("expected ',' or ']'")),
        }
        *first = false;
        self.ws();
        Ok(true)
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(Error::TooDeep {
                path: self.path_string(),
            })
        } else {
            Ok(())
        }
    }

    /// Moves past one value of any kind, checking its syntax.
    fn skip_value(&mut self) -> Result<(), Error> {
        match self.peek() {
            Some(b'{') => {
                self.enter()?;
                self.pos += 1;
                let mut first = true;
                while self.next_key(&mut first)?.is_some() {
                    self.skip_value()?;
                }
                self.depth -= 1;
            }
            Some(b'[') => {
                self.enter()?;
                self.pos += 1;
                let mut first = true;
                while self.next_element(&mut first)? {
                    self.skip_value()?;
                }
                self.depth -= 1;
            }
            Some(b'"') => {
                self.string_span()?;
            }
            Some(b't') if self.literal("true") => {}
            Some(b'f') if self.literal("false") => {}
            Some(b'n') if self.literal("null") => {}
            Some(b'-' | b'0'..=b'9') => {
                self.number().ok_or_else(|| self.syntax("bad number"))?;
            }
            _ => return Err(self.syntax("expected a JSON value")),
        }
        Ok(())
    }

    /// The next value's JSON text, whitespace outside strings removed.
    fn raw_value(&mut self) -> Result<String, Error> {
        self.ws();
        let start = self.pos;
        self.skip_value()?;
        let text = &self.src[start..self.pos];
        if !text.bytes().any(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t')) {
            return Ok(text.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut in_string = false;
        let mut escape = false;
        for ch in text.chars() {
            if in_string {
                out.push(ch);
                if escape {
                    escape = false;
                } else if ch == '\\' {
                    escape = true;
                } else if ch == '"' {
                    in_string = false;
                }
            } else if ch == '"' {
                in_string = true;
                out.push(ch);
            } else if !ch.is_ascii_whitespace() {
                out.push(ch);
            }
        }
        Ok(out)
    }

    /// The `resourceType` of the object at the current position, without moving.
    pub(crate) fn find_resource_type(&mut self) -> Result<Option<Cow<'a, str>>, Error> {
        if self.peek() != Some(b'{') {
            return Ok(None);
        }
        let save = (self.pos, self.depth);
        self.pos += 1;
        let mut first = true;
        let mut found = None;
        while let Some(key) = self.next_key(&mut first)? {
            if key.text == "resourceType" {
                if self.peek() == Some(b'"') {
                    found = Some(self.string()?);
                }
                break;
            }
            self.skip_value()?;
        }
        (self.pos, self.depth) = save;
        Ok(found)
    }

    // ---- paths and issues ---------------------------------------------------------------------------------

    fn path_string(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Root(name) => out.push_str(name),
                Seg::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    pub(crate) fn issue(&mut self, kind: IssueKind) {
        let path = self.path_string();
        self.issues.push(Issue { path, kind });
    }

    /// What the value at the current position is, for issue texts.
    fn found(&mut self) -> &'static str {
        match self.peek() {
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b'"') => "a string",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            _ => "a number",
        }
    }

    /// Records that the value here is not `expected`; the caller then keeps it as an unknown member.
    pub(crate) fn wrong(&mut self, expected: &'static str) {
        let found = self.found();
        self.issue(IssueKind::WrongType { expected, found });
    }

    /// Records a coercion of the value here to `expected`.
    fn coerced(&mut self, expected: &'static str) {
        let found = self.found();
        self.issue(IssueKind::Coerced { expected, found });
    }

    /// Records a missing required element `name` of the object being read.
    pub(crate) fn require(&mut self, present: bool, name: &'static str) {
        if !present {
            self.path.push(Seg::Key(name));
            self.issue(IssueKind::MissingRequired);
            self.path.pop();
        }
    }

    // ---- values -------------------------------------------------------------------------------------------

    /// A string value, or `None` (and no move) when the value is not a string.
    pub(crate) fn read_string(&mut self) -> Result<Option<String>, Error> {
        if self.peek() == Some(b'"') {
            Ok(Some(self.string()?.into_owned()))
        } else {
            Ok(None)
        }
    }

    /// A JSON number token, or `None` (and no move).
    pub(crate) fn read_number(&mut self) -> Option<&'a str> {
        self.ws();
        self.number()
    }

    /// `true` or `false`, or `None` (and no move).
    pub(crate) fn read_bool(&mut self) -> Option<bool> {
        match self.peek() {
            Some(b't') if self.literal("true") => Some(true),
            Some(b'f') if self.literal("false") => Some(false),
            _ => None,
        }
    }

    /// For the tolerant coercions: the string here converted by `convert`, recorded as coerced; `None` (and no
    /// move) when the value is not a string or does not convert.
    pub(crate) fn coerce_string<T>(
        &mut self,
        expected: &'static str,
        convert: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        if self.peek() != Some(b'"') {
            return Ok(None);
        }
        let save = self.pos;
        let text = self.string()?;
        match convert(&text) {
            Some(v) => {
                let end = self.pos;
                self.pos = save;
                self.coerced(expected);
                self.pos = end;
                Ok(Some(v))
            }
            None => {
                self.pos = save;
                Ok(None)
            }
        }
    }

    // ---- typed reading, used by the generated code --------------------------------------------------------

    /// Reads an object into a new `T`; `None` (and no move) when the value is not an object.
    #[inline]
    pub(crate) fn read_object<T: Object>(&mut self) -> Result<Option<T>, Error> {
        if self.peek() != Some(b'{') {
            return Ok(None);
        }
        let mut value = T::default();
        self.read_members(&mut value, T::NAME, T::RESOURCE)?;
        Ok(Some(value))
    }

    /// Reads an object into a new boxed `T`, filled in place (no move of a large struct into the box).
    #[inline]
    pub(crate) fn read_boxed<T: Object>(&mut self) -> Result<Option<Box<T>>, Error> {
        if self.peek() != Some(b'{') {
            return Ok(None);
        }
        let mut value = Box::<T>::default();
        self.read_members(&mut *value, T::NAME, T::RESOURCE)?;
        Ok(Some(value))
    }

    /// The one driver for every struct: reads the members of the object here into `value`, keeping what it
    /// cannot hold as unknown members, then checks the required elements.
    fn read_members(
        &mut self,
        value: &mut dyn Members,
        name: &'static str,
        resource: bool,
    ) -> Result<(), Error> {
        self.enter()?;
        self.pos += 1;
        let root = self.path.is_empty();
        if root {
            self.path.push(Seg::Root(name));
        }
        let mut position = 0u16;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            self.path.push(Seg::Key(key.raw));
            let start = self.pos;
            if resource && key.text == "resourceType" {
                match self.read_string()? {
                    Some(t) if t == name => {}
                    Some(found) => self.issue(IssueKind::ResourceTypeMismatch {
                        expected: name,
                        found,
                    }),
                    None => {
                        self.wrong("a string");
                        self.skip_value()?;
                    }
                }
            } else {
                match value.read_member(&key.text, self)? {
                    Some((index, true)) => position = index + 1,
                    found => {
                        if found.is_none() {
                            self.issue(IssueKind::UnknownMember);
                        }
                        self.pos = start;
                        let json = self.raw_value()?;
                        value.unknown_mut().push_at(key.text.into_owned(), json, position);
                    }
                }
            }
            self.path.pop();
        }
        value.check(self);
        if root {
            self.path.pop();
        }
        self.depth -= 1;
        Ok(())
    }

    /// Reads any resource, dispatching on its `resourceType` wherever it stands; `None` when the value is not
    /// an object with a known `resourceType` (the issue is recorded).
    pub(crate) fn read_resource(&mut self) -> Result<Option<Resource>, Error> {
        if self.peek() != Some(b'{') {
            self.wrong("a resource (an object with a resourceType)");
            return Ok(None);
        }
        match self.find_resource_type()? {
            None => {
                self.issue(IssueKind::MissingResourceType);
                Ok(None)
            }
            Some(name) => {
                let read = Resource::read_typed(&name, self)?;
                if read.is_none() {
                    self.issue(IssueKind::UnknownResourceType(name.into_owned()));
                }
                Ok(read)
            }
        }
    }

    /// Runs `element` on each element of the array here (with its index on the path; one driver, not one per
    /// element type); `false` when the value
    /// is not an array or `element` refused one (the caller keeps the whole value as an unknown member).
    fn array(&mut self, element: &mut dyn FnMut(&mut Self) -> Result<bool, Error>) -> Result<bool, Error> {
        self.enter()?;
        self.pos += 1;
        let mut first = true;
        let mut index = 0;
        while self.next_element(&mut first)? {
            self.path.push(Seg::Index(index));
            let ok = element(self)?;
            self.path.pop();
            if !ok {
                self.depth -= 1;
                return Ok(false);
            }
            index += 1;
        }
        self.depth -= 1;
        Ok(true)
    }

    fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.literal("null")
    }

    /// A plain string field (`Element.id`, `Extension.url`).
    pub(crate) fn plain(&mut self, slot: &mut Option<String>) -> Result<bool, Error> {
        match self.read_string()? {
            Some(s) => {
                *slot = Some(s);
                Ok(true)
            }
            None => {
                self.wrong("a string");
                Ok(false)
            }
        }
    }

    /// A primitive's value (`"status": "final"`).
    pub(crate) fn prim<T: PrimValue>(&mut self, slot: &mut Option<Primitive<T>>) -> Result<bool, Error> {
        match T::read(self)? {
            Some(v) => {
                slot.get_or_insert_with(Primitive::default).value = Some(v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The `_field` object with a primitive's id and extensions.
    fn element(&mut self) -> Result<Option<Box<PrimitiveElement>>, Error> {
        match self.read_object::<PrimitiveElement>()? {
            Some(e) => Ok(Some(Box::new(e))),
            None => {
                self.wrong("an object (the primitive's id and extensions)");
                Ok(None)
            }
        }
    }

    /// A primitive's `_field` sibling.
    pub(crate) fn prim_ext<T: PrimValue>(&mut self, slot: &mut Option<Primitive<T>>) -> Result<bool, Error> {
        match self.element()? {
            Some(e) => {
                slot.get_or_insert_with(Primitive::default).element = Some(e);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// An array of primitives' values (`null` where only the `_field` array has an entry).
    pub(crate) fn prim_vec<T: PrimValue>(&mut self, slot: &mut Vec<Primitive<T>>) -> Result<bool, Error> {
        if self.peek() != Some(b'[') {
            let save = self.pos;
            let issues = self.issues.len();
            return match T::read(self)? {
                Some(v) => {
                    let end = self.pos;
                    self.pos = save;
                    self.issues.truncate(issues);
                    self.coerced("an array");
                    self.pos = end;
                    merge_values(slot, vec![Some(v)]);
                    Ok(true)
                }
                None => Ok(false),
            };
        }
        let mut values = Vec::new();
        let ok = self.array(&mut |r| {
            if r.null() {
                values.push(None);
                return Ok(true);
            }
            Ok(T::read(r)?.map(|v| values.push(Some(v))).is_some())
        })?;
        if ok {
            merge_values(slot, values);
        }
        Ok(ok)
    }

    /// The `_field` array beside an array of primitives (`null` where a value has no id or extensions).
    pub(crate) fn prim_vec_ext<T: PrimValue>(&mut self, slot: &mut Vec<Primitive<T>>) -> Result<bool, Error> {
        if self.peek() != Some(b'[') {
            self.wrong("an array (the primitives' ids and extensions)");
            return Ok(false);
        }
        let mut elements = Vec::new();
        let ok = self.array(&mut |r| {
            if r.null() {
                elements.push(None);
                return Ok(true);
            }
            Ok(r.element()?.map(|e| elements.push(Some(e))).is_some())
        })?;
        if ok {
            if slot.len() < elements.len() {
                slot.resize_with(elements.len(), Primitive::default);
            }
            for (p, e) in slot.iter_mut().zip(elements) {
                p.element = e;
            }
        }
        Ok(ok)
    }

    /// A single complex value (boxed).
    pub(crate) fn boxed<T: Object>(&mut self, slot: &mut Option<Box<T>>) -> Result<bool, Error> {
        match self.read_boxed::<T>()? {
            Some(v) => {
                *slot = Some(v);
                Ok(true)
            }
            None => {
                self.wrong("an object");
                Ok(false)
            }
        }
    }

    /// An array of complex values.
    pub(crate) fn objects<T: Object>(&mut self, slot: &mut Vec<T>) -> Result<bool, Error> {
        let before = slot.len();
        if self.peek() == Some(b'{') {
            self.coerced("an array");
            if let Some(v) = self.read_object::<T>()? {
                slot.push(v);
            }
            return Ok(true);
        }
        if self.peek() != Some(b'[') {
            self.wrong("an array of objects");
            return Ok(false);
        }
        let ok = self.array(&mut |r| match r.read_object::<T>()? {
            Some(v) => {
                slot.push(v);
                Ok(true)
            }
            None => {
                r.wrong("an object");
                Ok(false)
            }
        })?;
        if !ok {
            slot.truncate(before);
        }
        Ok(ok)
    }

    /// A single resource (`Bundle.entry.resource`).
    pub(crate) fn resource(&mut self, slot: &mut Option<Resource>) -> Result<bool, Error> {
        match self.read_resource()? {
            Some(v) => {
                *slot = Some(v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// An array of resources (`DomainResource.contained`).
    pub(crate) fn resources(&mut self, slot: &mut Vec<Resource>) -> Result<bool, Error> {
        if self.peek() != Some(b'[') {
            self.wrong("an array of resources");
            return Ok(false);
        }
        let before = slot.len();
        let ok = self.array(&mut |r| match r.read_resource()? {
            Some(v) => {
                slot.push(v);
                Ok(true)
            }
            None => Ok(false),
        })?;
        if !ok {
            slot.truncate(before);
        }
        Ok(ok)
    }

    /// A complex choice (`valueQuantity`).
    pub(crate) fn choice_object<E, T: Object>(
        &mut self,
        slot: &mut Option<E>,
        make: fn(Box<T>) -> E,
    ) -> Result<bool, Error> {
        match self.read_boxed::<T>()? {
            Some(v) => {
                *slot = Some(make(v));
                Ok(true)
            }
            None => {
                self.wrong("an object");
                Ok(false)
            }
        }
    }

    /// A primitive choice's value (`valueString`).
    pub(crate) fn choice_prim<E, T: PrimValue>(
        &mut self,
        slot: &mut Option<E>,
        make: fn(Primitive<T>) -> E,
        get: fn(&mut E) -> Option<&mut Primitive<T>>,
    ) -> Result<bool, Error> {
        let Some(v) = T::read(self)? else { return Ok(false) };
        match slot.as_mut().and_then(get) {
            Some(p) => p.value = Some(v),
            None => *slot = Some(make(Primitive::new(v))),
        }
        Ok(true)
    }

    /// A primitive choice's `_field` sibling (`_valueString`).
    pub(crate) fn choice_prim_ext<E, T: PrimValue>(
        &mut self,
        slot: &mut Option<E>,
        make: fn(Primitive<T>) -> E,
        get: fn(&mut E) -> Option<&mut Primitive<T>>,
    ) -> Result<bool, Error> {
        let Some(e) = self.element()? else {
            return Ok(false);
        };
        match slot.as_mut().and_then(get) {
            Some(p) => p.element = Some(e),
            None => {
                *slot = Some(make(Primitive {
                    value: None,
                    element: Some(e),
                }))
            }
        }
        Ok(true)
    }
}

/// The high bit set in each byte of `w` that is `"`, `\\` or a control character (below 0x20), by the classic
/// "has a zero byte" trick on the word XORed with each; above a flagged byte, borrows may flag more, so only the
/// lowest flag is exact.
#[inline]
pub(crate) fn special_bytes(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = w ^ (ONES * u64::from(b'"'));
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    zero(quote) | zero(backslash) | control
}

/// Puts the values of a primitive array into `slot`, beside any `_field` entries read before them.
fn merge_values<T>(slot: &mut Vec<Primitive<T>>, values: Vec<Option<T>>) {
    if slot.is_empty() {
        slot.extend(values.into_iter().map(|value| Primitive { value, element: None }));
        return;
    }
    if slot.len() < values.len() {
        slot.resize_with(values.len(), Primitive::default);
    }
    for (p, v) in slot.iter_mut().zip(values) {
        p.value = v;
    }
}

/// The text of a JSON string's raw content with its escapes resolved; `None` for a bad escape.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let hi = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let lo = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                };
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut n = 0;
    for _ in 0..4 {
        n = n * 16 + chars.next()?.to_digit(16)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::special_bytes;

    /// The index of the first special byte, as the reader finds it.
    fn first_special(bytes: [u8; 8]) -> Option<u32> {
        let mask = special_bytes(u64::from_le_bytes(bytes));
        (mask != 0).then(|| mask.trailing_zeros() / 8)
    }

    #[test]
    fn the_lowest_flagged_byte_is_the_first_quote_backslash_or_control() {
        assert_eq!(first_special(*b"abcdefgh"), None);
        assert_eq!(
            first_special([0xc3, 0xa9, b' ', b'~', 0x7f, 0xff, b'!', b'#']),
            None
        );
        for i in 0..8 {
            for special in [b'"', b'\\', b'\n', 0x00, 0x1f] {
                let mut bytes = [0x01u8.wrapping_add(b'a'); 8];
                bytes[i] = special;
                if i + 1 < 8 {
                    bytes[i + 1] = b'"';
                }
                assert_eq!(first_special(bytes), Some(i as u32), "{special:#x} at {i}");
            }
        }
    }
}
