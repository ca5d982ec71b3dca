//! Writes the bundled sample job listings to stdout as JSONL:
//! `cargo run -p knowledge --bin gen-jobs > knowledge/data/jobs/sample_jobs.jsonl`.

fn main() {
    print!(
        "{}",
        knowledge::sample_jobs::to_jsonl(&knowledge::sample_jobs::generate(
            knowledge::sample_jobs::COUNT,
            knowledge::sample_jobs::SEED
        ))
    );
}
