//! `tokenizer.json` (+ `tokenizer_config.json`) → `tokenizer.ggml.*` metadata, as llama.cpp's
//! `convert_hf_to_gguf.py` writes it; the inverse of [`super::tokenizer`], which reads these keys back.
//!
//! * Byte-level BPE → `gpt2`: tokens in id order, token types (control = special added token, user-defined =
//!   other added token), merges, and the `pre` name of the split regex (`smollm` for split digits, `gpt-2` for
//!   the plain GPT-2 split, `llama-bpe`, `qwen2`, … by regex).
//! * SentencePiece-style BPE (byte fallback, `▁` for spaces) → `llama`: tokens, scores (a merge's result ranks
//!   by the merge's position; llama.cpp merges by score), byte tokens typed, the merges too (exact read-back).
//!
//! A vocabulary shorter than the embedding is padded with `[PAD<i>]` tokens of type unused, as the converter
//! does.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value as Json;

use super::tokenizer::{pre_name, DIGITS_PRE_NAME, GPT2_PRE_NAME};
use super::types::Value;
use super::GgufError;

const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;
const BYTE: i32 = 6;

/// The `tokenizer.*` metadata of a model folder.
#[derive(Debug)]
pub struct VocabMetadata {
    pub entries: Vec<(String, Value)>,
    /// `gpt2` or `llama`.
    pub model: &'static str,
    pub pre: Option<String>,
    /// What a user may want to know (an unknown split regex llama.cpp will replace with its default).
    pub warnings: Vec<String>,
}

/// The metadata for `dir`'s tokenizer, for an embedding of `vocab_rows` rows; `fallback_ids` are the
/// `bos_token_id` and `eos_token_id` of config.json, used when tokenizer_config.json names no such token.
pub fn vocab_metadata(
    dir: &Path,
    vocab_rows: usize,
    fallback_ids: (Option<u32>, Option<u32>),
) -> Result<VocabMetadata, GgufError> {
    let path = dir.join("tokenizer.json");
    let bad = |detail: String| GgufError::BadTokenizer {
        path: path.clone(),
        detail,
    };
    let text = std::fs::read_to_string(&path).map_err(|source| GgufError::Read {
        path: path.clone(),
        source,
    })?;
    let json: Json = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let model = &json["model"];
    if model["type"] != "BPE" {
        return Err(GgufError::UnsupportedTokenizer {
            path: path.clone(),
            model: model["type"].as_str().unwrap_or("unknown").to_string(),
        });
    }
    let spm = model["byte_fallback"] == true
        || json["pre_tokenizer"]["type"] == "Metaspace"
        || json["decoder"].to_string().contains("\u{2581}");

    let mut by_id: HashMap<usize, (String, i32)> = HashMap::new();
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| bad("`model.vocab` is not a map".into()))?;
    for (token, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(format!("token `{token}` has no integer id")))?;
        let ty = if spm && is_byte_token(token) {
            BYTE
        } else {
            NORMAL
        };
        by_id.insert(id as usize, (token.clone(), ty));
    }
    for added in json["added_tokens"].as_array().into_iter().flatten() {
        let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) else {
            continue;
        };
        let ty = if added["special"] == true {
            CONTROL
        } else {
            USER_DEFINED
        };
        by_id.insert(id as usize, (content.to_string(), ty));
    }
    let n_tokens = by_id.keys().max().map_or(0, |m| m + 1);
    if n_tokens > vocab_rows {
        return Err(bad(format!(
            "the tokenizer has {n_tokens} tokens but the embedding only {vocab_rows} rows"
        )));
    }
    let mut tokens = Vec::with_capacity(vocab_rows);
    let mut types = Vec::with_capacity(vocab_rows);
    for i in 0..vocab_rows {
        match by_id.remove(&i) {
            Some((t, ty)) => {
                tokens.push(t);
                types.push(ty);
            }
            None => {
                tokens.push(format!("[PAD{i}]"));
                types.push(UNUSED);
            }
        }
    }
    let merges: Vec<String> = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| match m {
            Json::String(s) => Some(s.clone()),
            Json::Array(pair) => Some(format!(
                "{} {}",
                pair.first()?.as_str()?,
                pair.get(1)?.as_str()?
            )),
            _ => None,
        })
        .collect();

    let token_config = read_optional_json(&dir.join("tokenizer_config.json"))?;
    let index: HashMap<&str, u32> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as u32))
        .collect();
    let special = |key: &str| -> Option<u32> {
        let v = &token_config[key];
        let name = v.as_str().or_else(|| v["content"].as_str())?;
        index.get(name).copied()
    };
    let bos = special("bos_token").or(fallback_ids.0);
    let eos = special("eos_token").or(fallback_ids.1);
    let (add_bos, add_eos) = added_specials(&path, bos, eos)?;

    let mut warnings = Vec::new();
    let mut entries: Vec<(String, Value)> = Vec::new();
    let mut put = |k: &str, v: Value| entries.push((format!("tokenizer.ggml.{k}"), v));
    let (kind, pre) = if spm {
        ("llama", None)
    } else {
        let pre = pre_tokenizer_name(&json["pre_tokenizer"]).unwrap_or_else(|| {
            warnings.push("the tokenizer's pre-tokenizer matches no split llama.cpp knows; the GGUF says `default` (llama.cpp's GPT-2 split), so llama.cpp may split some texts differently".into());
            "default".to_string()
        });
        ("gpt2", Some(pre))
    };
    put("model", Value::String(kind.into()));
    if let Some(pre) = &pre {
        put("pre", Value::String(pre.clone()));
    }
    if spm {
        let rank: HashMap<String, usize> = merges
            .iter()
            .enumerate()
            .map(|(i, m)| (m.replace(' ', ""), i))
            .collect();
        let scores = tokens
            .iter()
            .zip(&types)
            .map(|(t, &ty)| {
                Value::F32(match (ty, rank.get(t)) {
                    (NORMAL, Some(&r)) => -(r as f32),
                    (NORMAL, None) => -1e9,
                    _ => 0.0,
                })
            })
            .collect();
        put("scores", Value::Array(scores));
        let prefix = json["pre_tokenizer"]["prepend_scheme"] != "never";
        put("add_space_prefix", Value::Bool(prefix));
    }
    if let Some(unk) = model["unk_token"]
        .as_str()
        .and_then(|u| index.get(u).copied())
    {
        if spm {
            types[unk as usize] = UNKNOWN;
        }
        put("unknown_token_id", Value::U32(unk));
    }
    put(
        "tokens",
        Value::Array(tokens.iter().cloned().map(Value::String).collect()),
    );
    put(
        "token_type",
        Value::Array(types.into_iter().map(Value::I32).collect()),
    );
    put(
        "merges",
        Value::Array(merges.into_iter().map(Value::String).collect()),
    );
    if let Some(id) = bos {
        put("bos_token_id", Value::U32(id));
    }
    if let Some(id) = eos {
        put("eos_token_id", Value::U32(id));
    }
    if let Some(id) = special("pad_token") {
        put("padding_token_id", Value::U32(id));
    }
    put("add_bos_token", Value::Bool(add_bos));
    put("add_eos_token", Value::Bool(add_eos));
    Ok(VocabMetadata {
        entries,
        model: kind,
        pre,
        warnings,
    })
}

