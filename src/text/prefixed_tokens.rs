//! The tokens of a text that start with one of a few characters (`#`/`＃` for hashtags),
//! found without tokenizing the rest of the text.
//!
//! The tokenizer restarts at every ASCII whitespace byte: no token and no skipped URL
//! crosses one, and after one the tokenizer is back in its initial state. So the tokens of
//! a text are the tokens of its whitespace-separated pieces, in order, and only the pieces
//! holding a candidate byte (the first UTF-8 byte of one of the characters) need
//! tokenizing. `memchr` finds those bytes; tweets hold about one `#` per 100 bytes.

use super::tokenize::{emit_token, token_spans_as};

/// Bytes after which the tokenizer is in its initial state: the ASCII whitespace that
/// ends a URL (`\x0B` does not).
#[inline]
fn is_restart(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0C)
}

/// Finds the tokens that start with one of a set of characters.
#[derive(Clone, Debug)]
pub struct PrefixedTokens {
    chars: &'static [char],
    /// The distinct first UTF-8 bytes of `chars` (1 to 3 of them).
    bytes: Vec<u8>,
    lowercase: bool,
}

impl PrefixedTokens {
    /// A finder for the tokens (lowercased if `lowercase`) that start with one of `chars`.
    /// `None` when searching cannot be faster than tokenizing everything: no characters,
    /// more than three distinct first bytes, or, when lowercasing, a character that a
    /// token starting with another one could turn into (a cased character).
    pub fn new(chars: &'static [char], lowercase: bool) -> Option<Self> {
        let mut bytes = Vec::new();
        for &c in chars {
            let mut utf8 = [0; 4];
            let first = c.encode_utf8(&mut utf8).as_bytes()[0];
            if !bytes.contains(&first) {
                bytes.push(first);
            }
            let uncased = !c.is_lowercase() && c.to_lowercase().eq([c]);
            if lowercase && !uncased {
                return None;
            }
        }
        (1..=3).contains(&bytes.len()).then_some(PrefixedTokens {
            chars,
            bytes,
            lowercase,
        })
    }

    /// The next candidate byte at or after `from`.
    #[inline]
    fn next_candidate(&self, hay: &[u8], from: usize) -> Option<usize> {
        let rest = hay.get(from..)?;
        match *self.bytes.as_slice() {
            [a] => memchr::memchr(a, rest),
            [a, b] => memchr::memchr2(a, b, rest),
            [a, b, c] => memchr::memchr3(a, b, c, rest),
            _ => Some(0),
        }
        .map(|i| from + i)
    }

    /// Calls `f` with each token of `text` that starts with one of the characters, in
    /// order: exactly those of [`super::tokenize::tokenize_reusing`] (lowercased alike,
    /// through `buf`).
    pub fn for_each(&self, text: &str, buf: &mut String, f: impl FnMut(&str)) {
        self.for_each_joined(text, &[text.len()], buf, f);
    }

    /// [`Self::for_each`] over several texts stored one after another in `joined`, text
    /// `k` ending at `ends[k]` (a [`crate::data::columns::StrColumn`]): one search over all of
    /// them, the texts' tokens in order.
    pub fn for_each_joined(
        &self,
        joined: &str,
        ends: &[usize],
        buf: &mut String,
        mut f: impl FnMut(&str),
    ) {
        let bytes = joined.as_bytes();
        // The text being searched: its index, start, and whether it is all ASCII.
        let (mut k, mut text_start, mut ascii) = (0, 0, None);
        let mut from = 0;
        while let Some(at) = self.next_candidate(bytes, from) {
            while ends.get(k).is_some_and(|&end| end <= at) {
                text_start = ends[k];
                k += 1;
                ascii = None;
            }
            let Some(text) = ends.get(k).and_then(|&end| joined.get(text_start..end)) else {
                break;
            };
            let ascii = *ascii.get_or_insert_with(|| text.is_ascii());
            let end = self.piece_at(
                text,
                ascii,
                from.max(text_start) - text_start,
                at - text_start,
                buf,
                &mut f,
            );
            from = text_start + (end + 1).min(text.len());
        }
    }

