//! The mapping the importer would use for a file with these columns, for a form that shows it before importing
//! (the studio's mapping step): the importer's own recognition rules, not a second set.

use std::path::Path;

use super::shape::{plan, Shape};
use super::Mapping;

/// The mapping the importer recognises from a file's first-row `columns`. Flat-compatible layouts (flat files,
/// Alpaca without `history`, plain text) come back as the columns the importer would read; layouts whose rows
/// hold whole conversations (ShareGPT, OpenAI messages, Alpaca with `history`, LLaMA-Factory and TRL pairs) come
/// back as their layout alone, since they have no per-turn columns to pick; flat preference columns come back as
/// their prompt and chosen answer columns (the rejected one is recognised by name). Nothing recognised: an empty mapping.
pub fn guess_mapping(columns: &[String]) -> Mapping {
    let Ok(plan) = plan(Path::new(""), columns, &[], &Mapping::default()) else {
        return Mapping::default();
    };
    match plan.shape {
        Shape::Flat | Shape::Text => Mapping {
            shape: None,
            prompt: plan.prompt,
            answer: plan.answer,
            system: plan.system,
            id: plan.id,
            parent_id: plan.parent_id,
            rejected: None,
        },
        // Named prompt and answer columns with a rejected column beside them import as pairs again.
        Shape::Preference if plan.history.is_none() => Mapping {
            shape: None,
            prompt: plan.prompt,
            answer: plan.answer,
            system: plan.system,
            id: plan.id,
            parent_id: plan.parent_id,
            rejected: plan.rejected,
        },
        Shape::Alpaca if plan.history.is_none() => Mapping {
            shape: None,
            prompt: plan.prompt,
            answer: plan.answer,
            system: plan.system,
            id: None,
            parent_id: None,
            rejected: None,
        },
        shape @ (Shape::Alpaca
        | Shape::ShareGpt
        | Shape::OpenAi
        | Shape::LlamaFactory
        | Shape::Trl
        | Shape::Preference) => Mapping {
            shape: Some(shape),
            ..Mapping::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn alpaca_columns_read_as_prompt_and_answer() {
        let m = guess_mapping(&cols(&["instruction", "input", "output"]));
        assert_eq!(m.prompt, ["instruction", "input"]);
        assert_eq!(m.answer.as_deref(), Some("output"));
    }

    #[test]
    fn chained_flat_columns_keep_their_ids() {
        let m = guess_mapping(&cols(&["id", "parent_id", "prompt", "response"]));
        assert_eq!(m.prompt, ["prompt"]);
        assert_eq!(m.answer.as_deref(), Some("response"));
        assert_eq!(
            (m.id.as_deref(), m.parent_id.as_deref()),
            (Some("id"), Some("parent_id"))
        );
    }

    #[test]
    fn pair_columns_read_as_prompt_and_chosen_answer() {
        let m = guess_mapping(&cols(&["instruction", "input", "chosen", "rejected"]));
        assert_eq!(m.prompt, ["instruction", "input"]);
        assert_eq!((m.shape, m.answer.as_deref()), (None, Some("chosen")));
        let m = guess_mapping(&cols(&["conversations", "chosen", "rejected"]));
        assert_eq!(m.shape, Some(Shape::LlamaFactory));
        assert_eq!(
            guess_mapping(&cols(&["chosen", "rejected"])).shape,
            Some(Shape::Trl)
        );
    }

    #[test]
    fn conversations_are_a_layout_not_columns() {
        let m = guess_mapping(&cols(&["messages"]));
        assert_eq!(m.shape, Some(Shape::OpenAi));
        assert!(m.prompt.is_empty() && m.answer.is_none());
        assert_eq!(guess_mapping(&cols(&["a", "b"])), Mapping::default());
    }
}
