//! Fast, allocation-free word tokenizer for tweet text.
//!
//! A token is a maximal run of word characters (letters and digits of any
//! script, `_`, and combining marks inside a word), optionally preceded by a
//! `#` (or fullwidth `＃`) or `@` prefix when that prefix is not itself glued
//! to the end of a previous word (`a#b` gives `a`, `b`; `x #b` gives `x`, `#b`).
//! Everything else (punctuation, symbols, emoji, whitespace) separates tokens
//! and is dropped. `http://` / `https://` URLs are skipped up to the next
//! whitespace. Apostrophes split words (`don't` gives `don`, `t`).
//!
//! Raw tokens are `&str` slices of the input; lowercasing reuses one buffer and
//! skips copying for tokens that are already lowercase ASCII.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Options for [`tokenize_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizeOptions {
    /// Lowercase tokens (Unicode-aware, per character). Default `true`.
    pub lowercase: bool,
}

impl Default for TokenizeOptions {
    fn default() -> Self {
        Self { lowercase: true }
    }
}

const SEP: u8 = 0;
const WORD: u8 = 1;
const PREFIX: u8 = 2;
const HIGH: u8 = 3;

/// Classification of every byte value; non-ASCII lead/continuation bytes are `HIGH`.
static CLASS: [u8; 256] = {
    let mut t = [SEP; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b >= 0x80 {
            HIGH
        } else if b.is_ascii_alphanumeric() || b == b'_' {
            WORD
        } else if b == b'#' || b == b'@' {
            PREFIX
        } else {
            SEP
        };
        i += 1;
    }
    t
};

/// Fullwidth number sign, accepted as a hashtag prefix.
pub const FULLWIDTH_HASH: char = '\u{FF03}';

/// Can `c` start a word? Letters and digits of any script, and `_`.
#[inline]
pub fn is_word_start(c: char) -> bool {
    match c as u32 {
        0..=0x7F => c.is_ascii_alphanumeric() || c == '_',
        // Fast paths for common scripts (checked exhaustively against std in tests).
        0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x24F | 0x410..=0x44F => true,
        0x3041..=0x3096 | 0x30A1..=0x30FA | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3 => true,
        0x2000..=0x206F | 0x3000..=0x3004 | 0x1F300..=0x1F5FF | 0x1F600..=0x1F64F => false,
        _ => c.is_alphanumeric(),
    }
}

/// Can `c` continue a word? Word starts plus (approximately) combining marks
/// and joiners, so that e.g. Devanagari viramas do not split words.
#[inline]
pub fn is_word_continue(c: char) -> bool {
    is_word_start(c) || (!c.is_ascii() && is_combining_approx(c))
}

/// Approximate test for combining marks (general category M) and the
/// zero-width (non-)joiner, covering the scripts where they occur inside
/// ordinary words. Only consulted for non-alphanumeric, non-ASCII chars.
fn is_combining_approx(c: char) -> bool {
    let u = c as u32;
    matches!(
        u,
        0x0300..=0x036F
            | 0x0483..=0x0489
            | 0x0591..=0x05BD
            | 0x05BF
            | 0x05C1..=0x05C2
            | 0x05C4..=0x05C5
            | 0x05C7
            | 0x0610..=0x061A
            | 0x064B..=0x065F
            | 0x0670
            | 0x06D6..=0x06DC
            | 0x06DF..=0x06E4
            | 0x06E7..=0x06E8
            | 0x06EA..=0x06ED
            | 0x0E31
            | 0x0E34..=0x0E3A
            | 0x0E47..=0x0E4E
            | 0x0EB1
            | 0x0EB4..=0x0EBC
            | 0x0EC8..=0x0ECE
            | 0x0F71..=0x0F84
            | 0x0F86..=0x0F87
            | 0x0F8D..=0x0FBC
            | 0x102B..=0x103E
            | 0x1056..=0x109D
            | 0x17B4..=0x17D3
            | 0x1AB0..=0x1AFF
            | 0x1DC0..=0x1DFF
            | 0x200C..=0x200D
            | 0x20D0..=0x20F0
            | 0x3099..=0x309A
            | 0xFE20..=0xFE2F
    ) || (matches!(u, 0x0900..=0x0DFF) && !matches!(u, 0x0964 | 0x0965 | 0x0970 | 0x0DF4))
}

