//! GGUF language models on candle: loading, prompting and streamed generation.
//!
//! [`Llm::load`] reads a GGUF, dispatches on `general.architecture` (qwen2, qwen3 and llama run
//! on our [`decoder`]; gemma3 on candle-transformers' implementation), builds the tokenizer from
//! the file's metadata and picks the chat template. [`Llm::generate`] prefills the prompt, then
//! samples token by token, handing each complete piece of text to a callback that can stop it.
//!
//! Underneath, a generation is a [`Sequence`] with its own keys and values, moved along in
//! steps — [`Llm::begin`], [`Llm::prefill`] (in chunks), [`Llm::advance`] (choose a token),
//! [`Llm::decode`] (one pass for the next token of *several* sequences), [`Llm::finish`] — so
//! the generator worker can decode many requests in one pass and interleave a long prompt's
//! prefill with the streams already running. Finished sequences leave their keys and values
//! in a small prefix store, from which a later prompt sharing the system prompt or extending a
//! previous turn takes its common prefix.

pub mod decoder;
pub mod linear;
pub mod qlinear;
pub mod stream;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use candle_core::quantized::GgmlDType;
pub use linear::PrefillWeights;

/// Q8_0, the re-quantization target with SIMD kernels in candle.
pub const Q8_0: GgmlDType = GgmlDType::Q8_0;

use crate::chat_template::{ChatMessage, ChatTemplate};
use crate::sampling::{Sampler, SamplingParams};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// How a model is loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadOptions {
    /// Re-quantize Q5_0 weights to this type at load. candle's Q5_0 dot product is scalar
    /// code while Q8_0 has AVX2/AVX-512 kernels, so `q8_0` speeds up decoding for ~50% more
    /// memory on those tensors. `None` keeps the file's types.
    #[serde(with = "dtype_name")]
    pub requantize: Option<GgmlDType>,
    /// How prefill multiplies by the weights (see [`PrefillWeights`]).
    pub prefill: PrefillWeights,
    /// Upper bound on the context (prompt + answer) in tokens, to bound memory.
    pub max_context: usize,
    /// Keep the keys and values of the last generation and reuse them for the next prompt's
    /// common prefix up to its last special token (the system prompt, a previous turn), so
    /// only the rest is prefilled. Default on.
    pub prefix_cache: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            requantize: Some(GgmlDType::Q8_0),
            prefill: PrefillWeights::default(),
            max_context: 8192,
            prefix_cache: true,
        }
    }
}

mod dtype_name {
    use candle_core::quantized::GgmlDType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<GgmlDType>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(GgmlDType::Q8_0) => s.serialize_str("q8_0"),
            Some(GgmlDType::F16) => s.serialize_str("f16"),
            Some(GgmlDType::F32) => s.serialize_str("f32"),
            Some(other) => s.serialize_str(&format!("{other:?}").to_lowercase()),
            None => s.serialize_str("none"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GgmlDType>, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "none" => Ok(None),
            "q8_0" => Ok(Some(GgmlDType::Q8_0)),
            "f16" => Ok(Some(GgmlDType::F16)),
            "f32" => Ok(Some(GgmlDType::F32)),
            other => Err(serde::de::Error::custom(format!(
                "requantize: expected none, q8_0, f16 or f32, got {other:?}"
            ))),
        }
    }
}

/// What one generation may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationParams {
    /// Stop after this many new tokens.
    pub max_tokens: usize,
    /// Token choice.
    pub sampling: SamplingParams,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            sampling: SamplingParams::default(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The receiver of the text went away.
    Cancelled,
}

/// Counts and timings of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (stop token excluded).
    pub completion_tokens: usize,
    /// Why it ended.
    pub finish: FinishReason,
    /// Time to run the prompt through the model.
    pub prefill: Duration,
    /// Time from the call until the first token was chosen.
    pub time_to_first_token: Duration,
    /// Time of the whole call.
    pub total: Duration,
    /// Prompt tokens whose keys and values were reused from the previous generation (the
    /// prefix cache); only the rest was prefilled.
    pub reused_tokens: usize,
}

/// The result of a generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// Generated token ids.
    pub tokens: Vec<u32>,
    /// Their decoding (special tokens skipped).
    pub text: String,
    /// Counts and timings.
    pub stats: GenerationStats,
}

