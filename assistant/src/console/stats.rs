//! Supervision: what the daily aggregates count, and the dashboard and CSV made from them.
//!
//! Waiting times are counted in buckets (their upper bounds, seconds), so percentiles come
//! from counts alone: p50/p95 is the upper bound of the bucket the 50th/95th percent falls in.
//! Unanswered questions are grouped by their masked text with greetings, question particles
//! and punctuation removed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::store::StatRow;

/// Upper bounds (seconds) of the waiting-time buckets; the last catches everything longer.
pub const WAIT_BUCKETS: &[i64] = &[
    30,
    60,
    120,
    300,
    600,
    1200,
    1800,
    3600,
    7200,
    14400,
    86400,
    i64::MAX,
];

/// The bucket a wait of `secs` counts in (its upper bound; `inf` for the last).
pub fn wait_bucket(secs: i64) -> String {
    let b = WAIT_BUCKETS
        .iter()
        .copied()
        .find(|b| secs <= *b)
        .unwrap_or(i64::MAX);
    if b == i64::MAX {
        "inf".into()
    } else {
        b.to_string()
    }
}

/// The group of an unanswered question: its masked text without greetings, particles,
/// spaces and punctuation, at most 40 characters.
pub fn question_group(masked: &str) -> String {
    let mut t: String = masked
        .chars()
        .filter(|c| {
            !c.is_whitespace()
                && !c.is_ascii_punctuation()
                && !"，。？！、；：“”‘’（）《》…～·".contains(*c)
        })
        .collect();
    for lead in [
        "您好",
        "你好",
        "请问一下",
        "请问",
        "我想问一下",
        "我想问",
        "想问一下",
        "问一下",
        "咨询一下",
    ] {
        if let Some(rest) = t.strip_prefix(lead) {
            t = rest.to_string();
        }
    }
    while let Some(c) = t.chars().last() {
        if "吗呢吧啊呀哈".contains(c) {
            t.pop();
        } else {
            break;
        }
    }
    t.chars().take(40).collect()
}

/// Percentile (0–1) of bucketed waits: the upper bound of the bucket it falls in (seconds;
/// `None` without data or past the last finite bucket).
pub fn bucket_percentile(counts: &BTreeMap<i64, i64>, p: f64) -> Option<i64> {
    let total: i64 = counts.values().sum();
    if total == 0 {
        return None;
    }
    let target = (p * total as f64).ceil() as i64;
    let mut seen = 0;
    for (bound, n) in counts {
        seen += n;
        if seen >= target.max(1) {
            return (*bound != i64::MAX).then_some(*bound);
        }
    }
    None
}

/// One day of the dashboard.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// New conversations.
    pub conversations: i64,
    /// Turns by intent.
    pub intents: BTreeMap<String, i64>,
    /// Handoffs by reason.
    pub handoffs: BTreeMap<String, i64>,
    /// 👍.
    pub feedback_up: i64,
    /// 👎.
    pub feedback_down: i64,
    /// Escalations claimed.
    pub claimed: i64,
    /// Waiting time until claimed, p50 (bucket upper bound, s).
    pub wait_p50_secs: Option<i64>,
    /// Waiting time until claimed, p95 (bucket upper bound, s).
    pub wait_p95_secs: Option<i64>,
    /// Mean queue length over the day's samples.
    pub queue_mean: Option<f64>,
    /// Longest queue seen in a sample.
    pub queue_peak: i64,
    /// Conversations resolved, by outcome.
    pub outcomes: BTreeMap<String, i64>,
}

