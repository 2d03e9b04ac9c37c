//! `tokenizer.ggml.*` metadata → `tokenizer.json` + `tokenizer_config.json`, built the way
//! transformers' GGUF tokenizer converter (5.24) builds them:
//!
//! * `gpt2` (byte-level BPE): the file's vocab and merges, a `ByteLevel` pre-tokenizer (or the split
//!   regex the `tokenizer.ggml.pre` name stands for), `ByteLevel` decoder; control tokens (type 3)
//!   become special added tokens, user-defined ones (type 4) plain added tokens.
//! * `llama` (SentencePiece): BPE with byte fallback over the file's vocab, merges from the file or
//!   recovered from the scores, a `Metaspace` pre-tokenizer and the Llama decoder.
//!
//! The JSON is assembled here and then loaded (and re-saved) with the `tokenizers` crate, so what lands
//! on disk is exactly what `Tokenizer::from_file` reads back.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{json, Value as Json};

use super::reader::GgufFile;
use super::GgufError;

/// `tokenizer.ggml.model` values this importer converts.
pub const SUPPORTED_TOKENIZERS: &[&str] = &["gpt2", "llama"];

/// llama.cpp token types.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// `tokenizer.ggml.pre` names whose vocabulary was trained on single digits: llama.cpp splits
/// `\p{N}` one by one before the GPT-2 regex, as the original `tokenizer.json` (`Digits` then `ByteLevel`) does.
const DIGIT_PRE: &[&str] = &["smollm", "starcoder", "refact"];

/// `tokenizer.ggml.pre` names that mean the plain GPT-2 byte-level split.
const GPT2_PRE: &[&str] = &[
    "default",
    "gpt-2",
    "gpt2",
    "phi-2",
    "stablelm2",
    "olmo",
    "jais",
    "poro-chat",
];

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN35_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const TEKKEN_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_SPLIT: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex for a `tokenizer.ggml.pre` name (same table as transformers' GGUF converter).
fn split_regex(pre: &str) -> Option<&'static str> {
    Some(match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" | "dbrx" | "smaug-bpe" => LLAMA3_SPLIT,
        "tekken" => TEKKEN_SPLIT,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" => QWEN2_SPLIT,
        "qwen35" => QWEN35_SPLIT,
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => GPT4O_SPLIT,
        _ => return None,
    })
}

/// The `tokenizer.ggml.pre` name llama.cpp knows for a split regex (the first name [`split_regex`] maps to it).
pub(super) fn pre_name(regex: &str) -> Option<&'static str> {
    [
        ("llama-bpe", LLAMA3_SPLIT),
        ("qwen2", QWEN2_SPLIT),
        ("qwen35", QWEN35_SPLIT),
        ("tekken", TEKKEN_SPLIT),
        ("gpt-4o", GPT4O_SPLIT),
    ]
    .into_iter()
    .find(|(name, r)| *r == regex && split_regex(name) == Some(r))
    .map(|(name, _)| name)
}

/// The `tokenizer.ggml.pre` name of a byte-level BPE whose digits are split one by one before the GPT-2 regex.
pub(super) const DIGITS_PRE_NAME: &str = DIGIT_PRE[0];
/// The `tokenizer.ggml.pre` name of the plain GPT-2 byte-level split.
pub(super) const GPT2_PRE_NAME: &str = GPT2_PRE[1];

/// What was built.
#[derive(Debug)]
pub struct BuiltTokenizer {
    pub model: String,
    pub pre: Option<String>,
    pub n_tokens: usize,
    /// `bos_token_id`, `eos_token_id`, `pad_token_id`, `unk_token_id`.
    pub special_ids: BTreeMap<&'static str, Option<u32>>,
    /// Further end-of-turn ids (`eot`, `eom`) for generation_config.json.
    pub extra_eos: Vec<u32>,
    pub tokenizer_config: Json,
}