    /// Tokenizes the piece of `text` around the candidate byte `at` (searching back no
    /// further than `from`) and gives `f` its tokens that start with one of the
    /// characters; returns where the piece ends.
    #[inline]
    fn piece_at(
        &self,
        text: &str,
        ascii: bool,
        from: usize,
        at: usize,
        buf: &mut String,
        f: &mut impl FnMut(&str),
    ) -> usize {
        let bytes = text.as_bytes();
        let start = bytes[from..at]
            .iter()
            .rposition(|&b| is_restart(b))
            .map_or(from, |i| from + i + 1);
        let end = bytes[at..]
            .iter()
            .position(|&b| is_restart(b))
            .map_or(bytes.len(), |i| at + i);
        // Both ends are next to ASCII bytes (or the text's ends), so on char boundaries.
        if let Some(piece) = text.get(start..end) {
            for span in token_spans_as(piece, ascii) {
                let tok = &piece[span];
                if tok.chars().next().is_some_and(|c| self.chars.contains(&c)) {
                    emit_token(tok, self.lowercase, buf, f);
                }
            }
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tokenize::{FULLWIDTH_HASH, tokenize_reusing};

    const HASH: &[char] = &['#', FULLWIDTH_HASH];

    /// The tokens `p` finds, and the reference: tokenize all of `text`, keep the tokens
    /// that start with one of the characters.
    fn both(p: &PrefixedTokens, text: &str) -> (Vec<String>, Vec<String>) {
        let mut fast = Vec::new();
        p.for_each(text, &mut String::new(), |t| fast.push(t.to_string()));
        let mut slow = Vec::new();
        tokenize_reusing(text, false, &mut String::new(), |tok| {
            if tok.starts_with(p.chars) {
                emit_token(tok, p.lowercase, &mut String::new(), &mut |t: &str| {
                    slow.push(t.to_string())
                });
            }
        });
        (fast, slow)
    }

    #[test]
    fn finds_hashtag_tokens_only() {
        let p = PrefixedTokens::new(HASH, true).unwrap_or_else(|| panic!("searchable"));
        let (fast, slow) = both(&p, "Go #Rust! a#b ##x https://t.co/#no ＃Ünï\t#end\n@c #");
        assert_eq!(fast, ["#rust", "#x", "＃ünï", "#end"]);
        assert_eq!(fast, slow);
        // `\x0B` does not end a URL (nor restart the search), ASCII text or not.
        for text in ["http://a\x0B#no #yes", "é http://a\x0B#no #yes"] {
            assert_eq!(both(&p, text), (vec!["#yes".into()], vec!["#yes".into()]));
        }
    }

    #[test]
    fn cased_or_too_many_characters_are_not_searched() {
        assert!(PrefixedTokens::new(&['a'], true).is_none());
        assert!(PrefixedTokens::new(&['a'], false).is_some());
        assert!(PrefixedTokens::new(&['\u{1C5}'], true).is_none());
        assert!(PrefixedTokens::new(&[], true).is_none());
        assert!(PrefixedTokens::new(&['#', '@', '$', '%'], true).is_none());
        assert!(PrefixedTokens::new(&['#', '@', '＃'], true).is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// On text dense in prefixes, URLs, marks and every kind of whitespace, the search
        /// finds exactly the tokens tokenizing finds.
        #[test]
        fn search_matches_tokenizing(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("http://x.co/a#b".to_string()),
                    proptest::strategy::Just("HTTPS://".to_string()),
                    proptest::strategy::Just("＃".to_string()),
                    proptest::strategy::Just("\u{301}".to_string()),
                    proptest::strategy::Just("\u{0B}".to_string()),
                    proptest::strategy::Just("\u{3000}".to_string()),
                    proptest::strategy::Just("ÉtÉ".to_string()),
                    "[#@a-zA-Z0-9_:/. ,'\t\n\r]{1,6}",
                    "\\PC{1,3}",
                ],
                0..16,
            ),
            lowercase in proptest::bool::ANY,
        ) {
            let text = parts.concat();
            let p = PrefixedTokens::new(HASH, lowercase).unwrap_or_else(|| panic!("searchable"));
            let (fast, slow) = both(&p, &text);
            proptest::prop_assert_eq!(fast, slow);
            let at = PrefixedTokens::new(&['@'], lowercase).unwrap_or_else(|| panic!("searchable"));
            let (fast, slow) = both(&at, &text);
            proptest::prop_assert_eq!(fast, slow);
        }

        /// Searching texts joined (a column) finds each text's tokens, in order, as if
        /// each were searched alone: no piece runs from one text into the next.
        #[test]
        fn joined_texts_give_each_texts_tokens(
            texts in proptest::collection::vec("(#|＃|[#a-c ]|é|http://){0,6}", 0..8),
        ) {
            let p = PrefixedTokens::new(HASH, true).unwrap_or_else(|| panic!("searchable"));
            let mut each = Vec::new();
            for t in &texts {
                p.for_each(t, &mut String::new(), |w| each.push(w.to_string()));
            }
            let mut column = crate::data::columns::StrColumn::default();
            for t in &texts {
                column.push(t);
            }
            let (joined, ends) = column.joined();
            let mut all = Vec::new();
            p.for_each_joined(joined, ends, &mut String::new(), |w| all.push(w.to_string()));
            proptest::prop_assert_eq!(all, each);
        }

        /// The same on pure ASCII text (the tokenizer's fast path).
        #[test]
        fn search_matches_tokenizing_ascii(text in "[ -~\t\n\u{0B}]{0,120}") {
            let p = PrefixedTokens::new(HASH, true).unwrap_or_else(|| panic!("searchable"));
            let (fast, slow) = both(&p, &text);
            proptest::prop_assert_eq!(fast, slow);
        }
    }
}