/// Facts about a loaded model, for logs and reports.
#[derive(Debug, Clone, Serialize)]
pub struct LlmInfo {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// `general.architecture`.
    pub arch: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    /// Usable context in tokens.
    pub context: usize,
    /// Number of linear weights per type after loading, e.g. `[("Q8_0", 133), ("Q4K", 24)]`.
    pub weight_types: Vec<(String, usize)>,
    /// Wall time of loading.
    pub load_time: Duration,
}

enum Model {
    Decoder(Box<decoder::Decoder>),
    Gemma3(Box<candle_transformers::models::quantized_gemma3::ModelWeights>),
}

/// Positions the prefix store keeps over all its entries (oldest entries go first): enough
/// for a few recent conversations, bounded so it cannot grow with traffic (~25 KB per
/// position on the default model, ~57 KB on the 1.5B one).
const PREFIX_STORE_POSITIONS: usize = 8192;

/// One generation in progress: its prompt, its keys and values, what it has produced.
pub struct Sequence {
    prompt: Vec<u32>,
    params: GenerationParams,
    /// `None` where the model holds the cache itself (gemma3: one sequence at a time).
    pub(crate) cache: Option<decoder::KvCache>,
    /// Prompt tokens whose keys and values are computed.
    pub(crate) fed: usize,
    reused: usize,
    sampler: Sampler,
    pub(crate) generated: Vec<u32>,
    stream: stream::TextStream,
    /// Logits of the last position computed, waiting for [`Llm::advance`].
    pub(crate) logits: Option<Vec<f32>>,
    start: Instant,
    prefill: Option<Duration>,
    ttft: Option<Duration>,
    finish: Option<FinishReason>,
}

impl std::fmt::Debug for Sequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequence")
            .field("prompt", &self.prompt.len())
            .field("fed", &self.fed)
            .field("generated", &self.generated.len())
            .field("finish", &self.finish)
            .finish()
    }
}

impl Sequence {
    /// Whether the whole prompt has been run.
    pub fn is_prefilled(&self) -> bool {
        self.fed == self.prompt.len()
    }

    /// Prompt tokens not yet run.
    pub fn pending_prompt(&self) -> usize {
        self.prompt.len() - self.fed
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    /// Why it ended, once it has.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Bytes its keys and values hold (allocated).
    pub fn kv_bytes(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.bytes())
    }

    /// Positions its keys and values hold.
    pub fn kv_len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// The logits the last pass left for choosing the next token, if not yet used.
    pub fn last_logits(&self) -> Option<&[f32]> {
        self.logits.as_deref()
    }

    /// Stops it: nobody listens any more.
    pub fn cancel(&mut self) {
        self.finish.get_or_insert(FinishReason::Cancelled);
        self.logits = None;
    }
}

/// A loaded language model with its tokenizer and chat template.
pub struct Llm {
    model: Model,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stop: Vec<u32>,
    info: LlmInfo,
    /// Finished sequences' token ids and keys/values, oldest first, for the prefix cache.
    store: Vec<(Vec<u32>, decoder::KvCache)>,
    /// The cache of direct [`Llm::forward`] calls.
    scratch: Option<decoder::KvCache>,
    prefix_cache: bool,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm").field("info", &self.info).finish()
    }
}

