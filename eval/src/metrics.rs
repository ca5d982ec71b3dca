//! Ranking metrics over binary relevance. Each query contributes a list of booleans (is the
//! hit at rank i relevant) and the number of relevant items that exist for it.

/// One query's ranked relevance.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// Relevance of each returned hit, best first.
    pub relevant: Vec<bool>,
    /// How many relevant items exist in the corpus (for nDCG's ideal ranking); at least 1.
    pub total_relevant: usize,
}

/// Whether a relevant hit is within the first `k`.
pub fn hit_at(r: &Ranked, k: usize) -> f64 {
    f64::from(u8::from(r.relevant.iter().take(k).any(|&x| x)))
}

/// Reciprocal rank of the first relevant hit (0 when none).
pub fn reciprocal_rank(r: &Ranked) -> f64 {
    r.relevant
        .iter()
        .position(|&x| x)
        .map(|p| 1.0 / (p as f64 + 1.0))
        .unwrap_or(0.0)
}

/// nDCG@k with binary gains.
pub fn ndcg_at(r: &Ranked, k: usize) -> f64 {
    let dcg: f64 = r
        .relevant
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, &x)| x)
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..r.total_relevant.max(1).min(k))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    if ideal == 0.0 {
        0.0
    } else {
        dcg / ideal
    }
}

/// Mean of a metric over queries.
pub fn mean(rs: &[Ranked], f: impl Fn(&Ranked) -> f64) -> f64 {
    if rs.is_empty() {
        0.0
    } else {
        rs.iter().map(f).sum::<f64>() / rs.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_known_rankings() {
        let first = Ranked {
            relevant: vec![true, false, false],
            total_relevant: 1,
        };
        let third = Ranked {
            relevant: vec![false, false, true],
            total_relevant: 1,
        };
        let none = Ranked {
            relevant: vec![false; 10],
            total_relevant: 2,
        };
        assert_eq!(hit_at(&first, 1), 1.0);
        assert_eq!(hit_at(&third, 1), 0.0);
        assert_eq!(hit_at(&third, 5), 1.0);
        assert!((reciprocal_rank(&third) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(ndcg_at(&first, 10), 1.0);
        assert!((ndcg_at(&third, 10) - 0.5).abs() < 1e-12, "1/log2(4) = 0.5");
        assert_eq!(ndcg_at(&none, 10), 0.0);
        assert!((mean(&[first, third], reciprocal_rank) - (1.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
