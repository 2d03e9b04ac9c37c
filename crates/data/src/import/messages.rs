//! Conversations inside one row: ShareGPT and OpenAI message lists, Alpaca's `history` pairs, and preference
//! pairs (the conversation up to the answer, a chosen and a rejected answer), paired into turns (an optional
//! leading system message, then user/assistant pairs).

use serde_json::Value;

use super::shape::{cell_text, Shape, Turn};

/// The list in a cell: a JSON array, or a string holding one (CSV, Parquet strings); `None` when empty.
pub(crate) fn list(cell: Option<&Value>) -> Result<Option<Vec<Value>>, String> {
    match cell {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list.clone())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(list)) => Ok(Some(list)),
            Ok(_) => Err("is not a list".into()),
            Err(e) => Err(format!("is not valid JSON: {e}")),
        },
        Some(_) => Err("is not a list".into()),
    }
}

/// Alpaca `history` pairs before the row's own turns (`own`, which hold the row's id, system and parent id); the
/// turns are named like a conversation's.
pub(crate) fn with_history(pairs: &[Value], own: Vec<Turn>) -> Result<Vec<Turn>, (usize, String)> {
    let mut turns = Vec::with_capacity(pairs.len() + own.len());
    for (i, pair) in pairs.iter().enumerate() {
        let texts: Option<Vec<&str>> = pair
            .as_array()
            .filter(|p| p.len() == 2)
            .and_then(|p| p.iter().map(Value::as_str).collect());
        let Some(texts) = texts else {
            return Err((i, "is not a [prompt, answer] pair of texts".into()));
        };
        turns.push(Turn {
            prompt: texts[0].to_string(),
            answer: texts[1].to_string(),
            ..Turn::default()
        });
    }
    let mut own = own.into_iter();
    let Some(first) = own.next() else {
        return Ok(turns);
    };
    let Turn {
        id,
        system,
        parent_id,
        ..
    } = first.clone();
    turns.push(Turn {
        system: String::new(),
        id: None,
        parent_id: None,
        ..first
    });
    turns.extend(own);
    turns[0].system = system;
    turns[0].parent_id = parent_id;
    name_turns(&mut turns, id);
    Ok(turns)
}

/// A row id names the conversation: its turns become `<id>`, `<id>-2`, `<id>-3`, ...
fn name_turns(turns: &mut [Turn], id: Option<String>) {
    if let Some(id) = id {
        for (k, turn) in turns.iter_mut().enumerate() {
            turn.id = Some(if k == 0 {
                id.clone()
            } else {
                format!("{id}-{}", k + 1)
            });
        }
    }
}

/// Roles of a message: 0 system, 1 prompt, 2 answer.
fn role(
    shape: Shape,
    message: &Value,
) -> std::result::Result<(u8, String), (String, &'static str)> {
    let (role_key, text_key, help) = match shape {
        Shape::ShareGpt => (
            "from",
            "value",
            "ShareGPT messages look like {\"from\": \"human\", \"value\": \"...\"}",
        ),
        _ => (
            "role",
            "content",
            "OpenAI messages look like {\"role\": \"user\", \"content\": \"...\"}",
        ),
    };
    let Value::Object(m) = message else {
        return Err(("is not an object".into(), help));
    };
    let who = m
        .get(role_key)
        .or_else(|| m.get(if role_key == "from" { "role" } else { "from" }))
        .and_then(Value::as_str)
        .ok_or_else(|| (format!("has no `{role_key}`"), help))?;
    let content = m.get(text_key).or_else(|| {
        m.get(if text_key == "value" {
            "content"
        } else {
            "value"
        })
    });
    let text = match content {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // OpenAI content parts: [{"type": "text", "text": "..."}].
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
    };
    let kind = match who.to_ascii_lowercase().as_str() {
        "system" | "developer" => 0,
        "human" | "user" => 1,
        "gpt" | "assistant" | "chatgpt" | "bard" | "bing" | "model" => 2,
        _ => {
            return Err((
                format!("role `{who}` is not supported"),
                "only system, user (human) and assistant (gpt) messages can be trained on; remove tool or function messages",
            ))
        }
    };
    Ok((kind, text))
}

