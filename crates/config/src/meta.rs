//! The metadata of every setting ([`Setting`]): key, label, type, default, range or choices, help, when it
//! applies, whether a grid search may vary it and whether it is a basic one. It is generated from the schema (`schema/*.rs`), never written by hand, and
//! drives YAML, command-line overrides, validation, the docs and the GUI form.

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::schema::Experiment;
use crate::suggest::did_you_mean;
use crate::value::{Kind, SettingValue};

/// One setting of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// Full key: `training.learning_rate`, or `llm_backbone` for a top-level setting.
    pub key: &'static str,
    /// The group (`training`), or `""` for a top-level setting.
    pub group: &'static str,
    /// The name inside the group (`learning_rate`).
    pub name: &'static str,
    /// What a form calls it: the name in words ("Batch size"), or the schema's own label ("LoRA r").
    pub label: String,
    pub kind: Kind,
    /// The default, as it is written in YAML.
    pub default: Value,
    /// Allowed numbers, for numeric settings that have a limit.
    pub range: Option<Range>,
    /// One line of help.
    pub help: &'static str,
    /// The setting has an effect only when all of these hold (empty: always).
    pub applies_when: Vec<Condition>,
    /// A grid search may give it a list of values.
    pub grid: bool,
    /// One of the settings people change first: a form shows it open, the others folded.
    pub basic: bool,
}

impl Setting {
    pub(crate) fn build<T: SettingValue>(
        key: &'static str,
        name: &'static str,
        help: &'static str,
        default: Value,
        meta: Meta,
    ) -> Self {
        let group = key
            .strip_suffix(name)
            .and_then(|g| g.strip_suffix('.'))
            .unwrap_or("");
        let kind = match (T::KIND, meta.path) {
            (Kind::Text, true) => Kind::Path,
            (kind, _) => kind,
        };
        Setting {
            key,
            group,
            name,
            label: meta.label.map_or_else(|| label_of(name), String::from),
            kind,
            default,
            range: meta.range,
            help: help.trim(),
            applies_when: meta.when,
            grid: meta.grid,
            basic: meta.basic,
        }
    }

    /// The allowed names, for a choice or a list of choices.
    pub fn choices(&self) -> Option<&'static [&'static str]> {
        self.kind.choices()
    }
}

/// A setting's name in words: `batch_size` → "Batch size".
pub(crate) fn label_of(name: &str) -> String {
    let words = name.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Every setting, top-level ones first, then group by group, in the order of the schema.
pub fn settings() -> &'static [Setting] {
    static SETTINGS: OnceLock<Vec<Setting>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let mut out = Vec::new();
        Experiment::collect_settings(&mut out);
        out
    })
}

/// The setting with this full key.
pub fn setting(key: &str) -> Option<&'static Setting> {
    settings().iter().find(|s| s.key == key)
}

/// A group of settings (a section of the YAML file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Group {
    /// `training`.
    pub key: &'static str,
    /// One line on what the group holds.
    pub help: &'static str,
}

/// Every group, in the order of the schema.
pub fn groups() -> &'static [Group] {
    static GROUPS: OnceLock<Vec<Group>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let mut out = Vec::new();
        Experiment::collect_groups(&mut out);
        out
    })
}

/// The closest existing key to a mistyped one: the same setting name in another group first
/// (`learning_rate` → `training.learning_rate`), then the closest full key or group name.
pub fn suggest_key(key: &str) -> Option<&'static str> {
    let name = key.rsplit('.').next().unwrap_or(key);
    if let Some(s) = settings().iter().find(|s| s.name == name && s.key != key) {
        return Some(s.key);
    }
    let candidates = settings()
        .iter()
        .map(|s| s.key)
        .chain(groups().iter().map(|g| g.key));
    if let Some(found) = did_you_mean(key, candidates) {
        return Some(found);
    }
    let by_name = did_you_mean(name, settings().iter().map(|s| s.name))?;
    settings().iter().find(|s| s.name == by_name).map(|s| s.key)
}

/// One end of a [`Range`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// Allowed numbers: an interval, open or closed at each end, or unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Range {
    pub min: Option<Bound>,
    pub max: Option<Bound>,
}

impl Range {
    /// True when `x` lies in the range.
    pub fn contains(&self, x: f64) -> bool {
        let above = self.min.is_none_or(|b| {
            if b.inclusive {
                x >= b.value
            } else {
                x > b.value
            }
        });
        let below = self.max.is_none_or(|b| {
            if b.inclusive {
                x <= b.value
            } else {
                x < b.value
            }
        });
        above && below
    }
}