/// Build the tokenizer, write `tokenizer.json` into `dir`, and describe it.
pub fn build(
    file: &GgufFile,
    dir: &Path,
    context_length: usize,
    warnings: &mut Vec<String>,
) -> Result<BuiltTokenizer, GgufError> {
    let model = file.str("tokenizer.ggml.model")?.to_string();
    let tokens = file
        .opt_str_array("tokenizer.ggml.tokens")?
        .ok_or_else(|| GgufError::MissingKey {
            path: file.path().to_path_buf(),
            key: "tokenizer.ggml.tokens".into(),
        })?;
    let n = tokens.len();
    let bad = |detail: String| GgufError::BadTokenizer {
        path: file.path().to_path_buf(),
        detail,
    };
    let types: Vec<i64> = match file.opt_num_array("tokenizer.ggml.token_type")? {
        Some(t) if t.len() == n => t.into_iter().map(|x| x as i64).collect(),
        Some(t) => return Err(bad(format!("{} token types for {n} tokens", t.len()))),
        None => vec![1; n],
    };
    let id = |key: &str| -> Result<Option<u32>, GgufError> {
        match file.opt_usize(key)? {
            Some(i) if i < n => Ok(Some(i as u32)),
            Some(i) => Err(bad(format!(
                "`{key}` is {i}, but the vocabulary has {n} tokens"
            ))),
            None => Ok(None),
        }
    };
    let mut special_ids = BTreeMap::new();
    special_ids.insert("bos_token_id", id("tokenizer.ggml.bos_token_id")?);
    special_ids.insert("eos_token_id", id("tokenizer.ggml.eos_token_id")?);
    special_ids.insert("pad_token_id", id("tokenizer.ggml.padding_token_id")?);
    special_ids.insert("unk_token_id", id("tokenizer.ggml.unknown_token_id")?);
    let mut extra_eos = Vec::new();
    for key in ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
        if let Some(i) = id(key)? {
            if Some(i) != special_ids["eos_token_id"] && !extra_eos.contains(&i) {
                extra_eos.push(i);
            }
        }
    }
    let token_of = |i: Option<u32>| i.map(|i| tokens[i as usize].to_string());
    let (bos, eos) = (
        token_of(special_ids["bos_token_id"]),
        token_of(special_ids["eos_token_id"]),
    );
    let pre = file.opt_str("tokenizer.ggml.pre")?.map(str::to_string);

    let (add_bos, add_eos) = (
        file.opt_bool("tokenizer.ggml.add_bos_token")?,
        file.opt_bool("tokenizer.ggml.add_eos_token")?,
    );
    let (json, add_bos) = match model.as_str() {
        "gpt2" => {
            let merges = file
                .opt_str_array("tokenizer.ggml.merges")?
                .ok_or_else(|| GgufError::MissingKey {
                    path: file.path().to_path_buf(),
                    key: "tokenizer.ggml.merges".into(),
                })?;
            let add_bos = add_bos.unwrap_or(false);
            (
                byte_level(&tokens, &types, &merges, pre.as_deref(), warnings),
                add_bos,
            )
        }
        "llama" => {
            // llama.cpp adds BOS to a SentencePiece vocabulary unless the file says otherwise.
            let add_bos = add_bos.unwrap_or(true);
            let merges = file.opt_str_array("tokenizer.ggml.merges")?;
            let scores = file.opt_num_array("tokenizer.ggml.scores")?;
            let merges = match (merges, scores) {
                (Some(m), _) => m.iter().map(|m| split_merge(m)).collect(),
                (None, Some(s)) if s.len() == n => merges_from_scores(&tokens, &s),
                (None, Some(s)) => return Err(bad(format!("{} scores for {n} tokens", s.len()))),
                (None, None) => {
                    return Err(GgufError::MissingKey {
                        path: file.path().to_path_buf(),
                        key: "tokenizer.ggml.scores".into(),
                    })
                }
            };
            let unk = token_of(special_ids["unk_token_id"]);
            let prefix = file
                .opt_bool("tokenizer.ggml.add_space_prefix")?
                .unwrap_or(true);
            (sentencepiece(&tokens, &types, merges, unk, prefix), add_bos)
        }
        other => {
            return Err(GgufError::UnsupportedTokenizer {
                path: file.path().to_path_buf(),
                model: other.to_string(),
            })
        }
    };
    let add_eos = add_eos.unwrap_or(false);
    let mut json = json;
    json["post_processor"] = post_processor(
        &model,
        bos.as_deref().filter(|_| add_bos),
        eos.as_deref().filter(|_| add_eos),
        &special_ids,
    );
    if add_bos && bos.is_none() {
        return Err(bad(
            "`tokenizer.ggml.add_bos_token` is true but there is no `tokenizer.ggml.bos_token_id`"
                .into(),
        ));
    }
    if add_eos && eos.is_none() {
        return Err(bad(
            "`tokenizer.ggml.add_eos_token` is true but there is no `tokenizer.ggml.eos_token_id`"
                .into(),
        ));
    }

    let text = serde_json::to_string(&json).expect("JSON serializes");
    let tok = text
        .parse::<tokenizers::Tokenizer>()
        .map_err(|e| bad(format!("the tokenizer built from it does not load: {e}")))?;
    let out = dir.join("tokenizer.json");
    tok.save(&out, false).map_err(|e| GgufError::Write {
        path: out.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;

    let mut config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": token_of(special_ids["pad_token_id"]),
        "unk_token": token_of(special_ids["unk_token_id"]),
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "model_max_length": context_length,
        "clean_up_tokenization_spaces": false,
    });
    if let Some(t) = file.opt_str("tokenizer.chat_template")? {
        config["chat_template"] = json!(t);
    }
    Ok(BuiltTokenizer {
        model,
        pre,
        n_tokens: n,
        special_ids,
        extra_eos,
        tokenizer_config: config,
    })
}

