//! Conversations inside one row: ShareGPT and OpenAI message lists, and Alpaca's `history` pairs, paired into
//! turns (an optional leading system message, then user/assistant pairs).

use serde_json::Value;

use super::shape::{Shape, Turn};

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

/// Alpaca `history` pairs before the row's own turn; the turns are named like a conversation's.
pub(crate) fn with_history(pairs: &[Value], last: Turn) -> Result<Vec<Turn>, (usize, String)> {
    let mut turns = Vec::with_capacity(pairs.len() + 1);
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
    let Turn { id, system, .. } = last.clone();
    turns.push(Turn {
        system: String::new(),
        id: None,
        ..last
    });
    turns[0].system = system;
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
    mut system: String,
    id: Option<String>,
) -> std::result::Result<Vec<Turn>, TurnError> {
    let mut turns = Vec::new();
    let mut prompt: Option<String> = None;
    for (i, message) in list.iter().enumerate() {
        let (kind, text) = role(shape, message).map_err(|(m, h)| (i, m, h))?;
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
            }),
        }
    }
    if prompt.is_some() {
        return Err((
            list.len() - 1,
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
        let turns = with_history(&pairs, last).unwrap();
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
        let (i, message) = with_history(&[json!(["only one"])], Turn::default()).unwrap_err();
        assert_eq!(i, 0);
        assert!(message.contains("pair"), "{message}");
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
