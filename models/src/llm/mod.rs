//! GGUF language models on candle: loading, prompting and streamed generation.
//!
//! [`Llm::load`] reads a GGUF, dispatches on `general.architecture` (qwen2, qwen3 and llama run
//! on our [`decoder`]; gemma3 on candle-transformers' implementation), builds the tokenizer from
//! the file's metadata and picks the chat template. [`Llm::generate`] prefills the prompt, then
//! samples token by token, handing each complete piece of text to a callback that can stop it.

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
    Decoder(decoder::Decoder),
    Gemma3(Box<candle_transformers::models::quantized_gemma3::ModelWeights>),
}

/// A loaded language model with its tokenizer and chat template.
pub struct Llm {
    model: Model,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stop: Vec<u32>,
    info: LlmInfo,
    /// The token ids whose keys and values the cache holds, in order; empty when the cache
    /// must not be trusted (cleared, or a pass failed midway).
    kv_tokens: Vec<u32>,
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
                (Model::Decoder(d), context, types)
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
            kv_tokens: Vec::new(),
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

    /// How many leading tokens of `prompt` can keep their cached keys and values: the common
    /// prefix with what the cache holds, cut back to end at a special token (a turn boundary,
    /// where tokenization cannot merge across), leaving at least one token to run.
    pub fn reusable_prefix(&self, prompt: &[u32]) -> usize {
        if !self.prefix_cache || prompt.len() < 2 {
            return 0;
        }
        let common = self
            .kv_tokens
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        (1..=common)
            .rev()
            .find(|&n| self.tokenizer.is_special(prompt[n - 1]))
            .unwrap_or(0)
    }

    /// Forgets the KV cache.
    pub fn clear_kv_cache(&mut self) {
        self.kv_tokens.clear();
        match &mut self.model {
            Model::Decoder(d) => d.clear_kv_cache(),
            // candle's gemma3 replaces its cache whenever a forward pass starts at position 0.
            Model::Gemma3(_) => {}
        }
    }

    /// Runs `tokens` at positions `offset..` and returns the last position's logits. What
    /// the cache holds is then the caller's business: the prefix cache forgets it.
    pub fn forward(&mut self, tokens: &[u32], offset: usize) -> Result<Vec<f32>> {
        self.kv_tokens.clear();
        self.run(tokens, offset)
    }

    fn run(&mut self, tokens: &[u32], offset: usize) -> Result<Vec<f32>> {
        match &mut self.model {
            Model::Decoder(d) => d.forward(tokens, offset),
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
        let reused = self.reusable_prefix(prompt);
        // Until the pass succeeds the cache's contents are unknown.
        self.kv_tokens.clear();
        let mut logits = if reused > 0 {
            // Positions continue after the kept prefix; the entries past it are dropped.
            self.run(&prompt[reused..], reused)?
        } else {
            self.clear_kv_cache();
            self.run(prompt, 0)?
        };
        self.kv_tokens.extend_from_slice(prompt);
        let prefill = start.elapsed();
        let mut sampler = Sampler::new(params.sampling.clone());
        let mut generated = Vec::new();
        let mut stream = stream::TextStream::new();
        let mut ttft = None;
        let mut finish = FinishReason::Length;
        let mut listening = true;
        while generated.len() < params.max_tokens {
            // The repetition penalty looks at the answer only: penalising prompt tokens would
            // push the model away from copying the evidence it is meant to quote.
            let next = sampler.sample(&mut logits, &generated);
            ttft.get_or_insert_with(|| start.elapsed());
            if self.stop.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            generated.push(next);
            if !self.tokenizer.is_special(next) {
                if let Some(piece) = stream.push(self.tokenizer.token_bytes(next)) {
                    listening = on_text(&piece);
                }
            }
            if !listening {
                finish = FinishReason::Cancelled;
                break;
            }
            if generated.len() == params.max_tokens {
                break;
            }
            let fed = self.run(&[next], prompt.len() + generated.len() - 1);
            match fed {
                Ok(l) => {
                    logits = l;
                    self.kv_tokens.push(next);
                }
                Err(e) => {
                    self.kv_tokens.clear();
                    return Err(e);
                }
            }
        }
        if listening {
            if let Some(rest) = stream.finish() {
                on_text(&rest);
            }
        }
        let stats = GenerationStats {
            prompt_tokens: prompt.len(),
            completion_tokens: generated.len(),
            finish,
            prefill,
            time_to_first_token: ttft.unwrap_or(prefill),
            total: start.elapsed(),
            reused_tokens: reused,
        };
        tracing::debug!(
            completion_tokens = stats.completion_tokens,
            reused_tokens = reused,
            ?finish,
            "generation finished"
        );
        let text = self.tokenizer.decode(&generated, true);
        Ok(Generation {
            tokens: generated,
            text,
            stats,
        })
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