/// Iterator over the byte ranges of the tokens of a text.
#[derive(Debug, Clone)]
pub struct TokenSpans<'a> {
    text: &'a str,
    pos: usize,
    /// The char just before `pos` is a word char (a token just ended there).
    after_word: bool,
    /// The text is pure ASCII: the byte classes alone decide (the fast path).
    ascii: bool,
}

/// Byte ranges (into `text`) of all tokens, in order.
pub fn token_spans(text: &str) -> TokenSpans<'_> {
    TokenSpans {
        text,
        pos: 0,
        after_word: false,
        ascii: text.is_ascii(),
    }
}

/// [`token_spans`] of a piece of a text, by the path the whole text takes (the ASCII fast
/// path when `text_is_ascii`).
pub(crate) fn token_spans_as(piece: &str, text_is_ascii: bool) -> TokenSpans<'_> {
    TokenSpans {
        text: piece,
        pos: 0,
        after_word: false,
        ascii: text_is_ascii,
    }
}

/// Raw (not lowercased) tokens as slices of `text`.
pub fn tokens(text: &str) -> impl Iterator<Item = &str> + '_ {
    token_spans(text).filter_map(move |r| text.get(r))
}

impl TokenSpans<'_> {
    #[inline]
    fn char_at(&self, i: usize) -> Option<char> {
        self.text.get(i..).and_then(|s| s.chars().next())
    }

    /// Length in bytes of the word-start char at `i`, if there is one.
    #[inline]
    fn word_start_len(&self, i: usize) -> Option<usize> {
        let b = *self.text.as_bytes().get(i)?;
        match CLASS[b as usize] {
            WORD => Some(1),
            HIGH => self
                .char_at(i)
                .filter(|&c| is_word_start(c))
                .map(char::len_utf8),
            _ => None,
        }
    }

    /// End of the word run starting at `i` (which must be a char boundary).
    #[inline]
    fn scan_word(&self, mut i: usize) -> usize {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(i) {
            match CLASS[b as usize] {
                WORD => i += 1,
                HIGH => match self.char_at(i) {
                    Some(c) if is_word_continue(c) => i += c.len_utf8(),
                    _ => break,
                },
                _ => break,
            }
        }
        i
    }

    /// Index of the next whitespace char at or after `i` (or the end).
    fn skip_to_whitespace(&self, mut i: usize) -> usize {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(i) {
            if b < 0x80 {
                if b.is_ascii_whitespace() {
                    break;
                }
                i += 1;
            } else {
                match self.char_at(i) {
                    Some(c) if c.is_whitespace() => break,
                    Some(c) => i += c.len_utf8(),
                    None => break,
                }
            }
        }
        i
    }

    #[inline(always)]
    fn is_url_scheme(&self, start: usize, end: usize) -> bool {
        if !matches!(end - start, 4 | 5) || !self.text.as_bytes()[start].eq_ignore_ascii_case(&b'h')
        {
            return false;
        }
        let word = &self.text.as_bytes()[start..end];
        (word.eq_ignore_ascii_case(b"http") || word.eq_ignore_ascii_case(b"https"))
            && self.text.as_bytes()[end..].starts_with(b"://")
    }
}

impl TokenSpans<'_> {
    /// `next` for pure-ASCII text: no char decoding, one table lookup per byte.
    #[inline(always)]
    fn next_ascii(&mut self) -> Option<Range<usize>> {
        let bytes = self.text.as_bytes();
        let n = bytes.len();
        let is_word = |i: usize| i < n && CLASS[bytes[i] as usize] == WORD;
        let mut i = self.pos;
        while i < n {
            let (start, word) = match CLASS[bytes[i] as usize] {
                WORD => (i, i),
                PREFIX if !self.after_word && is_word(i + 1) => (i, i + 1),
                _ => {
                    i += 1;
                    self.after_word = false;
                    continue;
                }
            };
            let mut end = word + 1;
            while is_word(end) {
                end += 1;
            }
            if start == word && self.is_url_scheme(start, end) {
                i = end;
                while i < n && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                self.after_word = false;
                continue;
            }
            self.pos = end;
            self.after_word = true;
            return Some(start..end);
        }
        self.pos = n;
        None
    }
}

