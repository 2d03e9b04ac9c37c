//! Setting types: how each Rust type a setting can have reads from and writes to a YAML [`Value`], and how the
//! type is described in docs, errors and the GUI form ([`Kind`]).

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::suggest::did_you_mean;

/// The type of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Kind {
    Bool,
    /// A whole number; the setting's range says whether it may be negative.
    Int,
    Float,
    Text,
    /// A file or folder; a leading `~/` means the home folder.
    Path,
    /// One of a fixed set of names.
    Choice {
        choices: &'static [&'static str],
    },
    List {
        item: &'static Kind,
    },
}

impl Kind {
    /// Short type name for docs: `float`, `list of string`, `choice`.
    pub fn name(&self) -> String {
        match self {
            Kind::Bool => "bool".into(),
            Kind::Int => "int".into(),
            Kind::Float => "float".into(),
            Kind::Text => "string".into(),
            Kind::Path => "path".into(),
            Kind::Choice { .. } => "choice".into(),
            Kind::List { item } => format!("list of {}", item.name()),
        }
    }

    /// What a value must be, for errors: `a number`, `one of `Adam`, `AdamW``.
    pub fn expected(&self) -> String {
        match self {
            Kind::Bool => "`true` or `false`".into(),
            Kind::Int => "an integer".into(),
            Kind::Float => "a number".into(),
            Kind::Text => "a string".into(),
            Kind::Path => "a path".into(),
            Kind::Choice { choices } => format!("one of {}", quoted_list(choices)),
            Kind::List { item } => format!("a list whose items are each {}", item.expected()),
        }
    }

    /// True for list settings.
    pub fn is_list(&self) -> bool {
        matches!(self, Kind::List { .. })
    }

    /// The allowed names of a choice, or of a list of choices.
    pub fn choices(&self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Choice { choices } => Some(choices),
            Kind::List { item } => item.choices(),
            _ => None,
        }
    }
}

/// `` `a`, `b`, `c` ``.
pub(crate) fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a value does not fit a setting's type; the message ("expects …, found …") is built from the [`Kind`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Mismatch {
    /// A fix, e.g. the closest choice.
    pub help: Option<String>,
}

impl Mismatch {
    fn suggest(word: &str, choices: &[&str]) -> Self {
        Self {
            help: did_you_mean(word, choices.iter().copied())
                .map(|c| format!("did you mean `{c}`?")),
        }
    }
}

/// A Rust type a setting can have. Implemented for `bool`, `i64`, `u32`, `u64`, `f64`, `String`, `Vec<T>` and
/// the choice enums made by `choice_enum!`.
pub(crate) trait SettingValue: Sized {
    const KIND: Kind;
    fn to_value(&self) -> Value;
    fn from_value(value: &Value) -> Result<Self, Mismatch>;
}

impl SettingValue for bool {
    const KIND: Kind = Kind::Bool;
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
    fn from_value(value: &Value) -> Result<Self, Mismatch> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
            _ => Err(Mismatch::default()),
        }
    }
}

impl SettingValue for f64 {
    const KIND: Kind = Kind::Float;
    fn to_value(&self) -> Value {
        Value::from(*self)
    }
    fn from_value(value: &Value) -> Result<Self, Mismatch> {
        match value {
            Value::Number(n) => n.as_f64().ok_or_default(),
            Value::String(s) => s.trim().parse().ok().ok_or_default(),
            _ => Err(Mismatch::default()),
        }
    }
}

macro_rules! integer_setting {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            const KIND: Kind = Kind::Int;
            fn to_value(&self) -> Value {
                Value::from(*self)
            }
            fn from_value(value: &Value) -> Result<Self, Mismatch> {
                // A whole float (`2.0`, as H2O LLM Studio writes some integers) is that integer.
                let whole = |f: f64| (f.fract() == 0.0 && f.abs() < 1e15).then_some(f as i128);
                let n = match value {
                    Value::Number(n) => n
                        .as_i64()
                        .map(i128::from)
                        .or_else(|| n.as_u64().map(i128::from))
                        .or_else(|| n.as_f64().and_then(whole)),
                    Value::String(s) => s
                        .trim()
                        .parse::<i128>()
                        .ok()
                        .or_else(|| s.trim().parse::<f64>().ok().and_then(whole)),
                    _ => None,
                };
                let n = n.ok_or_default()?;
                <$t>::try_from(n).map_err(|_| Mismatch {
                    help: Some(format!("use a whole number from {} to {}", <$t>::MIN, <$t>::MAX)),
                })
            }
        }
    )*};
}
integer_setting!(i64, u32, u64);

impl SettingValue for String {
    const KIND: Kind = Kind::Text;
    fn to_value(&self) -> Value {
        Value::String(self.clone())
    }
    fn from_value(value: &Value) -> Result<Self, Mismatch> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Null => Ok(String::new()),
            _ => Err(Mismatch::default()),
        }
    }
}