impl fmt::Display for Range {
    /// `[0, 1)`, `>= 1`, `> 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => write!(
                f,
                "{}{}, {}{}",
                if lo.inclusive { '[' } else { '(' },
                lo.value,
                hi.value,
                if hi.inclusive { ']' } else { ')' }
            ),
            (Some(lo), None) => write!(f, "{} {}", if lo.inclusive { ">=" } else { ">" }, lo.value),
            (None, Some(hi)) => write!(f, "{} {}", if hi.inclusive { "<=" } else { "<" }, hi.value),
            (None, None) => Ok(()),
        }
    }
}

/// A constant a [`Condition`] compares a setting with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Text(&'static str),
    Number(f64),
}

impl Literal {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Literal::Bool(b), Value::Bool(v)) => b == v,
            (Literal::Text(t), Value::String(v)) => t == v,
            (Literal::Number(x), Value::Number(v)) => v.as_f64() == Some(*x),
            _ => false,
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Text(t) => write!(f, "{t}"),
            Literal::Number(x) => write!(f, "{x}"),
        }
    }
}

impl From<bool> for Literal {
    fn from(b: bool) -> Self {
        Literal::Bool(b)
    }
}

impl From<&'static str> for Literal {
    fn from(t: &'static str) -> Self {
        Literal::Text(t)
    }
}

impl From<f64> for Literal {
    fn from(x: f64) -> Self {
        Literal::Number(x)
    }
}

/// How a [`Condition`] tests the other setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "test", content = "value", rename_all = "snake_case")]
pub enum Test {
    Is(Literal),
    IsNot(Literal),
    /// A list or string that is not empty.
    NotEmpty,
}

/// "Another setting has this value": when a setting applies (shown in the GUI form, read by the trainer).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Condition {
    /// The other setting's full key.
    pub key: &'static str,
    pub test: Test,
}

impl Condition {
    /// Whether the condition holds for the other setting's current value.
    pub fn holds(&self, value: &Value) -> bool {
        match &self.test {
            Test::Is(lit) => lit.matches(value),
            Test::IsNot(lit) => !lit.matches(value),
            Test::NotEmpty => match value {
                Value::Sequence(items) => !items.is_empty(),
                Value::String(s) => !s.is_empty(),
                Value::Null => false,
                _ => true,
            },
        }
    }
}

impl fmt::Display for Condition {
    /// `` `training.lora` is `true` ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.test {
            Test::Is(lit) => write!(f, "`{}` is `{lit}`", self.key),
            Test::IsNot(lit) => write!(f, "`{}` is not `{lit}`", self.key),
            Test::NotEmpty => write!(f, "`{}` is not empty", self.key),
        }
    }
}

/// What the schema says about a setting besides its type, default and help; built with [`meta()`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    range: Option<Range>,
    grid: bool,
    when: Vec<Condition>,
    path: bool,
    label: Option<&'static str>,
    basic: bool,
}

/// Starts a setting's metadata: no range, always applies, not grid-enabled.
pub(crate) fn meta() -> Meta {
    Meta::default()
}

impl Meta {
    fn bound(mut self, lower: bool, value: f64, inclusive: bool) -> Self {
        let range = self.range.get_or_insert_with(Range::default);
        let bound = Some(Bound { value, inclusive });
        if lower {
            range.min = bound;
        } else {
            range.max = bound;
        }
        self
    }

    /// `>= x`.
    pub(crate) fn min(self, x: f64) -> Self {
        self.bound(true, x, true)
    }

    /// `> x`.
    pub(crate) fn above(self, x: f64) -> Self {
        self.bound(true, x, false)
    }

    /// `<= x`.
    pub(crate) fn max(self, x: f64) -> Self {
        self.bound(false, x, true)
    }

    /// `< x`.
    pub(crate) fn below(self, x: f64) -> Self {
        self.bound(false, x, false)
    }

    /// A grid search may list several values.
    pub(crate) fn grid(mut self) -> Self {
        self.grid = true;
        self
    }

    /// Labelled `label` in forms, where the name in words reads poorly (`lora_r` → "LoRA r").
    pub(crate) fn label(mut self, label: &'static str) -> Self {
        self.label = Some(label);
        self
    }