impl Iterator for TokenSpans<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.ascii {
            return self.next_ascii();
        }
        let bytes = self.text.as_bytes();
        let mut i = self.pos;
        while let Some(&b) = bytes.get(i) {
            let class = CLASS[b as usize];
            // (token start, where the word run begins)
            let start = match class {
                WORD => Some((i, i)),
                PREFIX if !self.after_word => self.word_start_len(i + 1).map(|_| (i, i + 1)),
                HIGH => match self.char_at(i) {
                    Some(c) if is_word_start(c) => Some((i, i)),
                    Some(FULLWIDTH_HASH) if !self.after_word => {
                        let w = i + FULLWIDTH_HASH.len_utf8();
                        self.word_start_len(w).map(|_| (i, w))
                    }
                    _ => None,
                },
                _ => None,
            };
            match start {
                Some((start, word)) => {
                    let end = self.scan_word(word);
                    if start == word && self.is_url_scheme(start, end) {
                        i = self.skip_to_whitespace(end);
                        self.after_word = false;
                        continue;
                    }
                    self.pos = end;
                    self.after_word = true;
                    return Some(start..end);
                }
                None => {
                    i += match class {
                        HIGH => self.char_at(i).map_or(1, char::len_utf8),
                        _ => 1,
                    };
                    self.after_word = false;
                }
            }
        }
        self.pos = bytes.len();
        None
    }
}

/// Appends the per-character Unicode lowercase of `s` to `out`.
///
/// Per-character (no final-sigma context) so that it is idempotent and every
/// component of this crate lowercases identically.
#[inline]
pub fn lowercase_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        out.push_str(s);
        let start = out.len() - s.len();
        out[start..].make_ascii_lowercase();
    } else {
        out.reserve(s.len());
        for c in s.chars() {
            push_lowercase(c, out);
        }
    }
}

/// Pushes the Unicode lowercase of `c`, with fast paths for common scripts
/// (checked exhaustively against `char::to_lowercase` in tests).
#[inline]
fn push_lowercase(c: char, out: &mut String) {
    let u = c as u32;
    let shift = match u {
        0..=0x7F => {
            out.push(c.to_ascii_lowercase());
            return;
        }
        0xC0..=0xD6 | 0xD8..=0xDE | 0x391..=0x3A1 | 0x3A3..=0x3AB | 0x410..=0x42F => 0x20,
        0x400..=0x40F => 0x50,
        0xDF..=0xFF | 0x3AC..=0x3CE | 0x430..=0x45F | 0x3041..=0x30FF | 0x4E00..=0x9FFF => 0,
        0xAC00..=0xD7A3 => 0,
        _ => {
            out.extend(c.to_lowercase());
            return;
        }
    };
    match char::from_u32(u + shift) {
        Some(lower) => out.push(lower),
        None => out.extend(c.to_lowercase()),
    }
}

/// Per-character Unicode lowercase of `s` as a new `String`.
pub fn to_lowercase(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    lowercase_into(s, &mut out);
    out
}

#[inline]
fn needs_lowercasing(s: &str) -> bool {
    s.bytes().any(|b| b >= 0x80 || b.is_ascii_uppercase())
}

/// Calls `f` with every token of `text`, lowercased if `lowercase`.
///
/// Does not allocate when `lowercase` is false or tokens are already
/// lowercase ASCII; otherwise one buffer is reused for the whole text.
pub fn tokenize(text: &str, lowercase: bool, f: impl FnMut(&str)) {
    tokenize_reusing(text, lowercase, &mut String::new(), f);
}

