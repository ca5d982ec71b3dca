//! Choosing the next token from logits: sampling as data, seeded so runs repeat.

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sampling {
    /// Always the most likely token.
    Greedy,
    /// Sample from the temperature-scaled distribution, optionally cut to the `top_k` most
    /// likely tokens and then to the smallest set with probability mass `top_p`.
    Sample {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Keep only this many most likely tokens.
        top_k: Option<usize>,
        /// Keep the smallest set of tokens whose probabilities sum to at least this.
        top_p: Option<f32>,
    },
}

/// Everything that decides which tokens are produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// The sampling rule.
    pub sampling: Sampling,
    /// Divides positive (multiplies negative) logits of recently generated tokens; 1.0
    /// disables it.
    pub repetition_penalty: f32,
    /// How many recently generated tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// Seed of the random generator: the same seed and prompt give the same text.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            sampling: Sampling::Greedy,
            repetition_penalty: 1.1,
            repeat_last_n: 64,
            seed: 42,
        }
    }
}

impl SamplingParams {
    /// Checks ranges, so that a bad request fails before it reaches the model.
    pub fn validate(&self) -> Result<()> {
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(Error::InvalidParams(
                "repetition_penalty must be > 0".into(),
            ));
        }
        if let Sampling::Sample {
            temperature,
            top_k,
            top_p,
        } = self.sampling
        {
            if !(temperature.is_finite() && temperature > 0.0) {
                return Err(Error::InvalidParams("temperature must be > 0".into()));
            }
            if top_k == Some(0) {
                return Err(Error::InvalidParams("top_k must be >= 1".into()));
            }
            if let Some(p) = top_p {
                if !(p > 0.0 && p <= 1.0) {
                    return Err(Error::InvalidParams("top_p must be in (0, 1]".into()));
                }
            }
        }
        Ok(())
    }
}

/// A seeded sampler.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler seeded from `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// Picks the next token. `logits` is modified (penalty, temperature); `history` holds the
    /// tokens the repetition penalty applies to.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let start = history.len().saturating_sub(p.repeat_last_n);
            let mut seen = std::collections::HashSet::new();
            for &t in &history[start..] {
                if seen.insert(t) {
                    if let Some(l) = logits.get_mut(t as usize) {
                        *l = if *l >= 0.0 {
                            *l / p.repetition_penalty
                        } else {
                            *l * p.repetition_penalty
                        };
                    }
                }
            }
        }
        match p.sampling {
            Sampling::Greedy => argmax(logits),
            Sampling::Sample {
                temperature,
                top_k,
                top_p,
            } => {
                let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
                // NaN logits sort last and are never chosen.
                idx.sort_unstable_by(|&a, &b| {
                    logits[b as usize]
                        .partial_cmp(&logits[a as usize])
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
                if let Some(k) = top_k {
                    idx.truncate(k.max(1));
                }
                let max = logits[idx[0] as usize];
                let mut probs: Vec<f32> = idx
                    .iter()
                    .map(|&i| ((logits[i as usize] - max) / temperature).exp())
                    .collect();
                let sum: f32 = probs.iter().sum();
                probs.iter_mut().for_each(|x| *x /= sum);
                if let Some(top_p) = top_p {
                    let mut acc = 0.0;
                    let mut keep = probs.len();
                    for (i, q) in probs.iter().enumerate() {
                        acc += q;
                        if acc >= top_p {
                            keep = i + 1;
                            break;
                        }
                    }
                    probs.truncate(keep);
                    idx.truncate(keep);
                }
                let total: f32 = probs.iter().sum();
                let mut r = self.rng.gen::<f32>() * total;
                for (i, q) in probs.iter().enumerate() {
                    r -= q;
                    if r <= 0.0 {
                        return idx[i];
                    }
                }
                idx[probs.len() - 1]
            }
        }
    }
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(sampling: Sampling, seed: u64) -> SamplingParams {
        SamplingParams {
            sampling,
            repetition_penalty: 1.0,
            repeat_last_n: 64,
            seed,
        }
    }

    #[test]
    fn greedy_takes_the_maximum() {
        let mut s = Sampler::new(params(Sampling::Greedy, 0));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_can_change_the_choice() {
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 2.0,
            ..params(Sampling::Greedy, 0)
        });
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[1]), 2);
    }

    #[test]
    fn top_k_one_is_greedy_and_seeds_repeat() {
        let logits = [0.5f32, 0.4, 0.3, 0.2, 1.0, 0.9];
        let mut s = Sampler::new(params(
            Sampling::Sample {
                temperature: 1.0,
                top_k: Some(1),
                top_p: None,
            },
            7,
        ));
        assert_eq!(s.sample(&mut logits.clone(), &[]), 4);
        let run = |seed| {
            let mut s = Sampler::new(params(
                Sampling::Sample {
                    temperature: 1.5,
                    top_k: None,
                    top_p: Some(0.95),
                },
                seed,
            ));
            (0..50)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(
            run(3),
            run(4),
            "different seeds should give different draws"
        );
    }

    #[test]
    fn top_p_cuts_the_tail() {
        // One token holds ~all the mass: top_p 0.5 must always pick it.
        let mut s = Sampler::new(params(
            Sampling::Sample {
                temperature: 1.0,
                top_k: None,
                top_p: Some(0.5),
            },
            1,
        ));
        for _ in 0..100 {
            assert_eq!(s.sample(&mut [0.0, 10.0, 0.0, 0.0], &[]), 1);
        }
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(params(
            Sampling::Sample {
                temperature: 0.0,
                top_k: None,
                top_p: None
            },
            0
        )
        .validate()
        .is_err());
        assert!(params(
            Sampling::Sample {
                temperature: 1.0,
                top_k: Some(0),
                top_p: None
            },
            0
        )
        .validate()
        .is_err());
        assert!(params(
            Sampling::Sample {
                temperature: 1.0,
                top_k: None,
                top_p: Some(1.5)
            },
            0
        )
        .validate()
        .is_err());
        assert!(params(Sampling::Greedy, 0).validate().is_ok());
    }
}
