//! Queries: a question becomes an e5 query vector and a BM25 vector; dense and sparse
//! candidates are fused with reciprocal-rank fusion inside Qdrant, under payload filters.
//! Expired job listings are excluded by the filter itself, never by post-filtering, so a
//! `limit` of results is never silently short of valid listings.

use chrono::NaiveDate;
use knowledge::jobs::{EmploymentType, Group, JobListing, SalaryUnit};
use models::embed::Embedder;
use serde_json::Value;

use crate::indexer::day_number;
use crate::lexical::Bm25;
use crate::store::{Condition, Filter, Hit, Mode, Search, VectorStore, JOBS, POLICY_CHUNKS};
use crate::Result;

/// Candidates each ranking contributes to the fusion.
const PREFETCH: usize = 40;

/// A policy search.
#[derive(Debug, Clone)]
pub struct PolicyQuery {
    /// The question.
    pub text: String,
    /// Only documents for these regions (e.g. `[青岛市, 山东省, 全国]`); empty: any.
    pub regions: Vec<String>,
    /// Only documents with one of these topics; empty: any.
    pub topics: Vec<String>,
    /// Only documents for one of these groups; empty: any.
    pub groups: Vec<String>,
    /// Results wanted.
    pub limit: usize,
    /// Ranking.
    pub mode: Mode,
}

impl PolicyQuery {
    /// A hybrid query with no filters.
    pub fn new(text: impl Into<String>, limit: usize) -> Self {
        Self {
            text: text.into(),
            regions: vec![],
            topics: vec![],
            groups: vec![],
            limit,
            mode: Mode::Hybrid,
        }
    }
}

/// A policy passage found.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyHit {
    /// Score of the ranking used.
    pub score: f32,
    /// Document id (file stem).
    pub doc_id: String,
    /// Title.
    pub title: String,
    /// 文号, may be empty.
    pub doc_number: String,
    /// The region the document applies to (全国, 山东省, 济南市; empty when unknown).
    pub region: String,
    /// Section path, ` > `-joined.
    pub section: String,
    /// Article label, when any.
    pub article: Option<String>,
    /// The passage.
    pub text: String,
}

/// A job search.
#[derive(Debug, Clone)]
pub struct JobQuery {
    /// What the person is looking for.
    pub text: String,
    /// Cities (any of); empty: all of Shandong.
    pub cities: Vec<String>,
    /// Districts (any of); empty: any.
    pub districts: Vec<String>,
    /// Employment types (any of); empty: any.
    pub types: Vec<EmploymentType>,
    /// At least this pay (in the given unit): listings whose maximum reaches it.
    pub min_salary: Option<(u32, SalaryUnit)>,
    /// At most this pay (in `min_salary`'s unit, or per month): listings whose minimum stays
    /// at or below it ("一万左右" is a range, not a floor).
    pub max_salary: Option<u32>,
    /// Groups (any of); empty: any.
    pub groups: Vec<Group>,
    /// Accepted education requirements (any of, e.g. 不限, 高中, 大专); empty: any.
    pub educations: Vec<String>,
    /// Listings must be valid on this day.
    pub today: NaiveDate,
    /// Results wanted.
    pub limit: usize,
    /// Ranking.
    pub mode: Mode,
}

/// A job listing found.
#[derive(Debug, Clone, PartialEq)]
pub struct JobHit {
    /// Score of the ranking used.
    pub score: f32,
    /// The listing.
    pub listing: JobListing,
}

/// Candidates from each first-stage ranking that the reranker rescores.
pub const RERANK_CANDIDATES: usize = 20;

/// Searches the collections.
pub struct Retriever<'a> {
    /// The store.
    pub store: &'a dyn VectorStore,
    /// Query vectors.
    pub embedder: &'a Embedder,
    /// Query BM25.
    pub bm25: &'a Bm25,
}

fn any_of(key: &str, values: &[String]) -> Option<Condition> {
    (!values.is_empty()).then(|| Condition::AnyOf {
        key: key.into(),
        values: values.to_vec(),
    })
}

