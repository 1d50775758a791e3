//! Hashtag recognition and normalization, consistent with [`super::tokenize`].
//!
//! A normalized hashtag is the word run after the `#`/`＃` prefix, lowercased
//! per character: `"#RustLang!"` and the entity tag `"RustLang"` both become
//! `"rustlang"`. [`extract_hashtags`] yields exactly the normalized forms of
//! the tokens for which [`is_hashtag_token`] holds.

use super::tokenize::{FULLWIDTH_HASH, is_word_continue, is_word_start, lowercase_into, tokens};

#[inline]
fn is_hash(c: char) -> bool {
    c == '#' || c == FULLWIDTH_HASH
}

/// Normalizes a raw hashtag (`"#Rust!"`, `"＃Rust"`, or an entity tag `"Rust"`)
/// to its lowercase form without prefix (`"rust"`).
///
/// Surrounding whitespace and any leading `#`/`＃` are stripped, the tag ends
/// at the first non-word character (so trailing punctuation is dropped), and
/// `None` is returned when nothing word-like remains.
pub fn normalize_hashtag(raw: &str) -> Option<String> {
    let mut out = String::new();
    normalize_hashtag_into(raw, &mut out).then_some(out)
}

/// [`normalize_hashtag`] appending to `out`; `false` (nothing appended) for `None`.
pub fn normalize_hashtag_into(raw: &str, out: &mut String) -> bool {
    if let Some(tag) = already_normal(raw) {
        out.push_str(tag);
        return true;
    }
    normalize_by_chars(raw, out)
}

/// The general case of [`normalize_hashtag_into`], a character at a time.
fn normalize_by_chars(raw: &str, out: &mut String) -> bool {
    let body = raw.trim().trim_start_matches(is_hash);
    let mut chars = body.char_indices();
    match chars.next() {
        Some((_, c)) if is_word_start(c) => {}
        _ => return false,
    }
    let end = chars
        .find(|&(_, c)| !is_word_continue(c))
        .map_or(body.len(), |(i, _)| i);
    out.reserve(end);
    lowercase_into(&body[..end], out);
    true
}

/// [`normalize_hashtag`] without copying when `raw` is `#` and an already normal tag (what
/// `tokenize` gives for most hashtags): the tag is then a slice of `raw`, else it is
/// written to `buf` (cleared first).
pub fn normalized_hashtag<'a>(raw: &'a str, buf: &'a mut String) -> Option<&'a str> {
    if let Some(tag) = already_normal(raw) {
        return Some(tag);
    }
    buf.clear();
    normalize_by_chars(raw, buf).then_some(buf.as_str())
}

/// `raw` without its `#` when the rest is lowercase ASCII letters, digits and `_`: then
/// that rest is the normal form (all are word characters, none changes when lowercased).
#[inline]
fn already_normal(raw: &str) -> Option<&str> {
    let body = raw.strip_prefix('#')?;
    let plain = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_';
    (!body.is_empty() && body.as_bytes().iter().all(plain)).then_some(body)
}

/// Normalizes a hashtag taken from tweet entities (`entities.hashtags[].tag` or `.text`):
/// the API already delimited it, and Twitter keeps some punctuation inside hashtags
/// (`col·legi`, `ラブライブ・サンシャイン`), so it is only trimmed, stripped of a leading
/// `#`/`＃` and lowercased per character, never cut at a non-word character. Whitespace
/// and hashes are stripped together (`"# #x"` is `x`), so a normalized tag normalizes to
/// itself.
pub fn normalize_entity_tag(raw: &str) -> Option<String> {
    let body = raw
        .trim_start_matches(|c: char| c.is_whitespace() || is_hash(c))
        .trim_end();
    if body.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(body.len());
    lowercase_into(body, &mut out);
    Some(out)
}

/// Is `tok` a hashtag token: a `#`/`＃` prefix followed by a word character?
pub fn is_hashtag_token(tok: &str) -> bool {
    match tok.as_bytes() {
        // `#` and an ASCII character: no decoding (the common case).
        [b'#', b, ..] if b.is_ascii() => is_word_start(char::from(*b)),
        // `#` or the first byte of `＃` (most tokens are neither).
        [b'#' | 0xEF, ..] => {
            let mut chars = tok.chars();
            matches!(chars.next(), Some(c) if is_hash(c)) && chars.next().is_some_and(is_word_start)
        }
        _ => false,
    }
}

/// Calls `f` with each normalized hashtag of `text`, in order of appearance
/// (duplicates included).
pub fn for_each_hashtag(text: &str, mut f: impl FnMut(String)) {
    for tok in tokens(text) {
        if is_hashtag_token(tok)
            && let Some(tag) = normalize_hashtag(tok)
        {
            f(tag);
        }
    }
}

/// Normalized hashtags of `text`, in order of appearance (duplicates included).
pub fn extract_hashtags(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_hashtag(text, |t| out.push(t));
    out
}

#[cfg(test)]
mod tests {
    use super::super::tokenize::tokenize;
    use super::*;

