//! The [`Redactor`]: what keeps secrets and sensitive values out of everything Waymark writes.
//!
//! A value is registered once, in the form the journey used; the redactor then finds it in
//! every form a target, a URL library or an output format can turn it into, and replaces it
//! with [`REDACTED`]:
//!
//! - **Escaped or encoded, character by character**, in any mix: each character may appear as
//!   itself, percent-encoded (`%2F` or `%2f`, every UTF-8 byte), as `+` for a space
//!   (form encoding), JSON-escaped (`\"`, `\\`, `\/`, `\n`…, `\u00e9` in either case, surrogate
//!   pairs beyond the BMP) or HTML-escaped (`&amp;`, `&quot;`, `&#x27;`, `&#233;`…). So the
//!   `url` crate's query-pair, query, path and userinfo encodings, serde_json's and Python's
//!   `json.dumps` escaping and minijinja's auto-escaping are all covered by one pattern.
//! - **Case-folded**: ASCII letters match either case (DNS lower-cases names; a target may
//!   upper-case), and the Unicode lower- and upper-case forms are registered too.
//! - **As a DNS label**: the IDNA (punycode, `xn--…`) form of each non-ASCII label.
//! - **Inside base64**, as in a `Basic` credential: the base64 of the value in each of the
//!   three byte alignments it can have inside a longer encoded text (`user:password`),
//!   standard and URL-safe alphabets, case-sensitive.
//!
//! Matching decodes as it goes (no pattern is compiled), so registering is cheap and a text
//! is scanned once per form, failing fast at most positions.
//!
//! Values shorter than [`MIN_VARIANT_CHARS`] characters are matched only verbatim: a short
//! sensitive value (`7`, `ok`) would otherwise mask half of every output.

use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// What every registered value is replaced with.
pub const REDACTED: &str = "***";

/// Values with fewer characters than this are redacted verbatim only (no encoded variants,
/// no case folding); base64 fragments shorter than this are not registered.
pub const MIN_VARIANT_CHARS: usize = 4;

