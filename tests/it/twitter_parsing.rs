//! `parse_line` over a corpus of realistic stream lines (`tests/fixtures/twitter/`,
//! written by `make_corpus.py` there): every line parses, and the hashtags of every tweet
//! equal a count computed independently here — from the entity offsets (v2 `start`/`end`,
//! v1.1 `indices`, in characters, sliced out of the text and checked against the tag), or
//! for tweets without entities by a small scanner of the text written for this test. Then
//! focused cases: entity offsets, retweets with `includes`, tweets without entities, v1.1
//! extended tweets, unknown fields and message types.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use squall::tweet::wire::{Notice, StreamMessage, Tweet, parse_line};

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/twitter")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ---------------------------------------------------------------------------
// The independent expectation.

/// Lowercase, character by character (the documented normalization).
fn lower(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_hash(c: char) -> bool {
    c == '#' || c == '＃'
}

/// Hashtags of a text without entities: a `#`/`＃` not glued to a preceding word character
/// and followed by one, up to the first non-word character; `http(s)://` links are
/// skipped to the next whitespace. (The corpus keeps combining marks out of these texts.)
fn scan_hashtags(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let starts_ci = |i: usize, pat: &str| {
        let pat: Vec<char> = pat.chars().collect();
        chars.len() >= i + pat.len()
            && chars[i..i + pat.len()]
                .iter()
                .zip(&pat)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let glued = i > 0 && is_word(chars[i - 1]);
        if !glued && (starts_ci(i, "http://") || starts_ci(i, "https://")) {
            while i < chars.len() && !chars[i].is_whitespace() {
                i += 1;
            }
            continue;
        }
        if is_hash(chars[i]) && !glued && chars.get(i + 1).is_some_and(|&c| is_word(c)) {
            let mut j = i + 1;
            while j < chars.len() && is_word(chars[j]) {
                j += 1;
            }
            out.push(lower(&chars[i + 1..j].iter().collect::<String>()));
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// Hashtags from entities: each `(start, end)` character range of `text` must be `#tag`
/// (or `＃tag`); the result is the lowercased tags in text order.
fn entity_hashtags(text: &str, hashtags: &[Value], name: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut spans: Vec<(usize, String)> = hashtags
        .iter()
        .map(|h| {
            let (s, e) = match (h.get("start"), h.get("indices")) {
                (Some(s), _) => (s.as_u64().unwrap(), h["end"].as_u64().unwrap()),
                (None, Some(ix)) => (ix[0].as_u64().unwrap(), ix[1].as_u64().unwrap()),
                _ => panic!("hashtag entity without offsets: {h}"),
            };
            let (s, e) = (s as usize, e as usize);
            assert!(
                s < e && e <= chars.len(),
                "offsets {s}..{e} outside {text:?}"
            );
            let slice: String = chars[s..e].iter().collect();
            let tag = h[name].as_str().unwrap();
            let body = slice
                .strip_prefix('#')
                .or(slice.strip_prefix('＃'))
                .unwrap_or_else(|| panic!("{slice:?} at {s}..{e} of {text:?} is not a hashtag"));
            assert_eq!(body, tag, "entity tag vs text at {s}..{e} of {text:?}");
            (s, lower(tag))
        })
        .collect();
    spans.sort();
    spans.into_iter().map(|(_, t)| t).collect()
}

/// What a tweet's hashtags must be: from `entities` when the object has them, else
/// scanned from the text. `entities` without `hashtags` means none.
fn expected_of(text: &str, entities: Option<&Value>, name: &str) -> (Vec<String>, bool) {
    match entities.filter(|e| e.is_object()) {
        Some(e) => {
            let tags = e
                .get("hashtags")
                .and_then(Value::as_array)
                .map_or(Vec::new(), |h| entity_hashtags(text, h, name));
            (tags, true)
        }
        None => (scan_hashtags(text), false),
    }
}

/// A v2 message's expected tweet facts, or `None` when it is not a tweet.
struct Expected {
    id: String,
    text: String,
    author: Option<String>,
    hashtags: Vec<String>,
    from_entities: bool,
    rule_tags: Vec<String>,
}

fn expected_v2(v: &Value) -> Option<Expected> {
    let data = v.get("data")?;
    let text = data["text"].as_str().unwrap().to_string();
    let (hashtags, from_entities) = expected_of(&text, data.get("entities"), "tag");
    let author = data.get("author_id").and_then(|aid| {
        v.pointer("/includes/users")?
            .as_array()?
            .iter()
            .find(|u| u["id"] == *aid)
            .map(|u| u["username"].as_str().unwrap().to_string())
    });
    let rule_tags = v
        .get("matching_rules")
        .and_then(Value::as_array)
        .map_or(Vec::new(), |rules| {
            rules
                .iter()
                .map(|r| {
                    r.get("tag")
                        .unwrap_or(&r["id"])
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect()
        });
    Some(Expected {
        id: data["id"].as_str().unwrap().to_string(),
        text,
        author,
        hashtags,
        from_entities,
        rule_tags,
    })
}

/// A v1.1 status's expected tweet facts: the retweeted status's text when it is a
/// retweet, the `extended_tweet` when there is one.
fn expected_v11(v: &Value) -> Option<Expected> {
    v.get("text").or(v.get("full_text"))?;
    let src = v.get("retweeted_status").unwrap_or(v);
    let (text, entities) = match src.pointer("/extended_tweet/full_text") {
        Some(full) => (
            full.as_str().unwrap(),
            src.pointer("/extended_tweet/entities"),
        ),
        None => (
            src.get("full_text")
                .or(src.get("text"))
                .unwrap()
                .as_str()
                .unwrap(),
            src.get("entities"),
        ),
    };
    let (hashtags, from_entities) = expected_of(text, entities, "text");
    Some(Expected {
        id: v["id_str"].as_str().unwrap().to_string(),
        text: text.to_string(),
        author: v
            .pointer("/user/screen_name")
            .map(|s| s.as_str().unwrap().to_string()),
        hashtags,
        from_entities,
        rule_tags: Vec::new(),
    })
}

#[derive(Default, Debug)]
struct Tally {
    tweets: usize,
    from_entities: usize,
    from_text: usize,
    keep_alives: usize,
    notices: usize,
    errors: usize,
    unknown: usize,
    hashtags_from_text: usize,
    counts: BTreeMap<String, u64>,
}

/// Parses every line of `name`, checking each tweet against `expect`.
fn check_corpus(name: &str, expect: fn(&Value) -> Option<Expected>) -> Tally {
    let text = fixture(name);
    let mut t = Tally::default();
    let mut expected_counts: BTreeMap<String, u64> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", n + 1);
        let msg = parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{at}: {e}"));
        if line.trim().is_empty() {
            assert_eq!(msg, StreamMessage::KeepAlive, "{at}");
            t.keep_alives += 1;
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap();
        match (msg, expect(&v)) {
            (StreamMessage::Tweet(tw), Some(e)) => {
                assert_eq!(tw.hashtags, e.hashtags, "{at}: hashtags of {:?}", e.text);
                assert_eq!(tw.id, e.id, "{at}");
                assert_eq!(tw.text, e.text, "{at}");
                assert_eq!(tw.author, e.author, "{at}");
                assert_eq!(tw.rule_tags, e.rule_tags, "{at}");
                t.tweets += 1;
                if e.from_entities {
                    t.from_entities += 1;
                } else {
                    t.from_text += 1;
                    t.hashtags_from_text += e.hashtags.len();
                }
                for h in e.hashtags {
                    *expected_counts.entry(h).or_default() += 1;
                }
                for h in tw.hashtags {
                    *t.counts.entry(h).or_default() += 1;
                }
            }
            (StreamMessage::Tweet(tw), None) => panic!("{at}: not a tweet, parsed as {tw:?}"),
            (other, Some(_)) => panic!("{at}: a tweet, parsed as {other:?}"),
            (StreamMessage::Notice(_), None) => t.notices += 1,
            (StreamMessage::Errors(_), None) => t.errors += 1,
            (StreamMessage::Unknown, None) => t.unknown += 1,
            (StreamMessage::KeepAlive, None) => panic!("{at}: keep-alive from {line}"),
        }
    }
    assert_eq!(t.counts, expected_counts, "{name}: hashtag counts");
    t
}

#[test]
fn v2_corpus_hashtags_match_the_entity_offsets_and_the_text() {
    let t = check_corpus("corpus-v2.jsonl", expected_v2);
    assert!(t.tweets >= 190, "{t:?}");
    assert!(t.from_entities >= 120 && t.from_text >= 20, "{t:?}");
    assert!(t.hashtags_from_text >= 20, "{t:?}");
    assert_eq!(
        (t.keep_alives, t.errors, t.unknown, t.notices),
        (6, 1, 1, 0)
    );
    assert!(t.counts.len() >= 60, "{} distinct hashtags", t.counts.len());
    // Non-Latin, accented and uppercase tags arrive normalized.
    for tag in [
        "ラーメン",
        "北京",
        "서울",
        "Зима",
        "ΟΔΟΣ",
        "ελλάδα",
        "São_Paulo",
        "RustLang",
        "ÉTÉ",
        "İstanbul",
        "हिन्दी",
        "สวัสดี",
        "رمضان_كريم",
        "תל_אביב",
        "Ñandú",
    ] {
        let tag = lower(tag);
        assert!(t.counts.contains_key(&tag), "no {tag} in {:?}", t.counts);
    }
}

#[test]
fn v11_corpus_hashtags_match_the_entity_indices_and_the_text() {
    let t = check_corpus("corpus-v11.jsonl", expected_v11);
    assert!(t.tweets >= 150, "{t:?}");
    assert!(t.from_entities >= 120 && t.from_text >= 8, "{t:?}");
    assert_eq!((t.keep_alives, t.errors), (4, 0));
    assert_eq!((t.notices, t.unknown), (7, 3), "{t:?}");
    assert!(t.counts.len() >= 60, "{} distinct hashtags", t.counts.len());
}

#[test]
fn the_corpus_covers_what_it_claims() {
    let v2 = fixture("corpus-v2.jsonl");
    let v11 = fixture("corpus-v11.jsonl");
    let tweets = v2.lines().filter(|l| l.contains("\"data\"")).count()
        + v11
            .lines()
            .filter(|l| l.contains("\"id_str\"") && l.contains("\"text\""))
            .count();
    assert!(tweets >= 300, "{tweets} tweets");
    for (what, needle, text) in [
        ("v2 retweets", "\"type\":\"retweeted\"", &v2),
        ("v2 quotes", "\"type\":\"quoted\"", &v2),
        ("v2 includes.tweets", "\"tweets\":[", &v2),
        ("fullwidth hash", "＃", &v2),
        ("URL fragments", "/guide#install", &v2),
        ("C#", "C# at work", &v2),
        ("v1.1 extended tweets", "\"extended_tweet\"", &v11),
        ("v1.1 retweets", "\"retweeted_status\"", &v11),
        ("v1.1 quotes", "\"quoted_status\"", &v11),
        ("HTML entities", "&amp;", &v11),
        ("Devanagari", "हिन्दी", &v11),
        ("emoji", "🦀", &v11),
    ] {
        assert!(text.contains(needle), "the corpus has no {what} ({needle})");
    }
}

// ---------------------------------------------------------------------------
// Focused cases.

fn tweet(line: &str) -> Tweet {
    match parse_line(line.as_bytes()) {
        Ok(StreamMessage::Tweet(t)) => t,
        other => panic!("expected a tweet, got {other:?}"),
    }
}

#[test]
fn v2_entity_hashtags_with_offsets_win_over_the_text() {
    // A truncated retweet: `#LongRe…` was cut, so the API gives it no entity; `#42` is
    // all-numeric, no hashtag for the API either. Offsets count characters (emoji, CJK).
    let line = r##"{"data":{"id":"1","text":"RT @a: 🚀 ＃東京 and #RustLang! #42 #LongRe…","edit_history_tweet_ids":["1"],"entities":{"hashtags":[{"start":9,"end":12,"tag":"東京"},{"start":17,"end":26,"tag":"RustLang"}],"mentions":[{"start":3,"end":5,"username":"a","id":"9"}]}}}"##;
    let v: Value = serde_json::from_str(line).unwrap();
    let e = expected_v2(&v).unwrap();
    assert_eq!(e.hashtags, ["東京", "rustlang"]);
    assert_eq!(tweet(line).hashtags, e.hashtags);
    // The same text without entities: hashtags come from the text.
    let bare = r##"{"data":{"id":"1","text":"RT @a: 🚀 ＃東京 and #RustLang! #LongRe…"}}"##;
    assert_eq!(tweet(bare).hashtags, ["東京", "rustlang", "longre"]);
    // Entities that list no hashtags mean none, whatever the text looks like.
    let none = r##"{"data":{"id":"1","text":"#a #b","entities":{"urls":[]}}}"##;
    assert!(tweet(none).hashtags.is_empty());
}

#[test]
fn v2_retweet_with_includes() {
    let line = r##"{"data":{"id":"20","text":"RT @orig_user: Café talk about #Streams and #ΟΔΟΣ","author_id":"2","referenced_tweets":[{"type":"retweeted","id":"10"}],"entities":{"hashtags":[{"start":31,"end":39,"tag":"Streams"},{"start":44,"end":49,"tag":"ΟΔΟΣ"}],"mentions":[{"start":3,"end":13,"username":"orig_user","id":"1"}]},"created_at":"2024-05-01T12:00:03.000Z","lang":"fr"},"includes":{"users":[{"id":"1","name":"Orig","username":"orig_user"},{"id":"2","name":"Retweeter","username":"the_retweeter"}],"tweets":[{"id":"10","text":"Café talk about #Streams and #ΟΔΟΣ #more","author_id":"1","entities":{"hashtags":[{"start":16,"end":24,"tag":"Streams"},{"start":29,"end":34,"tag":"ΟΔΟΣ"},{"start":35,"end":40,"tag":"more"}]}}]},"matching_rules":[{"id":"7","tag":"cafe"},{"id":"8"}]}"##;
    let v: Value = serde_json::from_str(line).unwrap();
    let e = expected_v2(&v).unwrap();
    let t = tweet(line);
    // The retweet's own entities count, not the original's in `includes.tweets`.
    assert_eq!(t.hashtags, ["streams", "οδοσ"]);
    assert_eq!(t.hashtags, e.hashtags);
    assert!(t.text.starts_with("RT @orig_user: "));
    // The author is the retweeter (matched by `author_id`, not the first user).
    assert_eq!(t.author.as_deref(), Some("the_retweeter"));
    assert_eq!(t.author_id.as_deref(), Some("2"));
    assert_eq!(t.rule_tags, ["cafe", "8"]);
    assert_eq!(t.lang.as_deref(), Some("fr"));
}

#[test]
fn tweets_without_entities_take_hashtags_from_the_text() {
    let text =
        "¡#Fútbol! C# a#b https://x.org/#frag (＃東京) #SãoPaulo… #rust🦀 #tag's ##double # no";
    let want = ["fútbol", "東京", "sãopaulo", "rust", "tag", "double"];
    assert_eq!(scan_hashtags(text), want);
    let v2 = serde_json::json!({"data": {"id": "5", "text": text}}).to_string();
    assert_eq!(tweet(&v2).hashtags, want);
    let v11 =
        serde_json::json!({"id_str": "6", "text": text, "user": {"screen_name": "u"}}).to_string();
    let t = tweet(&v11);
    assert_eq!(t.hashtags, want);
    assert_eq!(t.author.as_deref(), Some("u"));
}

#[test]
fn v11_extended_tweets_carry_the_text_and_entities() {
    // The root text is cut (mid-hashtag); the full text and its entities are in
    // extended_tweet.
    let full = "Long post about streams and more streams and even more streams, past the old \
                limit of one hundred and forty characters, with tags at the end #Rust #Ünï_2";
    let chars = full.chars().count();
    let cut: String = full.chars().take(113).collect();
    let line = serde_json::json!({
        "id": 77u64, "id_str": "77", "truncated": true,
        "text": format!("{cut}… https://t.co/abcdefghij"),
        "entities": {"hashtags": [], "urls": [{"url": "https://t.co/abcdefghij", "indices": [115, 138]}]},
        "user": {"id_str": "3", "screen_name": "writer"},
        "created_at": "Wed May 01 12:00:03 +0000 2024",
        "extended_tweet": {"full_text": full, "display_text_range": [0, chars],
            "entities": {"hashtags": [
                {"text": "Rust", "indices": [chars - 12, chars - 7]},
                {"text": "Ünï_2", "indices": [chars - 6, chars]}]}}
    })
    .to_string();
    let v: Value = serde_json::from_str(&line).unwrap();
    let e = expected_v11(&v).unwrap();
    assert_eq!(e.hashtags, ["rust", "ünï_2"]);
    let t = tweet(&line);
    assert_eq!(t.text, full);
    assert_eq!(t.hashtags, e.hashtags);
    assert_eq!(t.created_at.as_deref(), Some("2024-05-01T12:00:03.000Z"));
    // Retweeted: the retweet's id and author, the original's full text and hashtags.
    let rt = serde_json::json!({
        "id_str": "78", "text": "RT @writer: Long post about streams…", "truncated": false,
        "entities": {"hashtags": []}, "user": {"id_str": "4", "screen_name": "fan"},
        "retweeted_status": v,
    })
    .to_string();
    let t = tweet(&rt);
    assert_eq!((t.id.as_str(), t.author.as_deref()), ("78", Some("fan")));
    assert_eq!(t.text, full);
    assert_eq!(t.hashtags, ["rust", "ünï_2"]);
}

#[test]
fn v11_quote_tweets_count_only_their_own_hashtags() {
    let line = r##"{"id_str":"90","text":"So true #agree https://t.co/q","is_quote_status":true,"entities":{"hashtags":[{"text":"agree","indices":[8,14]}]},"user":{"screen_name":"q"},"quoted_status":{"id_str":"89","text":"Hot take #quoted","entities":{"hashtags":[{"text":"quoted","indices":[9,16]}]},"user":{"screen_name":"o"}}}"##;
    assert_eq!(tweet(line).hashtags, ["agree"]);
}

#[test]
fn unknown_fields_and_message_types_are_tolerated() {
    // Unknown fields of every shape, nulls for optional fields, entities before the id.
    let line = r##"{"future":{"deep":[1,{"x":null}]},"data":{"entities":{"hashtags":[{"start":0,"end":4,"tag":"Neu","probability":0.9}],"cashtags":[{"start":5,"end":10,"tag":"TSLA"}]},"text":"#Neu $TSLA","id":"3","lang":null,"created_at":null,"edit_controls":{"edits_remaining":5,"is_edit_eligible":true},"note_tweet":{"text":"#Neu $TSLA and more","entities":{"hashtags":[]}},"public_metrics":{"like_count":1}},"includes":{"users":null,"media":[{"media_key":"3_1","type":"photo"}]},"matching_rules":null,"errors":[{"title":"Not Found Error","resource_type":"user","value":"4"}]}"##;
    let t = tweet(line);
    assert_eq!((t.id.as_str(), t.text.as_str()), ("3", "#Neu $TSLA"));
    assert_eq!(t.hashtags, ["neu"]);
    assert_eq!((t.lang, t.created_at, t.author), (None, None, None));
    // Message types the parser does not know.
    for unknown in [
        r#"{"future_message_type":{"code":"SOMETHING_NEW"}}"#,
        r#"{"status_withheld":{"id":1,"user_id":2,"withheld_in_countries":["DE"]}}"#,
        r#"{"scrub_geo":{"user_id":1,"up_to_status_id":2}}"#,
        r#"{"friends":[1,2,3]}"#,
        r#"{}"#,
    ] {
        assert_eq!(
            parse_line(unknown.as_bytes()).unwrap(),
            StreamMessage::Unknown,
            "{unknown}"
        );
    }
    // Keep-alives in every framing.
    for ka in ["", "\r\n", "\n", "   \r\n"] {
        assert_eq!(parse_line(ka.as_bytes()).unwrap(), StreamMessage::KeepAlive);
    }
    // v1.1 notices with extra fields.
    let n = parse_line(br#"{"limit":{"track":12,"timestamp_ms":"1","extra":true}}"#).unwrap();
    assert_eq!(
        n,
        StreamMessage::Notice(Notice::Limit {
            track: 12,
            timestamp_ms: Some("1".into())
        })
    );
}

/// Twitter keeps some punctuation inside hashtags (twitter-text's "hashtag special
/// characters": `·` U+00B7, `・` U+30FB, `־` U+05BE, `״` U+05F4, `〜` U+301C, …), and its
/// entities carry the whole tag. `normalize_hashtag` cuts an entity tag at the first
/// character that is not a word character, so these tags lose their tail.
#[test]
fn entity_tags_with_special_characters_are_kept_whole() {
    let line = r##"{"data":{"id":"1","text":"#col·legi i #ラブライブ・サンシャイン","entities":{"hashtags":[{"start":0,"end":9,"tag":"col·legi"},{"start":12,"end":25,"tag":"ラブライブ・サンシャイン"}]}}}"##;
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        expected_v2(&v).unwrap().hashtags,
        ["col·legi", "ラブライブ・サンシャイン"]
    );
    assert_eq!(
        tweet(line).hashtags,
        ["col·legi", "ラブライブ・サンシャイン"]
    );
}
