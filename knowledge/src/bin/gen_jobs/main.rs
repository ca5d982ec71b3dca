//! Writes the bundled sample job listings to stdout as JSONL:
//! `cargo run -p knowledge --bin gen-jobs > knowledge/data/jobs/sample_jobs.jsonl`.
//! The generator lives here, not in the library: nothing but this tool needs it.

mod sample;

fn main() {
    print!(
        "{}",
        sample::to_jsonl(&sample::generate(sample::COUNT, sample::SEED))
    );
}