pub(crate) type TurnError = (usize, String, &'static str);

/// Pairs the messages of one conversation into turns: an optional leading system message, then user/assistant
/// pairs.
pub(crate) fn conversation_turns(
    shape: Shape,
    list: &[Value],
    system: String,
    id: Option<String>,
) -> std::result::Result<Vec<Turn>, TurnError> {
    let messages = list
        .iter()
        .enumerate()
        .map(|(i, m)| role(shape, m).map_err(|(m, h)| (i, m, h)))
        .collect::<Result<Vec<_>, _>>()?;
    pair_up(&messages, system, id)
}

/// Pairs messages (role 0 system, 1 user, 2 assistant; with their text) into turns.
fn pair_up(
    messages: &[(u8, String)],
    mut system: String,
    id: Option<String>,
) -> std::result::Result<Vec<Turn>, TurnError> {
    let mut turns = Vec::new();
    let mut prompt: Option<String> = None;
    for (i, (kind, text)) in messages.iter().enumerate() {
        let text = text.clone();
        match (kind, prompt.take()) {
            (0, None) if turns.is_empty() => system = text,
            (0, _) => {
                return Err((
                    i,
                    "a system message must come first".into(),
                    "move the system message to the start of the conversation",
                ))
            }
            (1, None) => prompt = Some(text),
            (1, Some(_)) => {
                return Err((
                    i,
                    "two user messages in a row".into(),
                    "user and assistant messages must alternate",
                ))
            }
            (_, None) => {
                return Err((
                    i,
                    "an assistant message without a user message before it".into(),
                    "user and assistant messages must alternate, starting with the user",
                ))
            }
            (_, Some(p)) => turns.push(Turn {
                id: None,
                parent_id: None,
                system: if turns.is_empty() {
                    std::mem::take(&mut system)
                } else {
                    String::new()
                },
                prompt: p,
                answer: text,
                rejected: None,
            }),
        }
    }
    if prompt.is_some() {
        return Err((
            messages.len() - 1,
            "the conversation ends with a user message and no answer".into(),
            "add the assistant's answer or remove the last message",
        ));
    }
    if turns.is_empty() {
        return Err((
            0,
            "the conversation has no user/assistant pair".into(),
            "every conversation needs at least one user message and its answer",
        ));
    }
    name_turns(&mut turns, id);
    Ok(turns)
}

/// A prompt, chosen or rejected cell of a preference row: text, or messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    /// `{"role", "content"}` or `{"from", "value"}` objects.
    Messages(Vec<Value>),
}

fn is_message(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.contains_key("role") || m.contains_key("from"))
}

impl Part {
    /// A cell: a JSON list (of messages), one message object, or text; with `parse_text`, a string that holds
    /// a JSON list of messages (or one message) too.
    pub(crate) fn of(cell: Option<&Value>, parse_text: bool) -> Part {
        match cell {
            Some(Value::Array(list)) => Part::Messages(list.clone()),
            Some(v @ Value::Object(_)) if is_message(v) => Part::Messages(vec![v.clone()]),
            Some(Value::String(s)) if parse_text && s.trim_start().starts_with(['[', '{']) => {
                match serde_json::from_str::<Value>(s) {
                    Ok(Value::Array(list)) if !list.is_empty() && list.iter().all(is_message) => {
                        Part::Messages(list)
                    }
                    Ok(v) if is_message(&v) => Part::Messages(vec![v]),
                    _ => Part::Text(s.clone()),
                }
            }
            other => Part::Text(cell_text(other)),
        }
    }
}

/// One preference row.
pub(crate) struct Pair<'a> {
    /// The conversation up to the answers; `None`: the start `chosen` and `rejected` share (TRL's implicit
    /// prompt).
    pub prompt: Option<Part>,
    pub chosen: Part,
    pub rejected: Part,
    /// The prompt, chosen and rejected columns, for messages.
    pub columns: [&'a str; 3],
    /// The key style of the messages (ShareGPT `from`/`value`, OpenAI `role`/`content`), for help.
    pub messages: Shape,
}

