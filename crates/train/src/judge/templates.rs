//! The judge's prompts (written for Ferrotune; the scales are H2O LLM Studio's: `general` 0–1 against the
//! reference, `mt-bench` MT-Bench's 1–10 single-answer grading) and the reading of its `SCORE:` line.

use ferrotune_config::GptTemplate;

use super::Answer;

const SYSTEM: &str =
    "You are a careful, impartial judge of answers written by an AI assistant. You follow the \
grading instructions exactly and end your reply with the score line they ask for.";

/// The messages asking the judge about `answer`, as `(role, content)`.
pub fn prompt(template: GptTemplate, answer: &Answer) -> Vec<(&'static str, String)> {
    let user = match template {
        GptTemplate::General => format!(
            "Grade the assistant's answer to the question below against the reference answer. Judge correctness \
             first, then completeness and clarity; an answer that contradicts the reference is wrong however well \
             it is written.\n\n[Question]\n{}\n\n[Reference answer]\n{}\n\n[Assistant's answer]\n{}\n\n\
             Explain your grade in one or two sentences. Then write a last line of the form `SCORE: x`, where x is \
             a number from 0 (wrong or useless) to 1 (fully correct and helpful).",
            answer.prompt, answer.reference, answer.prediction
        ),
        GptTemplate::MtBench if needs_reference(answer.category) => format!(
            "Evaluate the assistant's answer to the user's question below. Compare it with the reference answer: \
             find and correct any mistake in the assistant's answer, then judge its correctness and helpfulness. \
             Begin with a short, objective explanation, then rate the answer on a scale of 1 to 10 in a last line \
             of the form `SCORE: x`.\n\n[Question]\n{}\n\n[The start of the reference answer]\n{}\n[The end of \
             the reference answer]\n\n[The start of the assistant's answer]\n{}\n[The end of the assistant's answer]",
            answer.prompt, answer.reference, answer.prediction
        ),
        GptTemplate::MtBench => format!(
            "Evaluate the quality of the assistant's response to the user's question below. Consider how helpful, \
             relevant, accurate, deep, creative and detailed it is. Begin with a short, objective explanation, then \
             rate the response on a scale of 1 to 10 in a last line of the form `SCORE: x`.\n\n[Question]\n{}\n\n\
             [The start of the assistant's answer]\n{}\n[The end of the assistant's answer]",
            answer.prompt, answer.prediction
        ),
    };
    vec![("system", SYSTEM.to_string()), ("user", user)]
}

/// Whether MT-Bench grades rows of `category` against their reference (its math, reasoning and coding questions).
fn needs_reference(category: Option<&str>) -> bool {
    category.is_some_and(|c| {
        ["math", "reasoning", "coding"]
            .iter()
            .any(|k| c.trim().eq_ignore_ascii_case(k))
    })
}

/// The score of the reply's last `SCORE:` line, within the template's scale; why not otherwise.
pub fn parse_score(reply: &str, template: GptTemplate) -> Result<f64, String> {
    let (low, high) = match template {
        GptTemplate::General => (0.0, 1.0),
        GptTemplate::MtBench => (1.0, 10.0),
    };
    let line = reply
        .lines()
        .rev()
        .find_map(|l| {
            let l = l
                .trim()
                .trim_matches(|c| c == '*' || c == '`' || c == '#')
                .trim();
            let upper = l.to_ascii_uppercase();
            upper
                .find("SCORE:")
                .map(|at| l[at + "SCORE:".len()..].trim().to_string())
        })
        .ok_or_else(|| format!("the judge's reply has no `SCORE:` line: {:?}", cut(reply)))?;
    let number: String = line
        .trim_start_matches(['*', '`', '[', ' '])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let score: f64 = number
        .parse()
        .map_err(|_| format!("the judge's score `{}` is not a number", cut(&line)))?;
    if !(low..=high).contains(&score) {
        return Err(format!("the judge's score {score} is outside {low}–{high}"));
    }
    Ok(score)
}

/// The reply without its score line: the judge's explanation.
pub fn explanation(reply: &str) -> String {
    reply
        .lines()
        .filter(|l| !l.to_ascii_uppercase().contains("SCORE:"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn cut(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_read_from_the_last_score_line_within_the_scale() {
        let g = GptTemplate::General;
        assert_eq!(parse_score("Right.\nSCORE: 0.8", g), Ok(0.8));
        assert_eq!(parse_score("Good.\n**Score: 1**", g), Ok(1.0));
        assert_eq!(
            parse_score("SCORE: 0.1\nOn reflection...\nSCORE: 0.4", g),
            Ok(0.4)
        );
        assert_eq!(
            parse_score("Rating.\nSCORE: 7/10", GptTemplate::MtBench),
            Ok(7.0)
        );
        assert!(parse_score("no verdict", g)
            .unwrap_err()
            .contains("no `SCORE:` line"));
        assert!(parse_score("SCORE: high", g)
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_score("SCORE: 7", g)
            .unwrap_err()
            .contains("outside 0–1"));
        assert!(parse_score("SCORE: 0", GptTemplate::MtBench)
            .unwrap_err()
            .contains("outside 1–10"));
        assert_eq!(explanation("It is right.\nSCORE: 1"), "It is right.");
    }

    #[test]
    fn the_general_prompt_holds_the_question_the_reference_and_the_answer() {
        let mut a = Answer {
            prompt: "2+2?",
            reference: "4",
            prediction: "four",
            category: None,
        };
        let m = prompt(GptTemplate::General, &a);
        assert_eq!(m[0].0, "system");
        assert!(
            m[1].1.contains("2+2?")
                && m[1].1.contains("[Reference answer]\n4")
                && m[1].1.contains("four")
        );
        assert!(!prompt(GptTemplate::MtBench, &a)[1]
            .1
            .contains("reference answer"));
        // MT-Bench's math, reasoning and coding rows are graded against the reference; its other rows are not.
        a.category = Some("Math");
        let with = &prompt(GptTemplate::MtBench, &a)[1].1;
        assert!(
            with.contains("[The start of the reference answer]\n4\n"),
            "{with}"
        );
        a.category = Some("writing");
        assert!(!prompt(GptTemplate::MtBench, &a)[1]
            .1
            .contains("reference answer"));
    }
}