/// [`tokenize`] with a caller's buffer for lowercasing, reused across texts.
pub fn tokenize_reusing(text: &str, lowercase: bool, buf: &mut String, mut f: impl FnMut(&str)) {
    let mut spans = token_spans(text);
    if spans.ascii {
        // The common case, in one loop (the same scanner, inlined).
        while let Some(r) = spans.next_ascii() {
            let tok = &text[r];
            if lowercase && tok.bytes().any(|b| b.is_ascii_uppercase()) {
                buf.clear();
                buf.push_str(tok);
                buf.make_ascii_lowercase();
                f(buf);
            } else {
                f(tok);
            }
        }
        return;
    }
    for tok in tokens(text) {
        emit_token(tok, lowercase, buf, &mut f);
    }
}

/// Calls `f` with `tok`, lowercased into `buf` if `lowercase` and it needs it.
#[inline]
pub(crate) fn emit_token(tok: &str, lowercase: bool, buf: &mut String, f: &mut impl FnMut(&str)) {
    if lowercase && needs_lowercasing(tok) {
        buf.clear();
        lowercase_into(tok, buf);
        f(buf);
    } else {
        f(tok);
    }
}

/// [`tokenize`] driven by [`TokenizeOptions`].
pub fn tokenize_with(text: &str, opts: &TokenizeOptions, f: impl FnMut(&str)) {
    tokenize(text, opts.lowercase, f);
}