    /// One of the settings people change first (shown open in the form).
    pub(crate) fn basic(mut self) -> Self {
        self.basic = true;
        self
    }

    /// A string that names a file or folder.
    pub(crate) fn path(mut self) -> Self {
        self.path = true;
        self
    }

    /// Applies only when `key` is `value`.
    pub(crate) fn when(mut self, key: &'static str, value: impl Into<Literal>) -> Self {
        self.when.push(Condition {
            key,
            test: Test::Is(value.into()),
        });
        self
    }

    /// Applies only when `key` is not `value`.
    pub(crate) fn unless(mut self, key: &'static str, value: impl Into<Literal>) -> Self {
        self.when.push(Condition {
            key,
            test: Test::IsNot(value.into()),
        });
        self
    }

    /// Applies only when the list or string `key` is not empty.
    pub(crate) fn when_not_empty(mut self, key: &'static str) -> Self {
        self.when.push(Condition {
            key,
            test: Test::NotEmpty,
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_name_in_words_unless_the_schema_says() {
        assert_eq!(label_of("batch_size"), "Batch size");
        assert_eq!(setting("training.batch_size").unwrap().label, "Batch size");
        assert_eq!(setting("training.lora_r").unwrap().label, "LoRA r");
    }

    #[test]
    fn ranges_print_and_test_their_ends() {
        let r = meta().above(0.0).max(1.0).range.unwrap();
        assert_eq!(r.to_string(), "(0, 1]");
        assert!(!r.contains(0.0) && r.contains(1.0) && r.contains(0.5) && !r.contains(1.5));
        assert_eq!(meta().min(1.0).range.unwrap().to_string(), ">= 1");
    }

    #[test]
    fn every_key_is_unique_and_built_from_group_and_name() {
        let mut keys: Vec<_> = settings().iter().map(|s| s.key).collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
        for s in settings() {
            let expected = if s.group.is_empty() {
                s.name.to_string()
            } else {
                format!("{}.{}", s.group, s.name)
            };
            assert_eq!(s.key, expected);
            assert!(
                s.group.is_empty() || groups().iter().any(|g| g.key == s.group),
                "{}",
                s.key
            );
        }
    }

    #[test]
    fn setting_names_are_unique_across_groups() {
        // suggest_key relies on this to map a bare name to its full key.
        let mut names: Vec<_> = settings().iter().map(|s| s.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn conditions_name_real_settings_with_fitting_literals() {
        for s in settings() {
            for c in &s.applies_when {
                let other =
                    setting(c.key).unwrap_or_else(|| panic!("{}: unknown key {}", s.key, c.key));
                let fits = match (&c.test, &other.kind) {
                    (Test::Is(Literal::Bool(_)) | Test::IsNot(Literal::Bool(_)), Kind::Bool) => {
                        true
                    }
                    (
                        Test::Is(Literal::Number(_)) | Test::IsNot(Literal::Number(_)),
                        Kind::Float | Kind::Int,
                    ) => true,
                    (
                        Test::Is(Literal::Text(t)) | Test::IsNot(Literal::Text(t)),
                        Kind::Choice { choices },
                    ) => choices.contains(t),
                    (
                        Test::Is(Literal::Text(_)) | Test::IsNot(Literal::Text(_)),
                        Kind::Text | Kind::Path,
                    ) => true,
                    (Test::NotEmpty, Kind::List { .. } | Kind::Text | Kind::Path) => true,
                    _ => false,
                };
                assert!(
                    fits,
                    "{}: condition {c} does not fit the type of {}",
                    s.key, c.key
                );
            }
        }
    }

    #[test]
    fn defaults_lie_in_their_ranges() {
        for s in settings() {
            if let (Some(r), Some(x)) = (s.range, s.default.as_f64()) {
                assert!(r.contains(x), "{} default {x} outside {r}", s.key);
            }
        }
    }

    #[test]
    fn suggestions_cover_typos_and_misplaced_names() {
        assert_eq!(
            suggest_key("training.lerning_rate"),
            Some("training.learning_rate")
        );
        assert_eq!(suggest_key("learning_rate"), Some("training.learning_rate"));
        assert_eq!(
            suggest_key("training.max_length"),
            Some("tokenizer.max_length")
        );
        assert_eq!(suggest_key("trainig"), Some("training"));
        assert_eq!(suggest_key("trainng.lora_rr"), Some("training.lora_r"));
        assert_eq!(suggest_key("zzzzzz"), None);
    }
}
