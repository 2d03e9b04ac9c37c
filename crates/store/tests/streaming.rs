//! A big file is streamed, not loaded whole. A ~50 MB file keeps the test fast; the same code path serves
//! multi-gigabyte files (only ids, parent ids and word counts are held per row).

use std::io::{BufWriter, Write};

use ferrotune_store::Split;

use crate::common::TestHome;

#[test]
fn a_50_mb_jsonl_and_csv_import_row_by_row() {
    let mut t = TestHome::new();
    let answer = "lorem ipsum dolor sit amet ".repeat(18); // 90 words, ~490 bytes
    let rows = 100_000;
    let jsonl = t.dir.path().join("big.jsonl");
    let mut out = BufWriter::new(std::fs::File::create(&jsonl).unwrap());
    for i in 0..rows {
        writeln!(
            out,
            "{}",
            serde_json::json!({"prompt": format!("question {i}"), "answer": answer})
        )
        .unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let size = std::fs::metadata(&jsonl).unwrap().len();
    assert!(size > 50_000_000, "{size}");
    let info = t.import("big", &jsonl).unwrap();
    assert_eq!(info.train.rows, rows);
    assert_eq!(info.train.statistics.answer_words.max, 90);
    assert_eq!(info.train.statistics.prompt_words.min, 2);
    let last = t
        .store
        .sample("big", Split::Train, rows as usize)
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.prompt, format!("question {}", rows - 1));

    let csv = t.dir.path().join("big.csv");
    let mut out = BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(out, "prompt,answer").unwrap();
    for i in 0..rows {
        writeln!(out, "question {i},{answer}").unwrap();
    }
    // A ragged row at the very end is still found, with its line.
    writeln!(out, "a,b,c").unwrap();
    drop(out);
    let err = t.import("bigcsv", &csv).unwrap_err().to_string();
    assert!(err.contains(&format!("line {}", rows + 2)), "{err}");
}