impl<T: SettingValue> SettingValue for Vec<T> {
    const KIND: Kind = Kind::List { item: &T::KIND };
    fn to_value(&self) -> Value {
        Value::Sequence(self.iter().map(T::to_value).collect())
    }
    /// A list; also a single item (a one-item list) and nothing (the empty list). H2O LLM Studio's conventions
    /// too: an empty string is the empty list, and a list of choices may be one comma-separated string
    /// (`lora_target_modules: 'q_proj,v_proj'`).
    fn from_value(value: &Value) -> Result<Self, Mismatch> {
        match value {
            Value::Sequence(items) => items.iter().map(T::from_value).collect(),
            Value::Null => Ok(Vec::new()),
            Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
            Value::String(s) if matches!(T::KIND, Kind::Choice { .. }) && s.contains(',') => s
                .split(',')
                .map(|item| T::from_value(&Value::String(item.trim().to_string())))
                .collect(),
            Value::Mapping(_) | Value::Tagged(_) => Err(Mismatch::default()),
            scalar => Ok(vec![T::from_value(scalar)?]),
        }
    }
}

trait OkOrDefault<T> {
    fn ok_or_default(self) -> Result<T, Mismatch>;
}

impl<T> OkOrDefault<T> for Option<T> {
    fn ok_or_default(self) -> Result<T, Mismatch> {
        self.ok_or_else(Mismatch::default)
    }
}

/// Reads a choice by its exact name, suggesting the closest name otherwise.
pub(crate) fn choice_from_value<T: Copy>(
    value: &Value,
    all: &[T],
    names: &[&'static str],
) -> Result<T, Mismatch> {
    let Value::String(s) = value else {
        return Err(Mismatch::default());
    };
    match names.iter().position(|n| n == s) {
        Some(i) => Ok(all[i]),
        None => Err(Mismatch::suggest(s, names)),
    }
}

/// Declares a choice setting's enum: each variant with the exact name used in YAML, on the command line and in
/// the docs. Generates `ALL`, `NAMES`, `as_str`, `from_name`, `Display` and serde impls.
macro_rules! choice_enum {
    (
        $(#[doc = $doc:literal])*
        pub enum $Name:ident {
            $( $(#[doc = $vdoc:literal])* $Variant:ident = $text:literal, )+
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $Name {
            $( $(#[doc = $vdoc])* $Variant, )+
        }

        impl $Name {
            /// Every choice, in the documented order.
            pub const ALL: &'static [Self] = &[$(Self::$Variant),+];
            /// The names of [`Self::ALL`].
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name used in files and on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$Variant => $text,)+
                }
            }

            /// The choice with this exact name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::NAMES.iter().position(|n| *n == name).map(|i| Self::ALL[i])
            }
        }

        impl std::fmt::Display for $Name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $Name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $Name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = <String as serde::Deserialize>::deserialize(d)?;
                Self::from_name(&name).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown choice `{name}`; expected one of {}",
                        $crate::value::quoted_list(Self::NAMES)
                    ))
                })
            }
        }

        impl $crate::value::SettingValue for $Name {
            const KIND: $crate::value::Kind = $crate::value::Kind::Choice { choices: Self::NAMES };
            fn to_value(&self) -> serde_yaml_ng::Value {
                serde_yaml_ng::Value::String(self.as_str().to_owned())
            }
            fn from_value(value: &serde_yaml_ng::Value) -> Result<Self, $crate::value::Mismatch> {
                $crate::value::choice_from_value(value, Self::ALL, Self::NAMES)
            }
        }
    };
}
pub(crate) use choice_enum;

/// A value as shown in an error: `` `abc` ``, `a list`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("`{n}`"),
        Value::String(s) => format!("`{s}`"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged `{}`", t.tag),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn whole_floats_are_integers_and_h2o_lists_read_as_lists() {
        assert_eq!(u32::from_value(&yaml("2.0")), Ok(2));
        assert_eq!(i64::from_value(&yaml("'-1.0'")), Ok(-1));
        assert!(u32::from_value(&yaml("2.5")).is_err());
        assert!(u32::from_value(&yaml("-1.0")).is_err());
        assert_eq!(<Vec<String>>::from_value(&yaml("''")), Ok(Vec::new()));
        assert_eq!(
            <Vec<String>>::from_value(&yaml("'a,b'")),
            Ok(vec!["a,b".to_string()]),
            "free text keeps its commas"
        );
    }

    #[test]
    fn numbers_read_leniently_but_not_wrongly() {
        assert_eq!(f64::from_value(&yaml("1e-4")), Ok(1e-4));
        assert_eq!(f64::from_value(&yaml("3")), Ok(3.0));
        assert_eq!(f64::from_value(&yaml("'2.5'")), Ok(2.5));
        assert!(f64::from_value(&yaml("abc")).is_err());
        assert_eq!(u32::from_value(&yaml("7")), Ok(7));
        assert!(u32::from_value(&yaml("-1")).unwrap_err().help.is_some());
        assert!(u32::from_value(&yaml("2.5")).is_err());
        assert_eq!(i64::from_value(&yaml("-1")), Ok(-1));
    }

    #[test]
    fn lists_accept_one_item_and_nothing() {
        assert_eq!(
            Vec::<String>::from_value(&yaml("[a, b]")),
            Ok(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            Vec::<String>::from_value(&yaml("a")),
            Ok(vec!["a".to_string()])
        );
        assert_eq!(Vec::<String>::from_value(&yaml("~")), Ok(vec![]));
        assert!(Vec::<u32>::from_value(&yaml("[1, x]")).is_err());
    }

    #[test]
    fn list_kind_describes_its_items() {
        assert_eq!(<Vec<String>>::KIND.name(), "list of string");
        assert!(<Vec<u32>>::KIND.is_list());
    }
}