fn added_token(id: usize, content: &str, special: bool) -> Json {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
           "normalized": false, "special": special})
}

/// GPT-2's byte → printable-char table (`bytes_to_unicode`).
fn byte_alphabet() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut next = 256u32;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).expect("latin-1")
            } else {
                next += 1;
                char::from_u32(next - 1).expect("valid code point")
            }
        })
        .collect()
}

fn byte_level_pre(use_regex: bool) -> Json {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex})
}

fn byte_level(
    tokens: &[&str],
    types: &[i64],
    merges: &[&str],
    pre: Option<&str>,
    warnings: &mut Vec<String>,
) -> Json {
    let alphabet = byte_alphabet();
    let in_alphabet = |t: &str| t.chars().all(|c| alphabet.contains(&c));
    let mut vocab = serde_json::Map::new();
    for (i, t) in tokens.iter().enumerate() {
        let spelled = if in_alphabet(t) {
            t.to_string()
        } else {
            t.bytes().map(|b| alphabet[b as usize]).collect()
        };
        vocab.insert(spelled, json!(i));
    }
    let mut added = Vec::new();
    for (i, (t, &ty)) in tokens.iter().zip(types).enumerate() {
        if ty == CONTROL && in_alphabet(t) {
            added.push(added_token(i, t, true));
        } else if ty == USER_DEFINED && vocab.contains_key(*t) {
            added.push(added_token(i, t, false));
        }
    }
    let pre_tokenizer = match pre {
        Some(p) if DIGIT_PRE.contains(&p) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level_pre(true)]}),
        Some(p) => match split_regex(p) {
            Some(re) => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
                byte_level_pre(false)]}),
            None => {
                if !GPT2_PRE.contains(&p) {
                    warnings.push(format!(
                        "unknown `tokenizer.ggml.pre` = `{p}`: using GPT-2's byte-level split, as transformers does"
                    ));
                }
                byte_level_pre(true)
            }
        },
        None => byte_level_pre(true),
    };
    let merges: Vec<Json> = merges.iter().map(|m| json!(split_merge(m))).collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    })
}