impl Llm {
    /// Loads a GGUF file.
    #[tracing::instrument(skip_all, fields(path = %path.display()))]
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let start = Instant::now();
        let mut file = std::fs::File::open(path).map_err(Error::io("opening", path))?;
        let mut reader = std::io::BufReader::new(&mut file);
        let ct = gguf_file::Content::read(&mut reader)
            .map_err(|e| Error::invalid(path, format!("not a readable GGUF: {e}")))?;
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .ok_or_else(|| Error::invalid(path, "metadata lacks general.architecture"))?;
        let name = ct
            .metadata
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned();
        let tokenizer = Tokenizer::from_gguf_metadata(&ct.metadata)?;
        let template = ChatTemplate::detect(&tokenizer)?;
        let (model, context, weight_types) = match arch.as_str() {
            "qwen2" | "qwen3" | "llama" => {
                let cfg = decoder::DecoderConfig::from_gguf(&ct, path, &arch, opts.max_context)?;
                let d = decoder::Decoder::load(&ct, &mut reader, path, cfg, opts)?;
                let context = d.config().context;
                let types = count_types(d.linear_dtypes());
                (Model::Decoder(Box::new(d)), context, types)
            }
            "gemma3" => {
                let context = ct
                    .metadata
                    .get("gemma3.context_length")
                    .and_then(|v| v.to_u32().ok())
                    .map(|c| c as usize)
                    .unwrap_or(8192)
                    .min(opts.max_context);
                let types = count_types(
                    ct.tensor_infos
                        .values()
                        .filter(|t| t.shape.rank() == 2)
                        .map(|t| t.ggml_dtype)
                        .collect(),
                );
                let m = candle_transformers::models::quantized_gemma3::ModelWeights::from_gguf(
                    ct,
                    &mut reader,
                    &Device::Cpu,
                )?;
                (Model::Gemma3(Box::new(m)), context, types)
            }
            other => return Err(Error::UnsupportedArchitecture(other.to_string())),
        };
        let mut stop: Vec<u32> = Vec::new();
        stop.extend(tokenizer.eos());
        stop.extend(template.end_of_turn(&tokenizer));
        stop.extend(tokenizer.token_id("<|endoftext|>"));
        stop.sort_unstable();
        stop.dedup();
        let info = LlmInfo {
            path: path.to_path_buf(),
            arch,
            name,
            context,
            weight_types,
            load_time: start.elapsed(),
        };
        tracing::info!(arch = %info.arch, context, load_ms = info.load_time.as_millis() as u64, "model loaded");
        let prefix_cache = opts.prefix_cache && matches!(model, Model::Decoder(_));
        Ok(Self {
            model,
            tokenizer,
            template,
            stop,
            info,
            store: Vec::new(),
            scratch: None,
            // candle's gemma3 rebuilds its cache whenever a pass starts at position 0 and
            // cannot keep a prefix.
            prefix_cache,
        })
    }

    /// Facts about the model.
    pub fn info(&self) -> &LlmInfo {
        &self.info
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The chat template in use.
    pub fn template(&self) -> ChatTemplate {
        self.template
    }

    /// Tokens that end generation.
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop
    }

    /// Renders chat messages into prompt tokens (the assistant's turn left open).
    pub fn render(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        self.template.render(&self.tokenizer, messages)
    }

    /// Uses another chat template. The prefix cache is dropped: prompts rendered with another
    /// template must never reuse keys and values computed for the old one.
    pub fn set_template(&mut self, template: ChatTemplate) {
        self.template = template;
        self.clear_kv_cache();
    }

    /// How many leading tokens of `prompt` can keep cached keys and values: the longest
    /// common prefix with a stored sequence, cut back to end at a special token (a turn
    /// boundary, where tokenization cannot merge across), leaving at least one token to run.
    pub fn reusable_prefix(&self, prompt: &[u32]) -> usize {
        self.best_prefix(prompt).map_or(0, |(_, n)| n)
    }

    /// The stored entry with the longest reusable prefix of `prompt`, and that length.
    fn best_prefix(&self, prompt: &[u32]) -> Option<(usize, usize)> {
        if !self.prefix_cache || prompt.len() < 2 {
            return None;
        }
        self.store
            .iter()
            .enumerate()
            .filter_map(|(i, (tokens, _))| {
                let common = tokens
                    .iter()
                    .zip(prompt)
                    .take_while(|(a, b)| a == b)
                    .count()
                    .min(prompt.len() - 1);
                (1..=common)
                    .rev()
                    .find(|&n| self.tokenizer.is_special(prompt[n - 1]))
                    .map(|n| (i, n))
            })
            .max_by_key(|&(i, n)| (n, i))
    }

    /// Forgets every cached key and value (the prefix store and direct passes' cache).
    pub fn clear_kv_cache(&mut self) {
        self.store.clear();
        self.scratch = None;
    }

    /// How many sequences one [`Llm::decode`] pass can take.
    pub fn max_batch(&self) -> usize {
        match self.model {
            Model::Decoder(_) => usize::MAX,
            // candle's gemma3 holds one cache inside the model.
            Model::Gemma3(_) => 1,
        }
    }

    /// Runs `tokens` at positions `offset..` of one sequence kept for direct calls, and
    /// returns the last position's logits. An offset below what that sequence holds drops
    /// the rest; [`Llm::clear_kv_cache`] empties it.
    pub fn forward(&mut self, tokens: &[u32], offset: usize) -> Result<Vec<f32>> {
        match &mut self.model {
            Model::Decoder(d) => {
                let cache = self.scratch.get_or_insert_with(|| d.new_cache());
                d.forward(cache, tokens, offset)
            }
            Model::Gemma3(model) => {
                let x = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                Ok(model.forward(&x, offset)?.flatten_all()?.to_vec1()?)
            }
        }
    }

    /// Generates the assistant's reply to `messages`; see [`Llm::generate_from`].
    pub fn generate(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let prompt = self.render(messages)?;
        self.generate_from(&prompt, params, on_text)
    }

    /// Generates from prompt tokens. Each complete piece of text is passed to `on_text` as soon
    /// as it exists; when `on_text` returns `false` (the listener is gone) generation stops
    /// before the next token is computed.
    #[tracing::instrument(skip_all, fields(prompt_tokens = prompt.len(), max_tokens = params.max_tokens))]
    pub fn generate_from(
        &mut self,
        prompt: &[u32],
        params: &GenerationParams,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let mut seq = self.begin(prompt.to_vec(), params.clone())?;
        self.prefill(&mut seq, usize::MAX)?;
        while self.advance(&mut seq, &mut on_text) {
            self.decode(&mut [&mut seq])?;
        }
        Ok(self.finish(seq, &mut on_text))
    }

    /// Starts a generation: checks its limits and takes the longest reusable prefix of its
    /// prompt from the prefix store (a copy: the stored entry stays for other prompts).
    pub fn begin(&mut self, prompt: Vec<u32>, params: GenerationParams) -> Result<Sequence> {
        params.sampling.validate()?;
        if prompt.is_empty() {
            return Err(Error::InvalidParams("empty prompt".into()));
        }
        if params.max_tokens == 0 {
            return Err(Error::InvalidParams("max_tokens must be >= 1".into()));
        }
        if prompt.len() + params.max_tokens > self.info.context {
            return Err(Error::ContextOverflow {
                prompt: prompt.len(),
                max_new: params.max_tokens,
                context: self.info.context,
            });
        }
        let start = Instant::now();
        let (cache, reused) = match &self.model {
            Model::Decoder(d) => match self.best_prefix(&prompt) {
                Some((i, n)) => (Some(self.store[i].1.prefix(n)), n),
                None => (Some(d.new_cache()), 0),
            },
            Model::Gemma3(_) => (None, 0),
        };
        Ok(Sequence {
            sampler: Sampler::new(params.sampling.clone()),
            prompt,
            params,
            cache,
            fed: reused,
            reused,
            generated: Vec::new(),
            stream: stream::TextStream::new(),
            logits: None,
            start,
            prefill: None,
            ttft: None,
            finish: None,
        })
    }

    /// Runs up to `chunk` more of the prompt (at least one token). When the prompt is done,
    /// the sequence holds the logits for its first token.
    pub fn prefill(&mut self, seq: &mut Sequence, chunk: usize) -> Result<()> {
        if seq.is_prefilled() {
            return Ok(());
        }
        let end = seq.fed + chunk.max(1).min(seq.pending_prompt());
        let tokens = &seq.prompt[seq.fed..end];
        let logits = match (&mut self.model, &mut seq.cache) {
            (Model::Decoder(d), Some(cache)) => d.forward(cache, tokens, seq.fed)?,
            (Model::Gemma3(model), None) => {
                let x = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                model.forward(&x, seq.fed)?.flatten_all()?.to_vec1()?
            }
            _ => return Err(Error::Internal("a sequence of another model".into())),
        };
        seq.fed = end;
        if seq.is_prefilled() {
            seq.logits = Some(logits);
            seq.prefill = Some(seq.start.elapsed());
        }
        Ok(())
    }

    /// Chooses the next token from the logits the last pass left, and hands any completed
    /// text to `on_text`. Returns whether the sequence goes on (needs a [`Llm::decode`] pass);
    /// `false` when it stopped, reached `max_tokens`, or `on_text` returned `false`.
    pub fn advance(&self, seq: &mut Sequence, on_text: &mut dyn FnMut(&str) -> bool) -> bool {
        if seq.finish.is_some() {
            return false;
        }
        let Some(mut logits) = seq.logits.take() else {
            return false;
        };
        // The repetition penalty looks at the answer only: penalising prompt tokens would push
        // the model away from copying the evidence it is meant to quote.
        let next = seq.sampler.sample(&mut logits, &seq.generated);
        seq.ttft.get_or_insert_with(|| seq.start.elapsed());
        if self.stop.contains(&next) {
            seq.finish = Some(FinishReason::Stop);
            return false;
        }
        seq.generated.push(next);
        if !self.tokenizer.is_special(next) {
            if let Some(piece) = seq.stream.push(self.tokenizer.token_bytes(next)) {
                if !on_text(&piece) {
                    seq.finish = Some(FinishReason::Cancelled);
                    return false;
                }
            }
        }
        if seq.generated.len() >= seq.params.max_tokens {
            seq.finish = Some(FinishReason::Length);
            return false;
        }
        true
    }

    /// Runs the last chosen token of every sequence through the model in one pass and leaves
    /// each its logits. On an error no sequence has moved.
    pub fn decode(&mut self, seqs: &mut [&mut Sequence]) -> Result<()> {
        let tokens: Vec<u32> = seqs
            .iter()
            .map(|s| s.generated.last().copied())
            .collect::<Option<_>>()
            .ok_or_else(|| Error::Internal("decode before a token was chosen".into()))?;
        let logits = match &mut self.model {
            Model::Decoder(d) => {
                let mut caches: Vec<&mut decoder::KvCache> = seqs
                    .iter_mut()
                    .map(|s| s.cache.as_mut())
                    .collect::<Option<_>>()
                    .ok_or_else(|| Error::Internal("a sequence of another model".into()))?;
                d.decode_batch(&mut caches, &tokens)?
            }
            Model::Gemma3(model) => {
                let [seq] = seqs else {
                    return Err(Error::Internal(
                        "gemma3 decodes one sequence at a time".into(),
                    ));
                };
                let pos = seq.prompt.len() + seq.generated.len() - 1;
                let x = Tensor::new(&tokens[..], &Device::Cpu)?.unsqueeze(0)?;
                vec![model.forward(&x, pos)?.flatten_all()?.to_vec1()?]
            }
        };
        for (s, l) in seqs.iter_mut().zip(logits) {
            s.logits = Some(l);
        }
        Ok(())
    }

    /// Ends a sequence: the text still held back goes to `on_text` (unless it was cancelled),
    /// its keys and values go to the prefix store.
    pub fn finish(
        &mut self,
        mut seq: Sequence,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Generation {
        let finish = seq.finish.unwrap_or(FinishReason::Length);
        if finish != FinishReason::Cancelled {
            if let Some(rest) = seq.stream.finish() {
                on_text(&rest);
            }
        }
        let prefill = seq.prefill.unwrap_or_else(|| seq.start.elapsed());
        let stats = GenerationStats {
            prompt_tokens: seq.prompt.len(),
            completion_tokens: seq.generated.len(),
            finish,
            prefill,
            time_to_first_token: seq.ttft.unwrap_or(prefill),
            total: seq.start.elapsed(),
            reused_tokens: seq.reused,
        };
        tracing::debug!(
            completion_tokens = stats.completion_tokens,
            reused_tokens = seq.reused,
            ?finish,
            "generation finished"
        );
        let text = self.tokenizer.decode(&seq.generated, true);
        if let (true, Some(cache)) = (self.prefix_cache, seq.cache.take()) {
            // The tokens whose keys and values the cache holds: the prompt and every
            // generated token but the last, which was never run.
            let mut tokens = seq.prompt.clone();
            tokens.extend_from_slice(&seq.generated);
            tokens.truncate(cache.len());
            if tokens.len() == cache.len() {
                // An earlier turn of the same conversation is a prefix of this one: this
                // entry serves everything it served.
                self.store.retain(|(t, _)| !tokens.starts_with(t));
                self.store.push((tokens, cache));
                let mut total: usize = self.store.iter().map(|(t, _)| t.len()).sum();
                while total > PREFIX_STORE_POSITIONS && self.store.len() > 1 {
                    total -= self.store.remove(0).0.len();
                }
            }
        }
        Generation {
            tokens: seq.generated,
            text,
            stats,
        }
    }
}

fn count_types(types: Vec<GgmlDType>) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for t in types {
        let name = format!("{t:?}");
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    counts
}
