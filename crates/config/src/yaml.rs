//! YAML in and out. Reading overlays a document on the defaults, setting by setting, and reports every unknown
//! key and wrong type at once. Writing follows the schema order with plain or double-quoted scalars chosen so that
//! reading the text back gives the same experiment, and the same text when written again.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use crate::error::{Error, Issue, Result};
use crate::meta::{groups, Setting};
use crate::schema::Experiment;
use crate::value::describe;

const HEADER: &str = "\
# Ferrotune experiment. Every key is described in docs/settings.md; keys left out keep their defaults.
# Any key can be overridden on the command line: --section.field value (e.g. --training.learning_rate 1e-5).
";

impl Experiment {
    /// Reads an experiment file: the defaults, overlaid with the file's settings.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text, &format!("`{}`", path.display()))
    }

    /// The defaults overlaid with a YAML document; `origin` names the document in errors (e.g. "`cfg.yaml`").
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self> {
        let mut cfg = Self::default();
        cfg.apply_yaml_str(text, origin)?;
        Ok(cfg)
    }

    /// Overlays a YAML document on these settings (a later layer wins).
    pub fn apply_yaml_str(&mut self, text: &str, origin: &str) -> Result<()> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| Error::Yaml {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        self.apply_value(&value, origin)
    }

    /// Overlays a parsed document (a mapping of top-level keys and groups) on these settings.
    pub fn apply_value(&mut self, value: &Value, origin: &str) -> Result<()> {
        let issues = self.apply_mapping(value);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(Error::Settings {
                origin: origin.to_string(),
                issues,
            })
        }
    }

    fn apply_mapping(&mut self, value: &Value) -> Vec<Issue> {
        let mut issues = Vec::new();
        let map = match value {
            Value::Null => return issues,
            Value::Mapping(map) => map,
            other => {
                issues.push(Issue::new(
                    "",
                    format!(
                        "must be a mapping of settings (`key: value` lines), not {}",
                        describe(other)
                    ),
                ));
                return issues;
            }
        };
        // The problem type first: it sets the defaults the other keys are read against.
        let type_first = map
            .iter()
            .filter(|(k, _)| k.as_str() == Some("problem_type"))
            .chain(
                map.iter()
                    .filter(|(k, _)| k.as_str() != Some("problem_type")),
            );
        for (key, value) in type_first {
            let Some(key) = key.as_str() else {
                issues.push(Issue::new(render_value(key), "is not a setting name"));
                continue;
            };
            if !groups().iter().any(|g| g.key == key) {
                issues.extend(self.set(key, value).err());
                continue;
            }
            match value {
                Value::Null => {}
                Value::Mapping(inner) => {
                    for (name, value) in inner {
                        match name.as_str() {
                            Some(name) => {
                                issues.extend(self.set(&format!("{key}.{name}"), value).err())
                            }
                            None => issues.push(Issue::new(
                                key,
                                format!("has a key that is not a name: {}", describe(name)),
                            )),
                        }
                    }
                }
                other => issues.push(Issue::new(
                    key,
                    format!(
                        "is a group of settings and expects `name: value` lines, found {}",
                        describe(other)
                    ),
                )),
            }
        }
        issues
    }

    /// The whole experiment as a YAML mapping (grid lists in place of their settings' values).
    pub fn to_value(&self) -> Value {
        let mut root = Mapping::new();
        for (group, settings) in Experiment::layout() {
            let mut map = Mapping::new();
            for s in settings {
                map.insert(Value::from(s.name), self.value_of(s));
            }
            if group.is_empty() {
                root.extend(map);
            } else {
                root.insert(Value::from(group), Value::Mapping(map));
            }
        }
        Value::Mapping(root)
    }

    /// The defaults overlaid with a parsed document (e.g. a GUI form converted from JSON).
    pub fn from_value(value: &Value) -> Result<Self> {
        let mut cfg = Self::default();
        cfg.apply_value(value, "the settings")?;
        Ok(cfg)
    }

    /// The experiment as a YAML file: a `# help` comment above every key, groups in schema order.
    pub fn to_yaml(&self) -> String {
        self.render(true)
    }

    /// The experiment as YAML without comments.
    pub fn to_yaml_compact(&self) -> String {
        self.render(false)
    }

    /// Every setting as `(key, value)`, the value as one line of YAML (`[a, b]` for lists): what trackers log as
    /// the run's parameters.
    pub fn flat_values(&self) -> Vec<(&'static str, String)> {
        crate::meta::settings()
            .iter()
            .filter_map(|s| Some((s.key, render_value(&self.get(s.key)?))))
            .collect()
    }

    /// Writes [`Experiment::to_yaml`] to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        ferrotune_home::atomic::write(path, self.to_yaml().as_bytes()).map_err(|source| {
            Error::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    fn value_of(&self, s: &Setting) -> Value {
        match self.grid.get(s.key) {
            Some(values) => Value::Sequence(values.clone()),
            None => self.get(s.key).unwrap_or(Value::Null),
        }
    }

    fn render(&self, comments: bool) -> String {
        let mut out = String::new();
        if comments {
            out.push_str(HEADER);
        }
        for (group, settings) in Experiment::layout() {
            let indent = if group.is_empty() { "" } else { "  " };
            if !group.is_empty() {
                out.push('\n');
                if comments {
                    if let Some(g) = groups().iter().find(|g| g.key == group) {
                        out.push_str(&format!("# {}\n", g.help));
                    }
                }
                out.push_str(&format!("{group}:\n"));
            }
            for s in settings {
                if comments {
                    out.push_str(&format!("{indent}# {}\n", comment(s)));
                }
                out.push_str(&format!(
                    "{indent}{}: {}\n",
                    s.name,
                    render_value(&self.value_of(s))
                ));
            }
        }
        out
    }
}

