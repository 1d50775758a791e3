//! Top-k rankings of `(key, count)` pairs, in the spirit of Storm's `Rankings`.
//!
//! Items are ordered by count descending, then key ascending, so ties are
//! deterministic. A key appears at most once; updating it replaces its count.

use std::cmp::Ordering;

/// Errors for [`Rankings`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RankingsError {
    /// `k` must be at least 1.
    #[error("rankings size k must be at least 1")]
    ZeroK,
    /// Stored rankings (restored state) do not hold together.
    #[error("stored rankings are inconsistent: {0}")]
    Corrupt(String),
}

/// Ranking order: count descending, then key ascending.
fn rank_cmp<K: Ord>(a: &(K, u64), b: &(K, u64)) -> Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}

/// The best `k` `(key, count)` pairs seen, in ranking order.
///
/// Stored rankings are checked when read back (restored state may be cut or edited): at
/// most `k` items, in ranking order, each key once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(
    bound(
        serialize = "K: serde::Serialize",
        deserialize = "K: serde::Deserialize<'de> + Ord + Clone"
    ),
    try_from = "StoredRankings<K>"
)]
pub struct Rankings<K> {
    k: usize,
    items: Vec<(K, u64)>,
}

/// [`Rankings`] as stored, before they are checked.
#[derive(serde::Deserialize)]
struct StoredRankings<K> {
    k: usize,
    items: Vec<(K, u64)>,
}

impl<K: Ord + Clone> TryFrom<StoredRankings<K>> for Rankings<K> {
    type Error = RankingsError;

    fn try_from(s: StoredRankings<K>) -> Result<Self, RankingsError> {
        if s.k == 0 {
            return Err(RankingsError::ZeroK);
        }
        if s.items.len() > s.k {
            return Err(RankingsError::Corrupt(format!(
                "{} items, more than k = {}",
                s.items.len(),
                s.k
            )));
        }
        if let Some(i) = s
            .items
            .windows(2)
            .position(|w| rank_cmp(&w[0], &w[1]) != Ordering::Less)
        {
            return Err(RankingsError::Corrupt(format!(
                "items {i} and {} are not in ranking order",
                i + 1
            )));
        }
        let keys: std::collections::BTreeSet<&K> = s.items.iter().map(|(k, _)| k).collect();
        if keys.len() != s.items.len() {
            return Err(RankingsError::Corrupt("a key is ranked twice".into()));
        }
        Ok(Rankings {
            k: s.k,
            items: s.items,
        })
    }
}

impl<K: Ord + Clone> Rankings<K> {
    /// Creates empty rankings keeping at most `k` items.
    pub fn new(k: usize) -> Result<Self, RankingsError> {
        if k == 0 {
            return Err(RankingsError::ZeroK);
        }
        Ok(Self {
            k,
            items: Vec::with_capacity(k.min(1024)),
        })
    }

    /// Maximum number of items kept.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of items currently held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no item is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items in ranking order.
    pub fn as_slice(&self) -> &[(K, u64)] {
        &self.items
    }

    /// Consumes the rankings, returning the items in ranking order.
    pub fn into_vec(self) -> Vec<(K, u64)> {
        self.items
    }

    /// The count held for `key`, if it is ranked.
    pub fn get(&self, key: &K) -> Option<u64> {
        self.items.iter().find(|(k, _)| k == key).map(|(_, c)| *c)
    }

    /// Sets `key`'s count (replacing any previous one) and keeps only the top `k`.
    pub fn update(&mut self, key: K, count: u64) {
        if let Some(i) = self.items.iter().position(|(k, _)| *k == key) {
            self.items.remove(i);
        }
        let item = (key, count);
        let pos = self
            .items
            .partition_point(|x| rank_cmp(x, &item) == Ordering::Less);
        if pos >= self.k {
            return;
        }
        self.items.insert(pos, item);
        self.items.truncate(self.k);
    }