    #[test]
    fn normalize_basic() {
        assert_eq!(normalize_hashtag("#Rust").as_deref(), Some("rust"));
        assert_eq!(normalize_hashtag("Rust").as_deref(), Some("rust"));
        assert_eq!(
            normalize_hashtag("#RustLang!!").as_deref(),
            Some("rustlang")
        );
        assert_eq!(normalize_hashtag("＃Ｒｕｓｔ").as_deref(), Some("ｒｕｓｔ"));
        assert_eq!(normalize_hashtag("＃rust").as_deref(), Some("rust"));
        assert_eq!(normalize_hashtag("  #spaced  ").as_deref(), Some("spaced"));
        assert_eq!(normalize_hashtag("##double").as_deref(), Some("double"));
        assert_eq!(
            normalize_hashtag("#parsingJSON").as_deref(),
            Some("parsingjson")
        );
        assert_eq!(
            normalize_hashtag("#MondayMotivation").as_deref(),
            Some("mondaymotivation")
        );
        assert_eq!(normalize_hashtag("#Ünïcödé").as_deref(), Some("ünïcödé"));
        assert_eq!(normalize_hashtag("#日本").as_deref(), Some("日本"));
        assert_eq!(
            normalize_hashtag("#snake_case_1").as_deref(),
            Some("snake_case_1")
        );
        assert_eq!(normalize_hashtag("#a-b").as_deref(), Some("a"));
        assert_eq!(normalize_hashtag("#2024").as_deref(), Some("2024"));
    }

    #[test]
    fn the_no_copy_path_agrees_with_the_general_one() {
        let cases = [
            "#rust",
            "#rust_2024",
            "#_",
            "#9",
            "#",
            "#Rust",
            "#rust!",
            "#rust ",
            " #rust",
            "##rust",
            "＃rust",
            "#ruSt",
            "#über",
            "#a-b",
            "rust",
            "#a\u{301}",
        ];
        for raw in cases {
            let mut general = String::new();
            let ok = normalize_by_chars(raw, &mut general);
            let mut buf = String::new();
            assert_eq!(
                normalized_hashtag(raw, &mut buf),
                ok.then_some(general.as_str()),
                "{raw:?}"
            );
            if let Some(tag) = already_normal(raw) {
                assert_eq!(tag, general, "{raw:?}");
            }
        }
        assert_eq!(already_normal("#rust_2024"), Some("rust_2024"));
        assert_eq!(already_normal("#Rust"), None);
    }

    proptest::proptest! {
        #[test]
        fn the_no_copy_path_agrees_on_any_token(raw in "[#＃]?[a-zA-Z0-9_!é ]{0,12}") {
            let mut general = String::new();
            let ok = normalize_by_chars(&raw, &mut general);
            let mut buf = String::new();
            proptest::prop_assert_eq!(normalized_hashtag(&raw, &mut buf), ok.then_some(general.as_str()));
        }
    }

    #[test]
    fn normalize_rejects_empty() {
        for raw in [
            "", "#", "＃", "##", "  ", "#!", "#.rust", "!", "#\u{301}", "@bob",
        ] {
            assert_eq!(normalize_hashtag(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn normalize_is_idempotent() {
        for raw in ["#Rust", "ΟΔΟΣ", "İstanbul", "#straße", "#ǅemal", "#Ⅻ"] {
            let once = normalize_hashtag(raw).unwrap();
            assert_eq!(normalize_hashtag(&once).as_deref(), Some(once.as_str()));
        }
    }

    #[test]
    fn hashtag_token_predicate() {
        assert!(is_hashtag_token("#rust"));
        assert!(is_hashtag_token("＃rust"));
        assert!(is_hashtag_token("#_"));
        assert!(!is_hashtag_token("#"));
        assert!(!is_hashtag_token("@rust"));
        assert!(!is_hashtag_token("rust"));
        assert!(!is_hashtag_token("#!"));
        assert!(!is_hashtag_token(""));
        assert!(is_hashtag_token("#9"));
        assert!(is_hashtag_token("#été"));
        assert!(is_hashtag_token("＃日本"));
        assert!(!is_hashtag_token("＃!"));
        assert!(!is_hashtag_token("#\u{2014}x"));
    }

    proptest::proptest! {
        #[test]
        fn hashtag_token_is_hash_then_word_start(tok in "[#＃a!_é日\u{2014} ]{0,4}") {
            let mut chars = tok.chars();
            let reference = matches!(chars.next(), Some(c) if is_hash(c))
                && chars.next().is_some_and(is_word_start);
            proptest::prop_assert_eq!(is_hashtag_token(&tok), reference);
        }
    }

    #[test]
    fn extract_from_text() {
        assert_eq!(
            extract_hashtags("Shipping a new #rustlang stream processor today #dataengineering"),
            ["rustlang", "dataengineering"]
        );
        assert_eq!(
            extract_hashtags("#A, #b! and #A again; not a#c or https://x.org/#d"),
            ["a", "b", "a"]
        );
        assert!(extract_hashtags("no tags # here @user").is_empty());
        assert_eq!(extract_hashtags("＃全角 #日本"), ["全角", "日本"]);
    }

    /// Extraction agrees with tokenize (both lowercase modes) + normalize.
    #[test]
    fn agrees_with_tokenize() {
        let texts = [
            "Hello #World, this is #Rust! @bob #",
            "##x #y#z a#b #ΟΔΟΣ #İstanbul ＃Full",
            "https://t.co/x #after_url #2024 #_under",
            "Zero-copy parsing of #json with #rustlang is fun https://t.co/AbCdEf1234",
            "नमस्ते #नमस्ते #café👍 #e\u{301}",
        ];
        for text in texts {
            let expected = extract_hashtags(text);
            for lowercase in [false, true] {
                let mut got = Vec::new();
                tokenize(text, lowercase, |t| {
                    if is_hashtag_token(t) {
                        got.push(normalize_hashtag(t).unwrap());
                    }
                });
                assert_eq!(got, expected, "{text:?} lowercase={lowercase}");
            }
        }
    }
}
