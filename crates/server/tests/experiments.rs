//! The experiment form's validation, grids and warnings, and chat over SSE.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};

use ferrotune_test_support::model_fixture;

use crate::common::{sse_events, Studio};

#[tokio::test]
async fn form_validation_reports_problems_per_setting() {
    let s = Studio::new(None);
    let (status, schema) = s.get("/api/schema").await;
    assert_eq!(status, StatusCode::OK);
    let schema: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert!(schema["settings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["key"] == "training.learning_rate"));
    let (status, v) = s
        .json(
            "POST",
            "/api/experiments/validate",
            serde_json::json!({"values": {"training.learning_rate": "fast", "training.epochs": "1000", "llm_backbone": "/no/such/model"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let keys: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"training.learning_rate"), "{v}");
    assert!(
        keys.contains(&"training.epochs"),
        "the studio's epoch limit: {v}"
    );
    assert!(keys.contains(&"llm_backbone"), "{v}");
    // Queueing the same form is refused with the same problems (422), nothing registered.
    let (status, e) = s
        .json(
            "POST",
            "/api/experiments",
            serde_json::json!({"values": {"training.learning_rate": "fast"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["errors"][0]["key"], "training.learning_rate");
    let (_, list) = s.get("/api/experiments").await;
    assert_eq!(list, "[]");
}

#[tokio::test]
async fn grids_show_their_runs_and_warnings_need_start_anyway() {
    let s = Studio::new(None);
    s.dataset("arith");
    let fixture = model_fixture("llama3_rope");
    let base = |extra: serde_json::Value| {
        let mut values = serde_json::json!({"llm_backbone": fixture, "experiment_name": "g", "grid_search": "true"});
        for (k, v) in extra.as_object().unwrap() {
            values[k] = v.clone();
        }
        serde_json::json!({"values": values, "dataset": "arith"})
    };
    let (status, v) = s
        .json("POST", "/api/experiments/validate", base(serde_json::json!({"training.learning_rate": "[0.01, 0.02]", "training.lora_r": "[2, 4]"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["errors"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["runs"].as_array().unwrap().len(), 4, "{v}");
    // A grid with nothing to vary warns; queueing it needs start_anyway (and this server cannot run it).
    let (_, v) = s
        .json(
            "POST",
            "/api/experiments/validate",
            base(serde_json::json!({})),
        )
        .await;
    assert_eq!(v["warnings"][0]["key"], "grid_search", "{v}");
    let (status, e) = s
        .json("POST", "/api/experiments", base(serde_json::json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["warnings"][0]["key"], "grid_search");
    let mut anyway = base(serde_json::json!({}));
    anyway["start_anyway"] = serde_json::json!(true);
    let (status, e) = s.json("POST", "/api/experiments", anyway).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{e}");
    let (_, list) = s.get("/api/experiments").await;
    assert_eq!(list, "[]", "nothing is queued that cannot run");
    // A YAML file becomes form values.
    let (status, values) = s
        .json(
            "POST",
            "/api/experiments/form-values",
            serde_json::json!({"yaml": "training:\n  learning_rate: 0.003\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(values["values"]["training.learning_rate"], "0.003");
    assert_eq!(values["ignored"], serde_json::json!([]));
    // An H2O LLM Studio file too, with its ignored keys and why.
    let (status, values) = s
        .json(
            "POST",
            "/api/experiments/form-values",
            serde_json::json!({"yaml": "environment:\n  use_deepspeed: false\ntraining:\n  lora_target_modules: 'q_proj,v_proj'\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{values}");
    assert_eq!(
        values["values"]["training.lora_target_modules"],
        "q_proj,v_proj"
    );
    assert_eq!(values["ignored"][0]["key"], "environment.use_deepspeed");
    assert!(
        values["ignored"][0]["message"]
            .as_str()
            .unwrap()
            .contains("DeepSpeed"),
        "{values}"
    );
    let (status, e) = s
        .json(
            "POST",
            "/api/experiments/form-values",
            serde_json::json!({"yaml": "training:\n  learnin_rate: 1\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        e.to_string().contains("learning_rate"),
        "the closest key is suggested: {e}"
    );
}

#[tokio::test]
async fn chat_streams_tokens_then_done_from_the_backbone_while_no_adapter_exists() {
    let s = Studio::new(None);
    s.dataset("arith");
    s.queue_on("talk", "arith", &model_fixture("llama3_rope"));
    let (status, _, body) = s
        .send(
            Request::post("/api/experiments/talk/chat")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    serde_json::json!({"messages": [{"role": "user", "content": "Hi <b>"}], "settings": {"max_new_tokens": 6}})
                        .to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = sse_events(&body);
    assert_eq!(events[0].0, "info");
    assert!(events[0].1.contains("no adapter yet"), "{events:?}");
    let tokens: String = events
        .iter()
        .filter(|(e, _)| *e == "token")
        .map(|(_, d)| serde_json::from_str::<String>(d).unwrap())
        .collect();
    let (last, done) = events.last().unwrap();
    assert_eq!(*last, "done", "{events:?}");
    let done: serde_json::Value = serde_json::from_str(done).unwrap();
    assert_eq!(done["text"], tokens, "the streamed pieces make the answer");
    assert!(done["tokens"].as_u64().unwrap() >= 1);
    // A conversation that does not end with the user is refused before the stream starts, readably.
    let (status, _, body) = s
        .send(
            Request::post("/api/experiments/talk/chat")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::json!({"messages": []}).to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("must end with a user message"), "{body}");
}

#[tokio::test]
async fn the_problem_type_decides_the_form_defaults_losses_and_metrics() {
    let s = Studio::new(None);
    let (status, causal) = s.get("/experiments/new").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        causal.contains("<option selected>TokenAveragedCrossEntropy</option>"),
        "causal LM's loss"
    );
    assert!(
        !causal.contains(">DPOLoss<"),
        "no preference loss offered to causal LM"
    );
    let (status, dpo) = s
        .get("/experiments/new?problem_type=text_dpo_modeling")
        .await;
    assert_eq!(status, StatusCode::OK, "{dpo}");
    assert!(dpo.contains("<option selected>text_dpo_modeling</option>"));
    assert!(dpo.contains("<option selected>DPOLoss</option>") && dpo.contains(">ORPOLoss<"));
    assert!(
        !dpo.contains(">TokenAveragedCrossEntropy<"),
        "the causal losses are not DPO's"
    );
    assert!(
        dpo.contains(r#"value="chosen_response" data-default="chosen_response""#),
        "DPO's answer column default"
    );
    let (status, body) = s.get("/experiments/new?problem_type=seq2seq").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("unknown problem type") && body.contains("seq2seq"),
        "{body}"
    );
    // The form's values are read against the type's defaults, whatever order they come in.
    let (status, v) = s
        .json(
            "POST",
            "/api/experiments/validate",
            serde_json::json!({"values": {"problem_type": "text_dpo_modeling", "dataset.train_dataframe": "/no/such.csv", "training.loss_function": "SampleAveragedCrossEntropy"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let loss_error = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "training.loss_function")
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        loss_error["message"]
            .as_str()
            .unwrap()
            .contains("not a loss of `problem_type: text_dpo_modeling`"),
        "{v}"
    );
}