/// Header names whose values are credentials: never shown, whatever the journey says, and the
/// values rendered into them are redacted wherever else they appear.
pub fn is_credential_header(name: &str) -> bool {
    const NAMES: [&str; 6] = [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Replaces every registered value, in every form it can take, with `***`. Shared by everything
/// that prints or stores output of a run, so one registration covers text, JSON, logs and
/// traces alike. Cloning shares the registrations.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Values as registered.
    values: Vec<String>,
    /// Every form of every value, longest first, so a value containing another is replaced
    /// whole.
    forms: Vec<Form>,
    /// The bytes a form can start with: every other byte is copied without a look.
    starts: Starts,
}

#[derive(Debug)]
struct Starts([bool; 256]);

impl Default for Starts {
    fn default() -> Self {
        Starts([false; 256])
    }
}

impl Starts {
    fn add(&mut self, form: &Form) {
        let Some(first) = form.chars.first() else {
            return;
        };
        let mut utf8 = [0u8; 4];
        for c in [
            *first,
            first.to_ascii_lowercase(),
            first.to_ascii_uppercase(),
        ] {
            self.0[usize::from(c.encode_utf8(&mut utf8).as_bytes()[0])] = true;
        }
        if form.decoded {
            for b in [b'%', b'\\', b'&', b'+'] {
                self.0[usize::from(b)] = true;
            }
        }
    }
}

impl Redactor {
    /// Registers a value; empty values are ignored, repeated ones cost nothing.
    pub fn register(&self, value: &str) {
        if value.is_empty() {
            return;
        }
        let mut inner = self.inner.write().expect("redactor lock poisoned");
        if inner.values.iter().any(|v| v == value) {
            return;
        }
        inner.values.push(value.to_string());
        let mut new = forms(value);
        new.retain(|f| !inner.forms.contains(f));
        for f in &new {
            inner.starts.add(f);
        }
        inner.forms.extend(new);
        inner
            .forms
            .sort_by_key(|f| std::cmp::Reverse(f.chars.len()));
    }

    /// Registers the value of a credential header as it is sent (`Basic dXNlcjpwdw==`,
    /// `Bearer abc`): the whole value, the credentials after the scheme and, for `Basic`, the
    /// decoded `user:password` and the password alone. Parts shorter than
    /// [`MIN_VARIANT_CHARS`] are left out (`Bearer x` must not mask every `x`).
    pub fn register_credential(&self, header_value: &str) {
        let long = |s: &str| s.chars().count() >= MIN_VARIANT_CHARS;
        let value = header_value.trim();
        if long(value) {
            self.register(value);
        }
        let Some((scheme, credentials)) = value.split_once(' ') else {
            return;
        };
        let credentials = credentials.trim();
        if long(credentials) {
            self.register(credentials);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        if let Some(decoded) = decoded {
            if long(&decoded) {
                self.register(&decoded);
            }
            if let Some((_, password)) = decoded.split_once(':')
                && long(password)
            {
                self.register(password);
            }
        }
    }

    pub fn redact(&self, text: &str) -> String {
        self.redact_upto(text, usize::MAX).0
    }

    /// Redacts `text`, then keeps at most `max_chars` characters of the result, marking a cut
    /// with `…`. The order matters: cutting first could leave part of a secret behind.
    pub fn redact_cut(&self, text: &str, max_chars: usize) -> String {
        let (mut out, cut) = self.redact_upto(text, max_chars);
        if cut {
            out.push('…');
        }
        out
    }

    /// The first `max_chars` characters of the redacted `text`, and whether anything was left
    /// out. Redaction stops once that many are written: a long body costs only what is kept
    /// (a match that starts before the cut is still followed to its end).
    pub fn redact_upto(&self, text: &str, max_chars: usize) -> (String, bool) {
        let inner = self.inner.read().expect("redactor lock poisoned");
        if inner.forms.is_empty() && max_chars == usize::MAX {
            return (text.to_string(), false);
        }
        let mut out = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
        let mut written = 0;
        let mut pos = 0;
        while let Some(c) = text[pos..].chars().next() {
            if written >= max_chars {
                return (out, true);
            }
            let found = if inner.starts.0[usize::from(text.as_bytes()[pos])] {
                // Read this position once, and follow only the forms whose first character
                // it can be.
                let here = decode_at(text, pos);
                inner
                    .forms
                    .iter()
                    .filter(|f| f.may_start(&here))
                    .find_map(|f| match_at(text, pos, f))
            } else {
                None
            };
            match found {
                Some(end) => {
                    for r in REDACTED.chars().take(max_chars - written) {
                        out.push(r);
                        written += 1;
                    }
                    pos = end;
                }
                None => {
                    out.push(c);
                    written += 1;
                    pos += c.len_utf8();
                }
            }
        }
        (out, false)
    }

    pub fn is_empty(&self) -> bool {
        self.inner
            .read()
            .expect("redactor lock poisoned")
            .values
            .is_empty()
    }
}

/// One form of a registered value to look for.
#[derive(Debug, PartialEq)]
struct Form {
    text: String,
    chars: Vec<char>,
    /// Each character may appear escaped or encoded (see the module doc); otherwise verbatim.
    decoded: bool,
    /// ASCII letters match either case.
    fold: bool,
}

impl Form {
    /// Whether one of the readings of a position is this form's first character.
    fn may_start(&self, here: &Decodings) -> bool {
        let Some(&want) = self.chars.first() else {
            return false;
        };
        here.items[..here.len]
            .iter()
            .any(|&(c, _)| c == want || (self.fold && c.eq_ignore_ascii_case(&want)))
    }
}

/// The forms of one value.
fn forms(value: &str) -> Vec<Form> {
    let form = |text: &str, decoded, fold| Form {
        text: text.to_string(),
        chars: text.chars().collect(),
        decoded,
        fold,
    };
    if value.chars().count() < MIN_VARIANT_CHARS {
        return vec![form(value, false, false)];
    }
    let mut out = vec![form(value, true, true)];
    // Unicode case changes (a DNS name is shown lower-cased: `Ω` as `ω`); ASCII letters
    // already match either case.
    for changed in [value.to_lowercase(), value.to_uppercase()] {
        if !changed.eq_ignore_ascii_case(value) {
            out.push(form(&changed, true, true));
        }
    }
    for label in punycode_labels(value) {
        out.push(form(&label, true, true));
    }
    for whole in [
        base64::engine::general_purpose::STANDARD.encode(value),
        base64::engine::general_purpose::URL_SAFE.encode(value),
    ] {
        out.push(form(&whole, true, false));
    }
    for fragment in base64_fragments(value.as_bytes()) {
        out.push(form(&fragment, true, false));
    }
    out
}

/// Where in `text` a form starting at byte `start` ends, if it does.
fn match_at(text: &str, start: usize, form: &Form) -> Option<usize> {
    if !form.decoded {
        let raw = &form.text;
        return text[start..]
            .starts_with(raw.as_str())
            .then_some(start + raw.len());
    }
    // Depth-first over the ways each character can be written, with a budget against
    // pathological inputs (`%25%25%25…` against a value made of `%`).
    let mut budget = 64 * form.chars.len() + 64;
    let mut frames: Vec<(usize, Decodings, usize)> = Vec::with_capacity(form.chars.len());
    let mut pos = start;
    loop {
        if frames.len() == form.chars.len() {
            return Some(pos);
        }
        frames.push((pos, decode_at(text, pos), 0));
        loop {
            budget = budget.checked_sub(1)?;
            let depth = frames.len().checked_sub(1)?;
            let want = form.chars[depth];
            let (at, options, next) = frames.last_mut()?;
            let mut found = None;
            while *next < options.len {
                let (c, len) = options.items[*next];
                *next += 1;
                if c == want || (form.fold && c.eq_ignore_ascii_case(&want)) {
                    found = Some(*at + len);
                    break;
                }
            }
            match found {
                Some(p) => {
                    pos = p;
                    break;
                }
                None => {
                    frames.pop();
                }
            }
        }
    }
}

/// The characters that can be read at one position, each with the bytes it takes.
#[derive(Debug, Default)]
struct Decodings {
    items: [(char, usize); 4],
    len: usize,
}

impl Decodings {
    fn push(&mut self, c: char, bytes: usize) {
        if self.len < self.items.len() {
            self.items[self.len] = (c, bytes);
            self.len += 1;
        }
    }
}

/// Every reading of `text` at `pos`, longest first: an escape or encoding, then the character
/// itself (`%25` is `%`, and so is the `%` that starts it).
fn decode_at(text: &str, pos: usize) -> Decodings {
    let mut out = Decodings::default();
    let rest = &text[pos..];
    let Some(first) = rest.chars().next() else {
        return out;
    };
    match first {
        '%' => {
            if let Some((c, len)) = percent(rest) {
                out.push(c, len);
            }
        }
        '\\' => {
            if let Some((c, len)) = json_escape(rest) {
                out.push(c, len);
            }
        }
        '&' => {
            if let Some((c, len)) = html_entity(rest) {
                out.push(c, len);
            }
        }
        '+' => out.push(' ', 1),
        _ => {}
    }
    out.push(first, first.len_utf8());
    out
}

fn hex_value(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

/// `%XX` (one per UTF-8 byte of a character).
fn percent(s: &str) -> Option<(char, usize)> {
    let byte = |i: usize| -> Option<u8> {
        let chunk = s.get(i * 3..i * 3 + 3)?;
        let hex = chunk.strip_prefix('%')?;
        u8::try_from(hex_value(hex)?).ok()
    };
    let lead = byte(0)?;
    let n = match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let bytes: Vec<u8> = (0..n).map(byte).collect::<Option<_>>()?;
    let c = std::str::from_utf8(&bytes).ok()?.chars().next()?;
    Some((c, n * 3))
}

/// A JSON escape: `\"`, `\\`, `\/`, `\n`…, `\uXXXX` (a surrogate pair for one character
/// beyond the BMP), or an escaped character written as an HTML entity (`\&quot;`).
fn json_escape(s: &str) -> Option<(char, usize)> {
    let after = &s[1..];
    let unit = |t: &str| -> Option<u32> {
        let hex = t.strip_prefix(['u', 'U'])?.get(..4)?;
        hex_value(hex)
    };
    if let Some(u) = unit(after) {
        if (0xd800..0xdc00).contains(&u) {
            let low = after
                .get(5..)
                .and_then(|t| t.strip_prefix('\\'))
                .and_then(unit)?;
            let c = char::from_u32(0x10000 + ((u - 0xd800) << 10) + (low.checked_sub(0xdc00)?))?;
            return Some((c, 12));
        }
        return char::from_u32(u).map(|c| (c, 6));
    }
    let (c, len) = match after.chars().next()? {
        '&' => html_entity(after)?,
        c => (c, c.len_utf8()),
    };
    let c = match c {
        '"' | '\\' | '/' => c,
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'b' => '\u{8}',
        'f' => '\u{c}',
        _ => return None,
    };
    Some((c, 1 + len))
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#NN;`, `&#xHH;`.
fn html_entity(s: &str) -> Option<(char, usize)> {
    let end = s.bytes().take(12).position(|b| b == b';')?;
    let name = &s[1..end];
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => hex_value(hex)?,
                None if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
                    number.parse().ok()?
                }
                None => return None,
            };
            char::from_u32(code)?
        }
    };
    Some((c, end + 1))
}