/// The comment line above a setting: its help, then its choices or range.
fn comment(s: &Setting) -> String {
    let mut text = s.help.to_string();
    if let Some(choices) = s.choices() {
        text.push_str(&format!(" One of: {}.", choices.join(", ")));
    } else if let Some(range) = s.range {
        text.push_str(&format!(" Range: {range}."));
    }
    text
}

/// A value as YAML text on one line: scalars plain when that reads back the same, lists in flow style.
pub(crate) fn render_value(value: &Value) -> String {
    match value {
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(|v| render_scalar(v, true)).collect();
            format!("[{}]", items.join(", "))
        }
        scalar => render_scalar(scalar, false),
    }
}

fn render_scalar(value: &Value, in_list: bool) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if is_plain(s, in_list) => s.clone(),
        Value::String(s) => double_quoted(s),
        _ => "null".into(),
    }
}

/// True when `s` can be written without quotes and reads back as the same string.
fn is_plain(s: &str, in_list: bool) -> bool {
    let simple = !s.is_empty()
        && s.trim() == s
        && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
        && !s.contains('#')
        && !(in_list && s.contains([',', '[', ']', '{', '}']));
    if !simple {
        return false;
    }
    let (doc, expected) = if in_list {
        (format!("k: [{s}]"), Value::Sequence(vec![Value::from(s)]))
    } else {
        (format!("k: {s}"), Value::from(s))
    };
    serde_yaml_ng::from_str::<Value>(&doc)
        .ok()
        .and_then(|v| v.get("k").cloned())
        .is_some_and(|v| v == expected)
}

/// A YAML double-quoted scalar with every character that could change on reading escaped.
fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if c.is_control() || c == '\u{feff}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Serialize for Experiment {
    /// As [`Experiment::to_value`]: the YAML layout, in any serde format (JSON for the GUI).
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Experiment {
    /// As [`Experiment::from_value`]: unknown keys and wrong types are errors.
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Experiment::from_value(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_their_rendering() {
        let nasty = [
            "",
            " lead",
            "trail ",
            "None",
            "null",
            "~",
            "true",
            "1",
            "1e-4",
            "0x10",
            "a: b",
            "a #b",
            "#x",
            "- x",
            "[x]",
            "{x}",
            "a,b",
            "<|system|>",
            "\n\n",
            "tab\there",
            "quote\"s",
            "back\\slash",
            "'single'",
            "é ü",
            "\u{85}\u{2028}\u{feff}\u{1}",
            "*alias",
            "&anchor",
            "!tag",
            "%dir",
            "@at",
            "`tick`",
            "|",
            ">",
            "?",
            "output/{experiment_name}",
            "cuda:0",
            "1:20",
        ];
        for s in nasty {
            for in_list in [false, true] {
                let text = render_scalar(&Value::from(s), in_list);
                let doc = if in_list {
                    format!("k: [{text}]")
                } else {
                    format!("k: {text}")
                };
                let back: Value = serde_yaml_ng::from_str(&doc)
                    .unwrap_or_else(|e| panic!("{s:?} as {text}: {e}"));
                let got = if in_list {
                    back["k"][0].clone()
                } else {
                    back["k"].clone()
                };
                assert_eq!(got, Value::from(s), "{s:?} rendered as {text}");
            }
        }
    }

    #[test]
    fn floats_round_trip_exactly() {
        for x in [
            1e-4, 1.0, 0.0, 1e20, 1e-5, 0.05, 5e-324, 123456.789, -1.5, 1e300,
        ] {
            let text = render_scalar(&Value::from(x), false);
            let back: Value = serde_yaml_ng::from_str(&text).unwrap();
            assert_eq!(back.as_f64(), Some(x), "{x} rendered as {text}");
            assert!(
                back.is_f64(),
                "{x} rendered as {text} reads back as an integer"
            );
        }
    }
}