/// `<0x0A>`-style byte tokens of a SentencePiece vocabulary.
fn is_byte_token(t: &str) -> bool {
    t.len() == 6 && t.starts_with("<0x") && t.ends_with('>')
}

/// The llama.cpp name of a byte-level pre-tokenizer, if it is one llama.cpp knows.
fn pre_tokenizer_name(pre: &Json) -> Option<String> {
    let byte_level = |p: &Json| p["type"] == "ByteLevel";
    match pre["type"].as_str()? {
        "ByteLevel" if pre["use_regex"] != false => Some(GPT2_PRE_NAME.into()),
        "Sequence" => {
            let parts = pre["pretokenizers"].as_array()?;
            match parts.as_slice() {
                [digits, bl]
                    if digits["type"] == "Digits"
                        && digits["individual_digits"] == true
                        && byte_level(bl)
                        && bl["use_regex"] != false =>
                {
                    Some(DIGITS_PRE_NAME.into())
                }
                [split, bl] if split["type"] == "Split" && byte_level(bl) => {
                    pre_name(split["pattern"]["Regex"].as_str()?).map(str::to_string)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether encoding with special tokens puts `bos` first and `eos` last (the post-processor adds them).
fn added_specials(
    path: &Path,
    bos: Option<u32>,
    eos: Option<u32>,
) -> Result<(bool, bool), GgufError> {
    let tok = tokenizers::Tokenizer::from_file(path).map_err(|e| GgufError::BadTokenizer {
        path: path.to_path_buf(),
        detail: format!("it does not load: {e}"),
    })?;
    let ids = |special: bool| -> Result<Vec<u32>, GgufError> {
        Ok(tok
            .encode("a", special)
            .map_err(|e| GgufError::BadTokenizer {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?
            .get_ids()
            .to_vec())
    };
    let (with, without) = (ids(true)?, ids(false)?);
    let extra = with.len().saturating_sub(without.len());
    let add_bos = extra > 0 && bos.is_some() && with.first().copied() == bos;
    let add_eos = extra > usize::from(add_bos) && eos.is_some() && with.last().copied() == eos;
    Ok((add_bos, add_eos))
}

fn read_optional_json(path: &Path) -> Result<Json, GgufError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| GgufError::BadTokenizer {
            path: path.to_path_buf(),
            detail: format!("not JSON: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Json::Null),
        Err(source) => Err(GgufError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}
