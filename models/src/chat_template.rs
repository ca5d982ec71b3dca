//! Chat templates: `[system, user, assistant, …]` messages to prompt tokens.
//!
//! The template is chosen from the vocabulary's turn markers rather than by evaluating the
//! GGUF's Jinja template: three families cover the architectures we run (ChatML for Qwen,
//! Llama 3 headers, Gemma turns). Message content is tokenized with special tokens disabled, so
//! a user cannot forge `<|im_start|>system` by typing it.

use serde::{Deserialize, Serialize};

use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The citizen.
    User,
    /// The model's earlier replies.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// What was written.
    pub content: String,
}

impl ChatMessage {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// The template families we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n…<|im_end|>\n` (Qwen).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (Llama 3).
    Llama3,
    /// `<start_of_turn>user\n…<end_of_turn>\n` (Gemma; system text joins the first user turn).
    Gemma,
}

impl ChatTemplate {
    /// Picks the template whose markers the vocabulary contains.
    pub fn detect(tok: &Tokenizer) -> Result<Self> {
        if tok.token_id("<|im_start|>").is_some() && tok.token_id("<|im_end|>").is_some() {
            Ok(Self::ChatMl)
        } else if tok.token_id("<|start_header_id|>").is_some()
            && tok.token_id("<|eot_id|>").is_some()
        {
            Ok(Self::Llama3)
        } else if tok.token_id("<start_of_turn>").is_some()
            && tok.token_id("<end_of_turn>").is_some()
        {
            Ok(Self::Gemma)
        } else {
            Err(Error::Tokenizer(
                "no known chat template markers in the vocabulary".into(),
            ))
        }
    }

    /// The token that ends an assistant turn.
    pub fn end_of_turn(&self, tok: &Tokenizer) -> Option<u32> {
        tok.token_id(match self {
            Self::ChatMl => "<|im_end|>",
            Self::Llama3 => "<|eot_id|>",
            Self::Gemma => "<end_of_turn>",
        })
    }

    /// Renders messages and opens the assistant's turn, returning prompt token ids.
    pub fn render(&self, tok: &Tokenizer, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        if messages.is_empty() {
            return Err(Error::InvalidParams("no messages to render".into()));
        }
        let mut ids = Vec::new();
        if tok.add_bos() {
            ids.extend(tok.bos());
        }
        let special = |s: &str, ids: &mut Vec<u32>| ids.extend(tok.encode(s, true));
        let text = |s: &str, ids: &mut Vec<u32>| ids.extend(tok.encode(s, false));
        match self {
            Self::ChatMl => {
                for m in messages {
                    special(
                        &format!("<|im_start|>{}\n", role_name(m.role, "assistant")),
                        &mut ids,
                    );
                    text(&m.content, &mut ids);
                    special("<|im_end|>\n", &mut ids);
                }
                special("<|im_start|>assistant\n", &mut ids);
            }
            Self::Llama3 => {
                if !tok.add_bos() {
                    special("<|begin_of_text|>", &mut ids);
                }
                for m in messages {
                    special(
                        &format!(
                            "<|start_header_id|>{}<|end_header_id|>\n\n",
                            role_name(m.role, "assistant")
                        ),
                        &mut ids,
                    );
                    text(&m.content, &mut ids);
                    special("<|eot_id|>", &mut ids);
                }
                special(
                    "<|start_header_id|>assistant<|end_header_id|>\n\n",
                    &mut ids,
                );
            }
            Self::Gemma => {
                let mut pending_system = String::new();
                for m in messages {
                    if m.role == Role::System {
                        pending_system.push_str(&m.content);
                        pending_system.push_str("\n\n");
                        continue;
                    }
                    special(
                        &format!("<start_of_turn>{}\n", role_name(m.role, "model")),
                        &mut ids,
                    );
                    if m.role == Role::User && !pending_system.is_empty() {
                        text(&std::mem::take(&mut pending_system), &mut ids);
                    }
                    text(&m.content, &mut ids);
                    special("<end_of_turn>\n", &mut ids);
                }
                special("<start_of_turn>model\n", &mut ids);
            }
        }
        Ok(ids)
    }
}

fn role_name(role: Role, assistant: &'static str) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => assistant,
    }
}