impl Retriever<'_> {
    fn search(
        &self,
        collection: &str,
        text: &str,
        filter: Filter,
        limit: usize,
        mode: Mode,
    ) -> Result<Vec<Hit>> {
        let dense = if mode == Mode::Sparse {
            vec![0.0; crate::DENSE_DIM]
        } else {
            self.embedder.embed_query(text)?
        };
        let search = Search {
            dense,
            sparse: self.bm25.query(text),
            filter,
            limit,
            mode,
            prefetch: PREFETCH,
        };
        self.store.search(collection, &search)
    }

    /// Policy passages for a question, reranked ([`crate::rerank`]): the first 20 of the
    /// hybrid and of the BM25 ranking, rescored, the best `q.limit` kept. This is what answers
    /// are given.
    pub fn search_policies_reranked(&self, q: &PolicyQuery) -> Result<Vec<PolicyHit>> {
        let wide = |mode| PolicyQuery {
            mode,
            limit: RERANK_CANDIDATES.max(q.limit),
            ..q.clone()
        };
        let hybrid = self.search_policies(&wide(Mode::Hybrid))?;
        let bm25 = self.search_policies(&wide(Mode::Sparse))?;
        Ok(crate::rerank::rerank(&q.text, hybrid, bm25, q.limit))
    }

    /// Policy passages for a question, in the ranking of `q.mode`.
    pub fn search_policies(&self, q: &PolicyQuery) -> Result<Vec<PolicyHit>> {
        let mut f = Filter::default();
        f.must.extend(any_of("region", &q.regions));
        f.must.extend(any_of("topics", &q.topics));
        f.must.extend(any_of("groups", &q.groups));
        let hits = self.search(POLICY_CHUNKS, &q.text, f, q.limit, q.mode)?;
        Ok(hits
            .into_iter()
            .map(|h| {
                let s = |k: &str| {
                    h.payload
                        .get(k)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                PolicyHit {
                    score: h.score,
                    doc_id: s("doc_id"),
                    title: s("title"),
                    doc_number: s("doc_number"),
                    region: s("region"),
                    section: s("section"),
                    article: h
                        .payload
                        .get("article")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    text: s("text"),
                }
            })
            .collect())
    }

    /// Valid job listings matching the filters, best first.
    pub fn search_jobs(&self, q: &JobQuery) -> Result<Vec<JobHit>> {
        let today = day_number(q.today) as f64;
        let mut f = Filter::default()
            .and(Condition::Range {
                key: "posted_day".into(),
                gte: None,
                lte: Some(today),
            })
            .and(Condition::Range {
                key: "expires_day".into(),
                gte: Some(today),
                lte: None,
            });
        f.must.extend(any_of("city", &q.cities));
        f.must.extend(any_of("district", &q.districts));
        let types: Vec<String> = q.types.iter().map(|t| t.as_str().to_string()).collect();
        f.must.extend(any_of("employment_type", &types));
        let groups: Vec<String> = q.groups.iter().map(|g| g.as_str().to_string()).collect();
        f.must.extend(any_of("groups", &groups));
        f.must.extend(any_of("education", &q.educations));
        if let Some((amount, unit)) = q.min_salary {
            f.must.push(Condition::AnyOf {
                key: "salary_unit".into(),
                values: vec![unit.as_str().into()],
            });
            f.must.push(Condition::Range {
                key: "salary_max".into(),
                gte: Some(f64::from(amount)),
                lte: None,
            });
        }
        if let Some(max) = q.max_salary {
            if q.min_salary.is_none() {
                f.must.push(Condition::AnyOf {
                    key: "salary_unit".into(),
                    values: vec![SalaryUnit::Month.as_str().into()],
                });
            }
            f.must.push(Condition::Range {
                key: "salary_min".into(),
                gte: None,
                lte: Some(f64::from(max)),
            });
        }
        let hits = self.search(JOBS, &q.text, f, q.limit, q.mode)?;
        Ok(hits
            .into_iter()
            .filter_map(|h| {
                let score = h.score;
                // Extra payload fields (hashes, day numbers) are ignored by the listing schema.
                serde_json::from_value::<JobListing>(Value::Object(h.payload))
                    .ok()
                    .map(|listing| JobHit { score, listing })
            })
            .collect())
    }
}
