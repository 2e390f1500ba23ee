//! Weighted path sets and the flow → path map over them: weighted
//! rendezvous hashing (highest random weight).
//!
//! Each path of the set draws a pseudo-random `u` in (0, 1) from the flow
//! hash and its index, and scores `w / -ln(u)`; the highest score wins.
//! A path therefore takes a share of flows proportional to its weight, and:
//!
//! - removing a path moves only the flows that were on it (the others' scores
//!   do not change), so flows stay on their path unless it leaves the set;
//! - adding a path moves about `w_new / Σw` of the flows onto it, which is
//!   why the selector subjects additions to hysteresis and removals not;
//! - changing a weight moves flows between that path and the others, so the
//!   selector republishes weights only on a significant change.
//!
//! `u` is derived with the same key as the data path's unweighted HRW
//! (splitmix64 of `flow ^ (index + 1) · φ`), and `w / -ln(u)` grows with
//! `u`: with equal weights this picks the same path as the data path does.

use crate::wg::datapath::{mix, MAX_PATHS};

/// A set of a peer's paths with weights: 0 is "not in the set". Weights are
/// relative; the selector scales them to sum to about 255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeightedSet {
    weights: [u8; MAX_PATHS],
}

impl WeightedSet {
    pub const EMPTY: WeightedSet = WeightedSet {
        weights: [0; MAX_PATHS],
    };

    /// Sets path `path`'s weight; ignored past [`MAX_PATHS`].
    pub fn set(&mut self, path: u8, weight: u8) {
        if let Some(w) = self.weights.get_mut(usize::from(path)) {
            *w = weight;
        }
    }

    /// Path `path`'s weight; 0 if it is not in the set.
    pub fn weight(&self, path: u8) -> u8 {
        self.weights.get(usize::from(path)).copied().unwrap_or(0)
    }

    pub fn contains(&self, path: u8) -> bool {
        self.weight(path) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.weights.iter().all(|&w| w == 0)
    }

    pub fn len(&self) -> usize {
        self.weights.iter().filter(|&&w| w != 0).count()
    }

    /// The members and their weights, by path index.
    pub fn iter(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        self.weights
            .iter()
            .enumerate()
            .filter(|(_, &w)| w != 0)
            .map(|(i, &w)| (i as u8, w))
    }

    /// The members as a bitmask (bit `i` for path `i`).
    pub fn mask(&self) -> u8 {
        self.iter().fold(0, |m, (i, _)| m | (1 << i))
    }

    /// The only member, if the set has exactly one: a pinned path, which
    /// needs no hashing.
    #[inline]
    pub fn single(&self) -> Option<u8> {
        let mut it = self.iter();
        match (it.next(), it.next()) {
            (Some((i, _)), None) => Some(i),
            _ => None,
        }
    }

    /// The weights as one word, path 0 in the low byte, for publishing
    /// through an atomic ([`super::SteerTable`]).
    #[inline]
    pub fn to_bits(&self) -> u64 {
        u64::from_le_bytes(self.weights)
    }

    #[inline]
    pub fn from_bits(bits: u64) -> WeightedSet {
        WeightedSet {
            weights: bits.to_le_bytes(),
        }
    }
}

/// The path of `set` that carries the flow with hash `flow`; None if the
/// set is empty.
#[inline]
pub fn pick(set: &WeightedSet, flow: u64) -> Option<u8> {
    let mut best: Option<(u8, f64)> = None;
    for (i, w) in set.iter() {
        let h = mix(flow ^ (u64::from(i) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // 53 bits, centred in their cell: strictly inside (0, 1), so the
        // logarithm is finite and negative.
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = f64::from(w) / -u.ln();
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ws: &[(u8, u8)]) -> WeightedSet {
        let mut s = WeightedSet::EMPTY;
        for &(i, w) in ws {
            s.set(i, w);
        }
        s
    }

    fn flows() -> impl Iterator<Item = u64> {
        (0..20_000u64).map(|i| mix(i.wrapping_mul(0x2545_f491_4f6c_dd1d)))
    }

    #[test]
    fn hrw_keeps_flows_on_surviving_paths_when_one_leaves() {
        let before = set(&[(0, 100), (1, 60), (2, 95)]);
        let after = set(&[(0, 100), (2, 95)]);
        let mut moved_from_1 = [0usize; MAX_PATHS];
        for f in flows() {
            let a = pick(&before, f).unwrap();
            let b = pick(&after, f).unwrap();
            if a == 1 {
                moved_from_1[usize::from(b)] += 1;
            } else {
                assert_eq!(a, b, "flow {f:#x} left surviving path {a}");
            }
        }
        // The departed path's flows spread over both survivors.
        assert!(moved_from_1[0] > 1000 && moved_from_1[2] > 1000);
    }

    #[test]
    fn hrw_shares_follow_the_weights() {
        let s = set(&[(1, 170), (3, 85)]);
        let mut n = [0usize; MAX_PATHS];
        for f in flows() {
            n[usize::from(pick(&s, f).unwrap())] += 1;
        }
        let ratio = n[1] as f64 / n[3] as f64;
        assert!((1.8..2.2).contains(&ratio), "ratio {ratio}");
        assert_eq!(n[0] + n[2], 0);
    }

    #[test]
    fn adding_a_path_moves_only_flows_onto_it() {
        let before = set(&[(0, 1), (1, 1)]);
        let after = set(&[(0, 1), (1, 1), (2, 1)]);
        let mut moved = 0;
        for f in flows() {
            let b = pick(&after, f).unwrap();
            if b != pick(&before, f).unwrap() {
                assert_eq!(b, 2);
                moved += 1;
            }
        }
        let share = moved as f64 / 20_000.0;
        assert!((0.30..0.37).contains(&share), "share {share}");
    }

    #[test]
    fn equal_weights_pick_what_the_data_path_picks() {
        let s = set(&[(0, 7), (1, 7), (2, 7), (4, 7)]);
        for f in flows() {
            let dp = [0u64, 1, 2, 4]
                .into_iter()
                .max_by_key(|i| mix(f ^ (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                .unwrap();
            assert_eq!(pick(&s, f), Some(dp as u8));
        }
    }

    #[test]
    fn empty_set_picks_nothing_and_out_of_range_paths_are_ignored() {
        let mut s = WeightedSet::EMPTY;
        assert_eq!(pick(&s, 12345), None);
        s.set(MAX_PATHS as u8, 9);
        assert!(s.is_empty());
        s.set(5, 1);
        assert_eq!(pick(&s, 0), Some(5));
        assert_eq!(pick(&s, u64::MAX), Some(5));
        assert_eq!((s.len(), s.mask()), (1, 1 << 5));
        assert_eq!(s.single(), Some(5));
        assert_eq!(WeightedSet::from_bits(s.to_bits()), s);
        s.set(0, 2);
        assert_eq!(s.single(), None);
        assert_eq!(s.to_bits(), 2 | 1 << 40);
    }
}
