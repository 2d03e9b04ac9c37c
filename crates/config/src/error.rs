//! The config crate's error type, and the [`Issue`]s and [`Report`]s that validation returns.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Errors of reading, writing and parsing experiment settings. Messages start lowercase, name the thing in
/// backticks and end with a `help:` line when there is a fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{}`: {source}{}", path.display(), read_help(source))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{origin} is not valid YAML: {message}\nhelp: {}", yaml_help(message))]
    Yaml { origin: String, message: String },

    /// Settings that do not fit the schema: unknown keys, wrong types or choices. All of them, not just the first.
    #[error("{}", settings_message(origin, issues))]
    Settings { origin: String, issues: Vec<Issue> },

    #[error("command-line argument `{arg}` {message}\nhelp: write overrides as `--section.field value` or `--section.field=value`")]
    OverrideSyntax { arg: String, message: String },
}

impl Error {
    /// The per-setting issues of an [`Error::Settings`]; empty for the other variants.
    pub fn issues(&self) -> &[Issue] {
        match self {
            Error::Settings { issues, .. } => issues,
            _ => &[],
        }
    }
}

/// The fix for a file that cannot be read, when there is one the user can apply.
fn read_help(source: &std::io::Error) -> &'static str {
    match source.kind() {
        std::io::ErrorKind::NotFound => {
            "\nhelp: check the path; a relative path starts in the folder ferrotune runs in"
        }
        std::io::ErrorKind::IsADirectory => "\nhelp: give the experiment file (YAML), not a folder",
        _ => "",
    }
}

/// The fix for a YAML parse error: anchors that expand without end (an alias bomb), else the syntax at the line.
fn yaml_help(message: &str) -> &'static str {
    if message.contains("repetition limit") || message.contains("recursion limit") {
        "its anchors and aliases (`&name`, `*name`) expand to too much; write the values out instead"
    } else {
        "fix the syntax at that line: `key: value` pairs, a group's settings indented under it by two spaces"
    }
}

fn settings_message(origin: &str, issues: &[Issue]) -> String {
    match issues {
        [one] => format!("{origin}: {one}"),
        many => {
            let mut text = format!("{origin} has {} invalid settings:", many.len());
            for issue in many {
                let indented = issue.to_string().replace('\n', "\n  ");
                text.push_str(&format!("\n- {indented}"));
            }
            text
        }
    }
}

/// Result with the config crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One problem with one setting: its key (`training.learning_rate`; empty for the file as a whole), what is wrong
/// (lowercase, without the key) and, when there is one, the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub key: String,
    pub message: String,
    pub help: Option<String>,
}

impl Issue {
    /// An issue without a fix.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            help: None,
        }
    }

    /// Adds the `help:` line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)?;
        } else {
            write!(f, "`{}` {}", self.key, self.message)?;
        }
        if let Some(help) = &self.help {
            write!(f, "\nhelp: {help}")?;
        }
        Ok(())
    }
}

/// What a check found: errors block a run, warnings do not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

impl Report {
    /// True when there are no errors (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Adds an error.
    pub fn error(&mut self, issue: Issue) {
        self.errors.push(issue);
    }

    /// Adds a warning.
    pub fn warning(&mut self, issue: Issue) {
        self.warnings.push(issue);
    }

    /// Appends another report's issues.
    pub fn extend(&mut self, other: Report) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }

    /// The errors about `key`.
    pub fn errors_for<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Issue> + 'a {
        self.errors.iter().filter(move |i| i.key == key)
    }

    /// The warnings about `key`.
    pub fn warnings_for<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Issue> + 'a {
        self.warnings.iter().filter(move |i| i.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_issue_reads_as_one_line_with_help() {
        let err = Error::Settings {
            origin: "`cfg.yaml`".into(),
            issues: vec![
                Issue::new("training.lr", "is not a setting").with_help("did you mean `x`?")
            ],
        };
        assert_eq!(
            err.to_string(),
            "`cfg.yaml`: `training.lr` is not a setting\nhelp: did you mean `x`?"
        );
    }

    #[test]
    fn many_issues_are_listed() {
        let err = Error::Settings {
            origin: "`cfg.yaml`".into(),
            issues: vec![
                Issue::new("a", "is bad").with_help("fix a"),
                Issue::new("b", "is bad"),
            ],
        };
        assert_eq!(
            err.to_string(),
            "`cfg.yaml` has 2 invalid settings:\n- `a` is bad\n  help: fix a\n- `b` is bad"
        );
    }
}