/// What is wrong with a preference row, and the fix.
pub(crate) type PairError = (String, &'static str);

const IMPLICIT_HELP: &str = "without a prompt column, `chosen` and `rejected` are whole conversations that start with the same prompt; add a `prompt` column or fix the row";
const ANSWER_HELP: &str =
    "`chosen` and `rejected` hold only the answer; the conversation before it belongs in the prompt";

/// The turns of one preference row: the prompt's conversation, then the chosen answer; the last turn carries the
/// rejected answer. Empty answers are left to the caller, which knows whether the row ends its conversation.
pub(crate) fn pair_turns(
    pair: Pair,
    system: String,
    id: Option<String>,
) -> Result<Vec<Turn>, PairError> {
    let [prompt_column, chosen_column, rejected_column] = pair.columns;
    let style = pair.messages;
    let roles = |list: &[Value], column: &str, offset: usize| {
        list.iter()
            .enumerate()
            .map(|(i, m)| {
                role(style, m)
                    .map_err(|(m, h)| (format!("message {} of `{column}`: {m}", offset + i + 1), h))
            })
            .collect::<Result<Vec<_>, PairError>>()
    };
    // (prompt messages, where they come from, chosen, rejected, index of the answers' first message)
    let (prompt, source, chosen, rejected, offset) = match pair.prompt {
        Some(Part::Text(text)) => (
            vec![(1, text)],
            format!("column `{prompt_column}`"),
            pair.chosen,
            pair.rejected,
            0,
        ),
        Some(Part::Messages(list)) => {
            // Answers that repeat the prompt's messages before their own keep only their own.
            let own = |part: Part| match part {
                Part::Messages(m) if m.len() > list.len() && m.starts_with(&list) => {
                    Part::Messages(m[list.len()..].to_vec())
                }
                other => other,
            };
            (
                roles(&list, prompt_column, 0)?,
                format!("column `{prompt_column}`"),
                own(pair.chosen),
                own(pair.rejected),
                0,
            )
        }
        None => match (pair.chosen, pair.rejected) {
            (Part::Messages(c), Part::Messages(r)) => {
                let shared = c.iter().zip(&r).take_while(|(a, b)| a == b).count();
                if shared == 0 {
                    return Err((
                        format!("`{chosen_column}` and `{rejected_column}` share no prompt: their first messages differ"),
                        IMPLICIT_HELP,
                    ));
                }
                (
                    roles(&c[..shared], chosen_column, 0)?,
                    format!("the start `{chosen_column}` and `{rejected_column}` share"),
                    Part::Messages(c[shared..].to_vec()),
                    Part::Messages(r[shared..].to_vec()),
                    shared,
                )
            }
            (Part::Text(c), Part::Text(r)) => {
                let Some((prompt, c, r)) = shared_text(&c, &r) else {
                    return Err((
                        format!("`{chosen_column}` and `{rejected_column}` share no prompt: they start with different words"),
                        IMPLICIT_HELP,
                    ));
                };
                (
                    vec![(1, prompt)],
                    format!("the start `{chosen_column}` and `{rejected_column}` share"),
                    Part::Text(c),
                    Part::Text(r),
                    0,
                )
            }
            _ => {
                return Err((
                    format!("`{chosen_column}` and `{rejected_column}` must both be texts or both message lists"),
                    IMPLICIT_HELP,
                ))
            }
        },
    };
    if prompt.last().map(|(kind, _)| *kind) != Some(1) {
        return Err((
            format!(
                "the conversation before the answers ({source}) does not end with a user message"
            ),
            "the prompt ends with the user message that `chosen` and `rejected` answer",
        ));
    }
    let answer = |part: Part, column: &str| -> Result<String, PairError> {
        match part {
            Part::Text(text) => Ok(text),
            Part::Messages(list) => {
                let mut texts = Vec::with_capacity(list.len());
                for (i, (kind, text)) in roles(&list, column, offset)?.into_iter().enumerate() {
                    if kind != 2 {
                        return Err((
                            format!(
                                "message {} of `{column}` is not an assistant message",
                                offset + i + 1
                            ),
                            ANSWER_HELP,
                        ));
                    }
                    texts.push(text);
                }
                Ok(texts.join("\n\n"))
            }
        }
    };
    let chosen = answer(chosen, chosen_column)?;
    let rejected = answer(rejected, rejected_column)?;
    let mut messages = prompt;
    messages.push((2, chosen));
    let mut turns = pair_up(&messages, system, id).map_err(|(i, message, help)| {
        (format!("message {} of {source}: {message}", i + 1), help)
    })?;
    if let Some(last) = turns.last_mut() {
        last.rejected = Some(rejected);
    }
    Ok(turns)
}

/// TRL's implicit prompt of two texts: their shared start up to a word boundary, and the rest of each (trimmed).
fn shared_text(a: &str, b: &str) -> Option<(String, String, String)> {
    let common = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map(|((i, _), _)| i)
        .unwrap_or(a.len().min(b.len()));
    let (a_rest, b_rest) = (&a[common..], &b[common..]);
    // Cut inside a word: back to the space before it.
    let at_boundary = |rest: &str| rest.is_empty() || rest.starts_with(char::is_whitespace);
    let cut = if at_boundary(a_rest) && at_boundary(b_rest)
        || a[..common].ends_with(char::is_whitespace)
    {
        common
    } else {
        a[..common].rfind(char::is_whitespace)?
    };
    let prompt = a[..cut].trim();
    if prompt.is_empty() {
        return None;
    }
    Some((
        prompt.to_string(),
        a[cut..].trim().to_string(),
        b[cut..].trim().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sharegpt_turns_pair_and_take_the_system() {
        let list = vec![
            json!({"from": "system", "value": "be kind"}),
            json!({"from": "human", "value": "hi"}),
            json!({"from": "gpt", "value": "hello"}),
            json!({"from": "human", "value": "bye"}),
            json!({"from": "gpt", "value": "ciao"}),
        ];
        let turns =
            conversation_turns(Shape::ShareGpt, &list, String::new(), Some("c".into())).unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].system, "be kind");
        assert_eq!(
            (turns[1].prompt.as_str(), turns[1].answer.as_str()),
            ("bye", "ciao")
        );
        assert_eq!(turns[1].id.as_deref(), Some("c-2"));
        assert_eq!(turns[1].system, "");
    }

    #[test]
    fn openai_content_parts_and_bad_orders() {
        let list = vec![
            json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            json!({"role": "assistant", "content": "c"}),
        ];
        let turns = conversation_turns(Shape::OpenAi, &list, String::new(), None).unwrap();
        assert_eq!(turns[0].prompt, "a\nb");
        let bad = vec![json!({"role": "assistant", "content": "c"})];
        let (i, message, _) =
            conversation_turns(Shape::OpenAi, &bad, String::new(), None).unwrap_err();
        assert_eq!(i, 0);
        assert!(message.contains("without a user message"), "{message}");
        let tool = vec![json!({"role": "tool", "content": "c"})];
        let (_, message, _) =
            conversation_turns(Shape::OpenAi, &tool, String::new(), None).unwrap_err();
        assert!(message.contains("`tool`"), "{message}");
    }

    #[test]
    fn alpaca_history_comes_first_and_takes_the_system() {
        let last = Turn {
            id: Some("a".into()),
            system: "sys".into(),
            prompt: "now".into(),
            answer: "ok".into(),
            ..Turn::default()
        };
        let pairs = vec![json!(["before", "yes"])];
        let turns = with_history(&pairs, vec![last]).unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(
            (turns[0].prompt.as_str(), turns[0].system.as_str()),
            ("before", "sys")
        );
        assert_eq!(
            (turns[1].prompt.as_str(), turns[1].system.as_str()),
            ("now", "")
        );
        assert_eq!(turns[1].id.as_deref(), Some("a-2"));
        let (i, message) = with_history(&[json!(["only one"])], vec![Turn::default()]).unwrap_err();
        assert_eq!(i, 0);
        assert!(message.contains("pair"), "{message}");
    }

    fn pair(prompt: Option<Part>, chosen: Part, rejected: Part) -> Pair<'static> {
        Pair {
            prompt,
            chosen,
            rejected,
            columns: ["prompt", "chosen", "rejected"],
            messages: Shape::OpenAi,
        }
    }

    fn messages(value: Value) -> Part {
        Part::of(Some(&value), false)
    }

    #[test]
    fn llamafactory_pairs_answer_the_last_user_message() {
        let conversation = json!([
            {"from": "system", "value": "be kind"},
            {"from": "human", "value": "hi"},
            {"from": "gpt", "value": "hello"},
            {"from": "human", "value": "bye"}
        ]);
        let p = Pair {
            messages: Shape::ShareGpt,
            columns: ["conversations", "chosen", "rejected"],
            ..pair(
                Some(messages(conversation)),
                messages(json!({"from": "gpt", "value": "ciao"})),
                Part::of(Some(&json!("go away")), false),
            )
        };
        let turns = pair_turns(p, String::new(), Some("c".into())).unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(
            (turns[0].system.as_str(), turns[0].rejected.as_deref()),
            ("be kind", None)
        );
        assert_eq!(
            (
                turns[1].prompt.as_str(),
                turns[1].answer.as_str(),
                turns[1].rejected.as_deref()
            ),
            ("bye", "ciao", Some("go away"))
        );
        assert_eq!(turns[1].id.as_deref(), Some("c-2"));

        let ends_with_answer =
            json!([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]);
        let p = pair(
            Some(messages(ends_with_answer)),
            Part::Text("a".into()),
            Part::Text("b".into()),
        );
        let (message, _) = pair_turns(p, String::new(), None).unwrap_err();
        assert!(
            message.contains("does not end with a user message"),
            "{message}"
        );
    }

    #[test]
    fn trl_answers_are_assistant_messages_after_the_prompt() {
        let prompt = json!([{"role": "user", "content": "2+2?"}]);
        // The chosen list repeats the prompt; only its own message is the answer.
        let chosen =
            json!([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]);
        let rejected = json!([{"role": "assistant", "content": "5"}]);
        let p = pair(
            Some(messages(prompt.clone())),
            messages(chosen),
            messages(rejected),
        );
        let turns = pair_turns(p, "sys".into(), None).unwrap();
        assert_eq!(turns.len(), 1);
        assert_eq!(
            (
                turns[0].system.as_str(),
                turns[0].answer.as_str(),
                turns[0].rejected.as_deref()
            ),
            ("sys", "4", Some("5"))
        );
        let user = json!([{"role": "user", "content": "more"}]);
        let p = pair(
            Some(messages(prompt)),
            Part::Text("4".into()),
            messages(user),
        );
        let (message, help) = pair_turns(p, String::new(), None).unwrap_err();
        assert!(
            message.contains("message 1 of `rejected` is not an assistant message"),
            "{message}"
        );
        assert!(help.contains("only the answer"), "{help}");
    }

    #[test]
    fn an_implicit_prompt_is_the_shared_start() {
        let conv = |answer: &str| {
            json!([
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "sky?"},
                {"role": "assistant", "content": answer}
            ])
        };
        let p = pair(None, messages(conv("blue")), messages(conv("green")));
        let turns = pair_turns(p, String::new(), None).unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(
            (turns[0].prompt.as_str(), turns[0].answer.as_str()),
            ("hi", "hello")
        );
        assert_eq!(
            (
                turns[1].prompt.as_str(),
                turns[1].answer.as_str(),
                turns[1].rejected.as_deref()
            ),
            ("sky?", "blue", Some("green"))
        );
        let other =
            json!([{"role": "user", "content": "bye"}, {"role": "assistant", "content": "green"}]);
        let p = pair(None, messages(conv("blue")), messages(other));
        let (message, _) = pair_turns(p, String::new(), None).unwrap_err();
        assert!(message.contains("share no prompt"), "{message}");

        let p = pair(
            None,
            Part::Text("The sky is blue.".into()),
            Part::Text("The sky is black.".into()),
        );
        let turns = pair_turns(p, String::new(), None).unwrap();
        assert_eq!(
            (
                turns[0].prompt.as_str(),
                turns[0].answer.as_str(),
                turns[0].rejected.as_deref()
            ),
            ("The sky is", "blue.", Some("black."))
        );
        assert_eq!(shared_text("Paris", "Lyon"), None);
        assert_eq!(shared_text("Pa ris", "Par is"), None);
    }

    #[test]
    fn parts_are_text_unless_they_hold_messages() {
        assert_eq!(Part::of(None, true), Part::Text(String::new()));
        assert_eq!(
            Part::of(Some(&json!("[1, 2]")), true),
            Part::Text("[1, 2]".into())
        );
        let text = json!(r#"[{"role": "assistant", "content": "x"}]"#);
        assert!(matches!(Part::of(Some(&text), true), Part::Messages(m) if m.len() == 1));
        assert!(matches!(Part::of(Some(&text), false), Part::Text(_)));
        assert_eq!(Part::of(Some(&json!(3)), false), Part::Text("3".into()));
    }

    #[test]
    fn lists_come_as_arrays_or_json_text() {
        assert_eq!(list(Some(&json!("[1]"))).unwrap(), Some(vec![json!(1)]));
        assert_eq!(list(Some(&json!(""))).unwrap(), None);
        assert!(list(Some(&json!("{")))
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(list(Some(&json!(3))).unwrap_err().contains("not a list"));
    }
}