/// The `xn--` form of each label of `value` that is not ASCII, as a DNS name carries it.
fn punycode_labels(value: &str) -> Vec<String> {
    if value.is_ascii() {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Ok(ascii) = idna::domain_to_ascii(value) {
        out.push(ascii);
    }
    for label in value.split('.').filter(|l| !l.is_ascii()) {
        if let Some(code) = idna::punycode::encode_str(&label.to_lowercase()) {
            out.push(format!("xn--{code}"));
        }
    }
    out.retain(|l| l.chars().count() >= MIN_VARIANT_CHARS && l != value);
    out
}

/// The base64 characters that depend only on `bytes`, for each of the three offsets at which
/// `bytes` can start inside a longer encoded text, in the standard and URL-safe alphabets.
fn base64_fragments(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for offset in 0..3usize {
        let mut padded = vec![0u8; offset];
        padded.extend_from_slice(bytes);
        let first_bit = 8 * offset;
        let end_bit = 8 * padded.len();
        // Character i covers bits 6i..6i+6: keep those that lie inside `bytes`.
        let first = first_bit.div_ceil(6);
        let last = end_bit / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = engine.encode(&padded);
            if let Some(fragment) = encoded.get(first..last)
                && fragment.len() >= MIN_VARIANT_CHARS
            {
                out.push(fragment.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "redact/tests.rs"]
mod tests;
