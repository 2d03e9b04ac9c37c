//! The backbone's tokenizer: `tokenizer.json` (via the `tokenizers` crate) plus what `tokenizer_config.json`,
//! `chat_template.jinja` and `generation_config.json` add (special tokens, chat template, stop ids).

use std::path::Path;

use serde::Deserialize;

use crate::chat_template::ChatTemplate;
use crate::error::{read_json, read_to_string, Error, Result};

/// A special token as `tokenizer_config.json` writes it: a string or an `AddedToken` object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Added { content: String },
}

impl SpecialToken {
    fn text(&self) -> &str {
        match self {
            SpecialToken::Text(s) => s,
            SpecialToken::Added { content } => content,
        }
    }
}

/// `chat_template` may be one template or a list of named ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TemplateField {
    One(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Debug, Clone, Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
    pad_token: Option<SpecialToken>,
    chat_template: Option<TemplateField>,
}

/// Text ↔ token ids for one backbone, with its special tokens and chat template.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token: Option<String>,
    chat_template: Option<ChatTemplate>,
    chat_template_source: Option<String>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, `tokenizer_config.json` and `chat_template.jinja` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(Error::Tokenizer {
                path,
                message: "file not found\nhelp: the backbone folder must contain the `tokenizer.json` saved with the model".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| Error::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let config_path = dir.join("tokenizer_config.json");
        let config: TokenizerConfig = if config_path.is_file() {
            read_json(&config_path)?
        } else {
            TokenizerConfig::default()
        };
        let jinja_path = dir.join("chat_template.jinja");
        let template_source = if jinja_path.is_file() {
            Some(read_to_string(&jinja_path)?)
        } else {
            match config.chat_template {
                Some(TemplateField::One(t)) => Some(t),
                Some(TemplateField::Named(list)) => list
                    .iter()
                    .find(|t| t.name == "default")
                    .or(list.first())
                    .map(|t| t.template.clone()),
                None => None,
            }
        };
        let bos_token = config.bos_token.map(|t| t.text().to_string());
        let eos_token = config.eos_token.map(|t| t.text().to_string());
        let chat_template = template_source
            .clone()
            .map(|source| ChatTemplate::new(source, bos_token.clone(), eos_token.clone()))
            .transpose()?;
        Ok(Self {
            inner,
            bos_token,
            eos_token,
            pad_token: config.pad_token.map(|t| t.text().to_string()),
            chat_template,
            chat_template_source: template_source,
        })
    }

    /// The chat template's Jinja source, as the backbone's files give it.
    pub fn chat_template_source(&self) -> Option<&str> {
        self.chat_template_source.as_deref()
    }

    /// Token ids of `text`; `add_special_tokens` applies the tokenizer's post-processor (e.g. a BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| Error::Encode(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of a conversation, rendered with the backbone's chat template and ending with the prompt of
    /// the assistant's next turn (what chat, generation and serving feed the model).
    pub fn encode_chat(&self, messages: &[crate::chat_template::Message]) -> Result<Vec<u32>> {
        let template = self.chat_template().ok_or(Error::NoChatTemplate)?;
        let rendered = template.render(messages, true)?;
        // The template writes the special tokens (BOS included) itself.
        self.encode(&rendered, false)
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| Error::Encode(e.to_string()))
    }

    /// Number of tokens including added ones.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of a token given as text.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The end-of-sequence token text.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// The beginning-of-sequence token text.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The padding token text.
    pub fn pad_token(&self) -> Option<&str> {
        self.pad_token.as_deref()
    }

    /// The chat template, if the backbone has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// The underlying `tokenizers` tokenizer (for streaming decoders).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// A token id or a list of them (`eos_token_id` may be either).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a list.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// Defaults of `generation_config.json` that generation honours.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GenerationDefaults {
    pub eos_token_id: Option<TokenIds>,
    pub bos_token_id: Option<TokenIds>,
    pub pad_token_id: Option<TokenIds>,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub do_sample: Option<bool>,
    pub max_new_tokens: Option<usize>,
}

impl GenerationDefaults {
    /// Reads `DIR/generation_config.json`, or empty defaults when absent.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("generation_config.json");
        if path.is_file() {
            read_json(&path)
        } else {
            Ok(Self::default())
        }
    }
}
