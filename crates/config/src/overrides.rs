//! Command-line overrides: `--section.field value` (or `--section.field=value`), read against the schema and
//! applied after the YAML file, so the command line wins.
//!
//! How a value is read depends on the setting's type:
//! - strings and paths are taken as typed; a value in double quotes (`'"\n\n"'`) is read as a YAML string, escapes
//!   included;
//! - lists take `a,b,c` or YAML flow `[a, b, c]`; an empty value is the empty list;
//! - numbers, booleans and choices are read as YAML scalars (`1e-5`, `true`, `AdamW`);
//! - a grid-enabled setting takes a YAML flow list (`[1e-4, 5e-5]`) as its grid values.

use std::path::Path;

use serde_yaml_ng::Value;

use crate::error::{Error, Result};
use crate::meta::{setting, Setting};
use crate::schema::{unknown_key, Experiment};
use crate::value::Kind;

/// Splits raw arguments of the form `--a.b value` and `--a.b=value` into `(key, value)` pairs, keys with `-`
/// read as `_` (`--training.learning-rate`). A boolean setting may stand alone (`--training.lora` is `true`). A value
/// that itself starts with `--` needs the `=` form.
pub fn split_override_args<S: AsRef<str>>(args: &[S]) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_ref();
        let syntax = |message: &str| Error::OverrideSyntax {
            arg: arg.to_string(),
            message: message.to_string(),
        };
        let body = arg
            .strip_prefix("--")
            .ok_or_else(|| syntax("is not a `--section.field` setting"))?;
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        if name.is_empty() {
            return Err(syntax("names no setting"));
        }
        let key = name.replace('-', "_");
        let value = match inline {
            Some(value) => value,
            None => match args.get(i + 1).map(AsRef::as_ref) {
                Some(next) if !next.starts_with("--") => {
                    i += 1;
                    next.to_string()
                }
                _ if setting(&key).is_some_and(|s| s.kind == Kind::Bool) => "true".to_string(),
                _ => return Err(syntax("has no value")),
            },
        };
        pairs.push((key, value));
        i += 1;
    }
    Ok(pairs)
}

/// Applies `(key, value)` overrides in order (a later one wins), each read against its setting's type. Every
/// unknown key and bad value is reported, not just the first.
pub fn apply_overrides(cfg: &mut Experiment, overrides: &[(String, String)]) -> Result<()> {
    let mut issues = Vec::new();
    for (key, raw) in overrides {
        match setting(key) {
            Some(s) => issues.extend(cfg.set(s.key, &parse_override(s, raw)).err()),
            None => issues.push(unknown_key(key)),
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(Error::Settings {
            origin: "the command line".to_string(),
            issues,
        })
    }
}

/// The layers in order: defaults, then the YAML file (if any), then the command-line overrides.
pub fn load_with_overrides(
    path: Option<&Path>,
    overrides: &[(String, String)],
) -> Result<Experiment> {
    let mut cfg = match path {
        Some(path) => Experiment::load(path)?,
        None => Experiment::default(),
    };
    apply_overrides(&mut cfg, overrides)?;
    Ok(cfg)
}

/// Reads one command-line value for `s` (see the module docs); type errors are left to [`Experiment::set`].
fn parse_override(s: &Setting, raw: &str) -> Value {
    let trimmed = raw.trim();
    match s.kind {
        Kind::Text | Kind::Path => {
            let quoted = trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"');
            let grid = s.grid && trimmed.starts_with('[');
            match yaml(trimmed) {
                Some(v @ Value::String(_)) if quoted => v,
                Some(v @ Value::Sequence(_)) if grid => v,
                _ => Value::from(raw),
            }
        }
        Kind::List { item } => {
            if trimmed.starts_with('[') {
                yaml(trimmed).unwrap_or_else(|| Value::from(raw))
            } else if trimmed.is_empty() {
                Value::Sequence(Vec::new())
            } else {
                Value::Sequence(
                    trimmed
                        .split(',')
                        .map(|part| item_value(item, part.trim()))
                        .collect(),
                )
            }
        }
        _ => yaml(trimmed).unwrap_or_else(|| Value::from(raw)),
    }
}

fn item_value(item: &Kind, text: &str) -> Value {
    match item {
        Kind::Text | Kind::Path | Kind::Choice { .. } => Value::from(text),
        _ => yaml(text).unwrap_or_else(|| Value::from(text)),
    }
}

fn yaml(text: &str) -> Option<Value> {
    serde_yaml_ng::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn splits_both_forms_and_lone_booleans() {
        let got = split_override_args(&args(&[
            "--training.epochs",
            "2",
            "--environment.seed=-1",
            "--training.lora",
            "--prediction.stop_tokens=--x",
            "--training.learning-rate",
            "-1e-5",
        ]))
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("training.epochs", "2"),
                ("environment.seed", "-1"),
                ("training.lora", "true"),
                ("prediction.stop_tokens", "--x"),
                ("training.learning_rate", "-1e-5"),
            ])
        );
    }

    #[test]
    fn split_rejects_stray_words_and_missing_values() {
        let err = split_override_args(&args(&["cfg.yaml"])).unwrap_err();
        assert!(err.to_string().contains("`cfg.yaml`"), "{err}");
        let err = split_override_args(&args(&["--training.epochs"])).unwrap_err();
        assert!(err.to_string().contains("has no value"), "{err}");
        assert!(split_override_args(&args(&["--", "x"])).is_err());
    }

    #[test]
    fn strings_are_taken_as_typed_unless_double_quoted() {
        let mut cfg = Experiment::default();
        apply_overrides(
            &mut cfg,
            &pairs(&[
                ("dataset.system_column", "None"),
                ("dataset.answer_column", "123"),
                ("dataset.prompt_column_separator", "\"\\n---\\n\""),
                ("dataset.text_prompt_start", "<|user|>"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.dataset.system_column, "None");
        assert_eq!(cfg.dataset.answer_column, "123");
        assert_eq!(cfg.dataset.prompt_column_separator, "\n---\n");
        assert_eq!(cfg.dataset.text_prompt_start, "<|user|>");
    }
}