/// Convenience: all tokens as owned strings (allocates; for tests and tools).
pub fn tokenize_to_vec(text: &str, lowercase: bool) -> Vec<String> {
    let mut out = Vec::new();
    tokenize(text, lowercase, |t| out.push(t.to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lower(text: &str) -> Vec<String> {
        tokenize_to_vec(text, true)
    }

    fn raw(text: &str) -> Vec<String> {
        tokenize_to_vec(text, false)
    }

    #[test]
    fn basic_words_and_punctuation() {
        assert_eq!(lower("Hello, World!"), ["hello", "world"]);
        assert_eq!(raw("Hello, World!"), ["Hello", "World"]);
        assert_eq!(lower("  a  b\tc\nd\r\n"), ["a", "b", "c", "d"]);
        assert_eq!(
            lower("snake_case and x2 42"),
            ["snake_case", "and", "x2", "42"]
        );
        assert_eq!(lower("don't"), ["don", "t"]);
        assert_eq!(lower("zero-copy"), ["zero", "copy"]);
    }

    #[test]
    fn empty_and_punctuation_only() {
        assert!(lower("").is_empty());
        assert!(lower("   ").is_empty());
        assert!(lower("!!! ... ,;: -- ()").is_empty());
        assert!(lower("# @ ## @@ #! @, ＃").is_empty());
        assert!(lower("👍🎉 ✨").is_empty());
    }

    #[test]
    fn hashtags_and_mentions() {
        assert_eq!(lower("#Rust!"), ["#rust"]);
        assert_eq!(raw("#Rust!"), ["#Rust"]);
        assert_eq!(lower("@bob,"), ["@bob"]);
        assert_eq!(
            lower("hi @Bob_99: see #RustLang."),
            ["hi", "@bob_99", "see", "#rustlang"]
        );
        assert_eq!(lower("##double"), ["#double"]);
        assert_eq!(lower("#@x"), ["@x"]);
        assert_eq!(lower("(#tag)"), ["#tag"]);
        assert_eq!(lower("#日本語"), ["#日本語"]);
        assert_eq!(lower("＃Fullwidth"), ["＃fullwidth"]);
    }

    #[test]
    fn prefix_glued_to_word_is_not_a_prefix() {
        assert_eq!(lower("a#b"), ["a", "b"]);
        assert_eq!(lower("#a#b"), ["#a", "b"]);
        assert_eq!(lower("bob@example.com"), ["bob", "example", "com"]);
        assert_eq!(lower("é#x"), ["é", "x"]);
        assert_eq!(lower("a!#b"), ["a", "#b"]);
    }

    #[test]
    fn urls_are_skipped() {
        assert_eq!(lower("see https://t.co/AbC123 now"), ["see", "now"]);
        assert_eq!(lower("HTTP://x.org/#frag"), Vec::<String>::new());
        assert_eq!(lower("http: not a url"), ["http", "not", "a", "url"]);
        assert_eq!(lower("https"), ["https"]);
        assert_eq!(lower("x https://a.b\u{3000}y"), ["x", "y"]);
        assert_eq!(lower("ftp://a.b"), ["ftp", "a", "b"]);
    }

    #[test]
    fn unicode_scripts() {
        assert_eq!(lower("Привет, МИР!"), ["привет", "мир"]);
        assert_eq!(lower("Ünïcödé ÄÖÜ straße"), ["ünïcödé", "äöü", "straße"]);
        assert_eq!(lower("日本語のテキスト。次"), ["日本語のテキスト", "次"]);
        assert_eq!(lower("नमस्ते दुनिया।"), ["नमस्ते", "दुनिया"]);
        assert_eq!(lower("مرحبا بالعالم"), ["مرحبا", "بالعالم"]);
        assert_eq!(lower("e\u{301}te\u{301}"), ["e\u{301}te\u{301}"]);
        assert_eq!(lower("١٢٣ ٤"), ["١٢٣", "٤"]);
        // A combining mark cannot start a token.
        assert!(lower("\u{301}\u{200D}").is_empty());
        assert_eq!(lower("café👍bar"), ["café", "bar"]);
    }

    #[test]
    fn final_sigma_is_lowercased_per_char() {
        assert_eq!(lower("ΟΔΟΣ"), ["οδοσ"]);
        assert_eq!(to_lowercase("ΟΔΟΣ"), "οδοσ");
        assert_eq!(to_lowercase(&to_lowercase("İx")), to_lowercase("İx"));
    }

    #[test]
    fn fast_paths_agree_with_std_for_every_char() {
        let mut buf = String::new();
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            assert_eq!(is_word_start(c), c == '_' || c.is_alphanumeric(), "{c:?}");
            buf.clear();
            push_lowercase(c, &mut buf);
            assert!(buf.chars().eq(c.to_lowercase()), "{c:?}");
        }
    }

    #[test]
    fn raw_tokens_borrow_from_input() {
        let text = "Some #Text here";
        for tok in tokens(text) {
            let start = tok.as_ptr() as usize - text.as_ptr() as usize;
            assert_eq!(&text[start..start + tok.len()], tok);
        }
        let spans: Vec<_> = token_spans(text).collect();
        assert_eq!(spans, vec![0..4, 5..10, 11..15]);
    }

    #[test]
    fn lowercase_fast_path_is_identity_for_lower_ascii() {
        let text = "already lower ascii";
        let mut ptrs = Vec::new();
        tokenize(text, true, |t| ptrs.push(t.as_ptr()));
        let raw_ptrs: Vec<_> = tokens(text).map(str::as_ptr).collect();
        assert_eq!(ptrs, raw_ptrs);
    }

    #[test]
    fn options_deserialize() {
        let o: TokenizeOptions = serde_json::from_str("{}").unwrap();
        assert!(o.lowercase);
        assert_eq!(TokenizeOptions::default(), o);
        let o: TokenizeOptions = serde_json::from_str(r#"{"lowercase":false}"#).unwrap();
        assert!(!o.lowercase);
        assert!(serde_json::from_str::<TokenizeOptions>(r#"{"lower":false}"#).is_err());
        let mut out = Vec::new();
        tokenize_with("A b", &o, |t| out.push(t.to_owned()));
        assert_eq!(out, ["A", "b"]);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "#",
            "@",
            "＃",
            "#\u{301}",
            "a\u{301}#",
            "http://",
            "https://",
            "\u{FEFF}x",
            "x\u{0}y",
            "🏳️‍🌈#pride",
            "#_",
            "@_",
            "\u{10FFFF}",
            "a\u{200D}b",
        ];
        for s in samples {
            let spans: Vec<_> = token_spans(s).collect();
            for r in spans {
                assert!(s.get(r.clone()).is_some(), "bad span {r:?} in {s:?}");
            }
            let _ = lower(s);
        }
        assert_eq!(lower("🏳️‍🌈#pride"), ["#pride"]);
        assert_eq!(lower("a\u{200D}b"), ["a\u{200D}b"]);
    }

    #[test]
    fn tokens_are_nonempty_and_word_like() {
        let text = "Mixed: #Tags, @users; émoji 🎉 and URLs https://x.y/z?q=1#f ok_1 — done…";
        for tok in tokens(text) {
            let body = tok.trim_start_matches(['#', '@', FULLWIDTH_HASH]);
            assert!(!body.is_empty());
            let mut chars = body.chars();
            assert!(chars.next().is_some_and(is_word_start));
            assert!(chars.all(is_word_continue));
        }
    }

    /// `cargo test --release --lib -- --ignored --nocapture tokenize_speed`
    #[test]
    #[ignore]
    fn tokenize_speed() {
        let texts = [
            "bar ran ba #veban stix pean tis four ba pex ba bal bax gubas zus",
            "Shipping a new #rustlang stream processor today #dataengineering",
            "RT @ferris_dev: Zero-copy parsing of #json with #RustLang is fun https://t.co/AbCdEf1234",
            "Morning coffee and a 1% sample of the world #MondayMotivation ☕️",
            "Ünïcödé straße and Привет МИР, mixed with ASCII words and #Tags!",
            "just setting up my twttr",
            "lol that was SO good 😂😂 can't wait for next week @friend",
            "日本語のテキストと #ハッシュタグ を含むツイート",
        ];
        for lowercase in [true, false] {
            let rounds = 250_000;
            let start = std::time::Instant::now();
            let mut count = 0usize;
            for _ in 0..rounds {
                for text in &texts {
                    tokenize(std::hint::black_box(text), lowercase, |t| {
                        count += t.len();
                    });
                }
            }
            let secs = start.elapsed().as_secs_f64();
            let n = (rounds * texts.len()) as f64;
            println!(
                "tokenize(lowercase={lowercase}): {:.2} M tweets/s, {:.0} ns/tweet ({count})",
                n / secs / 1e6,
                secs * 1e9 / n
            );
        }
    }

    proptest::proptest! {
        /// The ASCII fast path splits exactly like the general (Unicode) path.
        #[test]
        fn ascii_fast_path_matches_general_path(text in "[ -~\t\n]{0,80}") {
            let fast: Vec<_> = token_spans(&text).collect();
            let general: Vec<_> = TokenSpans { ascii: false, ..token_spans(&text) }.collect();
            proptest::prop_assert_eq!(fast, general);
        }

        /// `tokenize`'s loop for ASCII text gives the tokens, lowercased as everywhere.
        #[test]
        fn tokenize_of_ascii_text_is_the_tokens_lowercased(text in "[ -~\t\n]{0,80}") {
            let general: Vec<String> = tokens(&text).map(to_lowercase).collect();
            proptest::prop_assert_eq!(tokenize_to_vec(&text, true), general);
            let raw: Vec<String> = tokens(&text).map(str::to_string).collect();
            proptest::prop_assert_eq!(tokenize_to_vec(&text, false), raw);
        }

        #[test]
        fn ascii_fast_path_matches_on_url_and_prefix_heavy_text(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("http://x.co/a#b".to_string()),
                    proptest::strategy::Just("HTTPS://".to_string()),
                    proptest::strategy::Just("##".to_string()),
                    proptest::strategy::Just("@_".to_string()),
                    "[#@a-zA-Z0-9_:/. ,']{1,6}",
                ],
                0..12,
            )
        ) {
            let text = parts.concat();
            let fast: Vec<_> = token_spans(&text).collect();
            let general: Vec<_> = TokenSpans { ascii: false, ..token_spans(&text) }.collect();
            proptest::prop_assert_eq!(fast, general);
        }
    }
}