fn split_merge(m: &str) -> (String, String) {
    match m.split_once(' ') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (m.to_string(), String::new()),
    }
}

fn sentencepiece(
    tokens: &[&str],
    types: &[i64],
    merges: Vec<(String, String)>,
    unk: Option<String>,
    prefix: bool,
) -> Json {
    let mut vocab = serde_json::Map::new();
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.to_string(), json!(i));
    }
    let mut added = Vec::new();
    for (i, (t, &ty)) in tokens.iter().zip(types).enumerate() {
        if ty == CONTROL {
            added.push(added_token(i, t, true));
        } else if ty == USER_DEFINED {
            added.push(added_token(i, t, false));
        }
    }
    let mut decoders = vec![
        json!({"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "}),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let merges: Vec<Json> = merges.into_iter().map(|m| json!(m)).collect();
    json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u{2581}",
                          "prepend_scheme": if prefix { "first" } else { "never" }, "split": false},
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": {"type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    })
}

/// transformers' `generate_merges(vocab, vocab_scores)`: every split of every token into two
/// vocabulary pieces, best score first (ties: shorter left piece, then shorter right piece, then
/// vocabulary order).
fn merges_from_scores(tokens: &[&str], scores: &[f64]) -> Vec<(String, String)> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    let mut score_of: HashMap<&str, f64> = HashMap::new();
    for (i, (&t, &s)) in tokens.iter().zip(scores).enumerate() {
        index.insert(t, i);
        if score_of.insert(t, s).is_none() {
            order.push(t);
        }
    }
    let mut merges: Vec<(&str, &str, f64)> = Vec::new();
    for &t in &order {
        let score = score_of[t];
        let mut local: Vec<(&str, &str, f64)> = t
            .char_indices()
            .skip(1)
            .map(|(at, _)| t.split_at(at))
            .filter(|(l, r)| index.contains_key(l) && index.contains_key(r))
            .map(|(l, r)| (l, r, score))
            .collect();
        local.sort_by_key(|(l, r, _)| (index[l], index[r]));
        merges.extend(local);
    }
    let key = |m: &(&str, &str, f64)| (m.2, m.0.chars().count(), m.1.chars().count());
    merges.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0)
            .then(kb.1.cmp(&ka.1))
            .then(kb.2.cmp(&ka.2))
    });
    merges
        .into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

fn post_processor(
    model: &str,
    bos: Option<&str>,
    eos: Option<&str>,
    ids: &BTreeMap<&'static str, Option<u32>>,
) -> Json {
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true});
    if bos.is_none() && eos.is_none() {
        return if model == "gpt2" {
            byte_level
        } else {
            Json::Null
        };
    }
    let piece = |tok: &str, type_id: u32| json!({"SpecialToken": {"id": tok, "type_id": type_id}});
    let seq = |s: &str, type_id: u32| json!({"Sequence": {"id": s, "type_id": type_id}});
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials = serde_json::Map::new();
    if let Some(b) = bos {
        single.push(piece(b, 0));
        specials.insert(
            b.into(),
            json!({"id": b, "ids": [ids["bos_token_id"]], "tokens": [b]}),
        );
    }
    single.push(seq("A", 0));
    if let Some(e) = eos {
        single.push(piece(e, 0));
        specials.insert(
            e.into(),
            json!({"id": e, "ids": [ids["eos_token_id"]], "tokens": [e]}),
        );
    }
    pair.extend(single.iter().cloned());
    if let Some(b) = bos {
        pair.push(piece(b, 1));
    }
    pair.push(seq("B", 1));
    if let Some(e) = eos {
        pair.push(piece(e, 1));
    }
    let template = json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials});
    if model == "gpt2" {
        json!({"type": "Sequence", "processors": [byte_level, template]})
    } else {
        template
    }
}