/// The dashboard over some days: one row per day and the most frequent unanswered questions.
pub fn dashboard(rows: &[StatRow]) -> serde_json::Value {
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    let mut waits: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
    let mut samples: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut unanswered: BTreeMap<String, i64> = BTreeMap::new();
    for r in rows {
        let d = days.entry(r.day.clone()).or_insert_with(|| Day {
            day: r.day.clone(),
            ..Day::default()
        });
        match r.metric.as_str() {
            "conversations" => d.conversations += r.value,
            "intent" => *d.intents.entry(r.key.clone()).or_default() += r.value,
            "handoff" => *d.handoffs.entry(r.key.clone()).or_default() += r.value,
            "feedback" if r.key == "up" => d.feedback_up += r.value,
            "feedback" => d.feedback_down += r.value,
            "outcome" => *d.outcomes.entry(r.key.clone()).or_default() += r.value,
            "wait" => {
                d.claimed += r.value;
                let bound = if r.key == "inf" {
                    i64::MAX
                } else {
                    r.key.parse().unwrap_or(i64::MAX)
                };
                *waits
                    .entry(r.day.clone())
                    .or_default()
                    .entry(bound)
                    .or_default() += r.value;
            }
            "queue_samples" => samples.entry(r.day.clone()).or_default().0 += r.value,
            "queue_sum" => samples.entry(r.day.clone()).or_default().1 += r.value,
            "queue_peak" => d.queue_peak = d.queue_peak.max(r.value),
            "unanswered" => *unanswered.entry(r.key.clone()).or_default() += r.value,
            _ => {}
        }
    }
    for (day, d) in days.iter_mut() {
        if let Some(w) = waits.get(day) {
            d.wait_p50_secs = bucket_percentile(w, 0.5);
            d.wait_p95_secs = bucket_percentile(w, 0.95);
        }
        if let Some((n, sum)) = samples.get(day) {
            if *n > 0 {
                d.queue_mean = Some(*sum as f64 / *n as f64);
            }
        }
    }
    let mut top: Vec<(String, i64)> = unanswered.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(20);
    json!({
        "days": days.into_values().collect::<Vec<_>>(),
        "unanswered": top.into_iter().map(|(q, n)| json!({"question": q, "count": n})).collect::<Vec<_>>(),
    })
}

/// The aggregates as CSV (`day,metric,key,value`), keys quoted as CSV wants.
pub fn csv(rows: &[StatRow]) -> String {
    let field = |s: &str| {
        // A cell a spreadsheet would run as a formula is prefixed with a quote.
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    };
    let mut out = String::from("day,metric,key,value\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{}\n",
            field(&r.day),
            field(&r.metric),
            field(&r.key),
            r.value
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: &str, metric: &str, key: &str, value: i64) -> StatRow {
        StatRow {
            day: day.into(),
            metric: metric.into(),
            key: key.into(),
            value,
        }
    }

    #[test]
    fn waits_fall_in_buckets_and_percentiles_come_from_counts() {
        assert_eq!(wait_bucket(0), "30");
        assert_eq!(wait_bucket(31), "60");
        assert_eq!(wait_bucket(100_000), "inf");
        let rows = vec![
            row("2026-11-25", "wait", "30", 9),
            row("2026-11-25", "wait", "600", 1),
            row("2026-11-25", "queue_samples", "", 4),
            row("2026-11-25", "queue_sum", "", 6),
            row("2026-11-25", "queue_peak", "", 3),
            row("2026-11-25", "feedback", "up", 3),
            row("2026-11-25", "feedback", "down", 1),
            row("2026-11-25", "unanswered", "灵活就业社保补贴", 1),
            row("2026-11-26", "unanswered", "灵活就业社保补贴", 2),
            row("2026-11-26", "unanswered", "夜市摆摊", 1),
        ];
        let d = dashboard(&rows);
        let day = &d["days"][0];
        assert_eq!(day["claimed"], 10);
        assert_eq!(day["wait_p50_secs"], 30);
        assert_eq!(day["wait_p95_secs"], 600);
        assert_eq!(day["queue_mean"], 1.5);
        assert_eq!(day["queue_peak"], 3);
        assert_eq!(
            d["unanswered"][0],
            json!({"question": "灵活就业社保补贴", "count": 3})
        );
        assert_eq!(d["days"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn questions_group_without_greetings_particles_and_punctuation() {
        assert_eq!(
            question_group("请问，夜市摆摊需要办执照吗？"),
            "夜市摆摊需要办执照"
        );
        assert_eq!(
            question_group("您好 夜市摆摊需要办执照吗"),
            "夜市摆摊需要办执照"
        );
    }

    #[test]
    fn csv_quotes_what_needs_it_and_defuses_formulas() {
        let c = csv(&[row("2026-11-26", "unanswered", "=HYPERLINK(\"x\"),a", 1)]);
        assert_eq!(
            c,
            "day,metric,key,value\n2026-11-26,unanswered,\"'=HYPERLINK(\"\"x\"\"),a\",1\n"
        );
    }
}