    /// Applies every item of `other` as an [`update`](Self::update); for a key
    /// present in both, `other`'s count wins.
    pub fn merge(&mut self, other: &Rankings<K>) {
        for (key, count) in &other.items {
            self.update(key.clone(), *count);
        }
    }

    /// Removes a key, returning its count if it was ranked.
    pub fn remove(&mut self, key: &K) -> Option<u64> {
        let i = self.items.iter().position(|(k, _)| k == key)?;
        Some(self.items.remove(i).1)
    }

    /// Drops items whose count is zero.
    pub fn remove_zeros(&mut self) {
        self.items.retain(|(_, c)| *c > 0);
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// Exact top-`k` of `items` in ranking order (count desc, key asc). Keys are
/// assumed distinct; duplicates are treated as separate entries.
pub fn top_k_of<K: Ord, I: IntoIterator<Item = (K, u64)>>(items: I, k: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = items.into_iter().collect();
    if k == 0 {
        return Vec::new();
    }
    if v.len() > k {
        v.select_nth_unstable_by(k - 1, rank_cmp);
        v.truncate(k);
    }
    v.sort_unstable_by(rank_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(k: usize) -> Rankings<String> {
        match Rankings::new(k) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    fn keys(r: &Rankings<String>) -> Vec<(&str, u64)> {
        r.as_slice().iter().map(|(k, c)| (k.as_str(), *c)).collect()
    }

    #[test]
    fn stored_rankings_round_trip_and_inconsistent_ones_are_refused() {
        let mut rk = r(3);
        rk.update("a".into(), 2);
        rk.update("b".into(), 5);
        let json = serde_json::to_string(&rk).unwrap_or_default();
        assert_eq!(json, r#"{"k":3,"items":[["b",5],["a",2]]}"#);
        let back: Result<Rankings<String>, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(rk));
        for (bad, why) in [
            (r#"{"k":0,"items":[]}"#, "at least 1"),
            (r#"{"k":1,"items":[["b",5],["a",2]]}"#, "more than k = 1"),
            (
                r#"{"k":3,"items":[["a",2],["b",5]]}"#,
                "not in ranking order",
            ),
            (
                r#"{"k":3,"items":[["b",5],["a",2],["b",1]]}"#,
                "ranked twice",
            ),
        ] {
            let e = serde_json::from_str::<Rankings<String>>(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn zero_k_is_an_error() {
        assert_eq!(Rankings::<u8>::new(0), Err(RankingsError::ZeroK));
    }

    #[test]
    fn ordered_by_count_desc() {
        let mut rk = r(10);
        rk.update("a".into(), 1);
        rk.update("b".into(), 5);
        rk.update("c".into(), 3);
        assert_eq!(keys(&rk), vec![("b", 5), ("c", 3), ("a", 1)]);
        assert_eq!(rk.len(), 3);
        assert_eq!(rk.k(), 10);
    }

    #[test]
    fn ties_broken_by_key_ascending() {
        let mut rk = r(10);
        for key in ["d", "b", "c", "a"] {
            rk.update(key.into(), 2);
        }
        rk.update("z".into(), 3);
        assert_eq!(
            keys(&rk),
            vec![("z", 3), ("a", 2), ("b", 2), ("c", 2), ("d", 2)]
        );
    }

    #[test]
    fn keeps_only_top_k() {
        let mut rk = r(2);
        rk.update("a".into(), 1);
        rk.update("b".into(), 2);
        rk.update("c".into(), 3);
        assert_eq!(keys(&rk), vec![("c", 3), ("b", 2)]);
        // A tie with the last place loses when its key sorts later.
        rk.update("x".into(), 2);
        assert_eq!(keys(&rk), vec![("c", 3), ("b", 2)]);
        // ...and wins when its key sorts earlier.
        rk.update("a".into(), 2);
        assert_eq!(keys(&rk), vec![("c", 3), ("a", 2)]);
    }

    #[test]
    fn update_replaces_existing_key() {
        let mut rk = r(3);
        rk.update("a".into(), 10);
        rk.update("b".into(), 5);
        rk.update("a".into(), 1);
        assert_eq!(keys(&rk), vec![("b", 5), ("a", 1)]);
        rk.update("a".into(), 7);
        assert_eq!(keys(&rk), vec![("a", 7), ("b", 5)]);
        assert_eq!(rk.get(&"a".to_string()), Some(7));
        assert_eq!(rk.get(&"q".to_string()), None);
    }

    #[test]
    fn full_rankings_replacement_can_drop_key() {
        let mut rk = r(2);
        rk.update("a".into(), 10);
        rk.update("b".into(), 5);
        rk.update("c".into(), 4);
        rk.update("a".into(), 1);
        // "a" drops to 1, below "b"; "c" was already evicted earlier.
        assert_eq!(keys(&rk), vec![("b", 5), ("a", 1)]);
    }

    #[test]
    fn remove_zeros_and_remove() {
        let mut rk = r(5);
        rk.update("a".into(), 0);
        rk.update("b".into(), 2);
        rk.update("c".into(), 0);
        assert_eq!(rk.len(), 3);
        rk.remove_zeros();
        assert_eq!(keys(&rk), vec![("b", 2)]);
        assert_eq!(rk.remove(&"b".to_string()), Some(2));
        assert_eq!(rk.remove(&"b".to_string()), None);
        assert!(rk.is_empty());
    }

    #[test]
    fn merge_other_wins_on_shared_key() {
        let mut a = r(3);
        a.update("x".into(), 1);
        let mut b = r(3);
        b.update("x".into(), 9);
        a.merge(&b);
        assert_eq!(keys(&a), vec![("x", 9)]);
    }

    #[test]
    fn merge_of_disjoint_partials_equals_top_k_of_union() {
        let k = 7;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Four partitions with disjoint keys (key % 4 == partition).
        let mut all: Vec<(u32, u64)> = Vec::new();
        let mut partials: Vec<Rankings<u32>> = Vec::new();
        for p in 0..4u32 {
            let mut part = Rankings::new(k).unwrap_or_else(|e| panic!("{e}"));
            for i in 0..50u32 {
                let key = i * 4 + p;
                let count = next() % 20; // many ties
                part.update(key, count);
                all.push((key, count));
            }
            partials.push(part);
        }
        let mut total = Rankings::new(k).unwrap_or_else(|e| panic!("{e}"));
        for part in &partials {
            total.merge(part);
        }
        assert_eq!(total.as_slice(), top_k_of(all, k).as_slice());
    }

    #[test]
    fn top_k_of_basics() {
        let v = vec![("b", 2u64), ("a", 2), ("c", 9), ("d", 1)];
        assert_eq!(top_k_of(v.clone(), 2), vec![("c", 9), ("a", 2)]);
        assert_eq!(
            top_k_of(v.clone(), 10),
            vec![("c", 9), ("a", 2), ("b", 2), ("d", 1)]
        );
        assert!(top_k_of(v, 0).is_empty());
        assert!(top_k_of(Vec::<(u8, u64)>::new(), 3).is_empty());
    }

    #[test]
    fn incremental_updates_match_top_k_of_latest_counts() {
        use std::collections::BTreeMap;
        // With only increasing counts, a Rankings fed every update equals the top-k
        // of the final counts (no evicted key can come back with a higher count
        // without being re-updated).
        let mut latest: BTreeMap<u32, u64> = BTreeMap::new();
        let mut rk = Rankings::new(5).unwrap_or_else(|e| panic!("{e}"));
        let mut seed = 12345u64;
        for _ in 0..1_000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let key = ((seed >> 33) % 40) as u32;
            let c = latest.entry(key).or_insert(0);
            *c += 1;
            rk.update(key, *c);
        }
        assert_eq!(rk.into_vec(), top_k_of(latest, 5));
    }
}
