//! The studio over loopback (`ferrotune serve --port 0 --no-demo` on the lab's home), spoken to in raw HTTP:
//! every refusal under `/api/` is a 4xx in the documented `{"error": …}` shape and leaves the home as it was.

use ferrotune_test_support::model_fixture;

use crate::catalogue::{Case, Check};
use crate::lab::{s, Lab, Reply, Snapshot};

pub const CASES: &[Case] = &[
    Case {
        id: "server.traversal-in-dataset-name",
        guards: "`GET /api/datasets/..%2F..%2Fetc` is a JSON 400 (invalid name, like DELETE), an unknown name a 404 pointing at the Datasets page, never a file outside the home",
        check: Check::Run(traversal_in_dataset_name),
    },
    Case {
        id: "server.traversal-in-experiment-name",
        guards: "`GET /api/experiments/..%2F..%2Fetc/logs` is a JSON 4xx, never a file outside the home",
        check: Check::Run(traversal_in_experiment_name),
    },
    Case {
        id: "server.traversal-in-delete",
        guards: "`DELETE /api/datasets/..%2F..%2Fetc` is refused as an invalid name and deletes nothing",
        check: Check::Run(traversal_in_delete),
    },
    Case {
        id: "server.traversal-in-backbone-name",
        guards: "`POST /api/backbones` named `../../etc` is a 400 naming the name; nothing is registered",
        check: Check::Run(traversal_in_backbone_name),
    },
    Case {
        id: "server.traversal-in-static",
        guards: "`/static/../../Cargo.toml` (raw and percent-encoded) does not serve a file outside the static assets",
        check: Check::Run(traversal_in_static),
    },
    Case {
        id: "server.unknown-route",
        guards: "an unknown `/api/` route is a JSON 404 naming the method and path",
        check: Check::Run(unknown_route),
    },
    Case {
        id: "server.unknown-method",
        guards: "a route asked with a method it lacks is a JSON 405 with the methods it has",
        check: Check::Run(unknown_method),
    },
    Case {
        id: "server.malformed-json",
        guards: "a body that is not JSON is a JSON 400 with where it breaks",
        check: Check::Run(malformed_json),
    },
    Case {
        id: "server.wrong-field-type",
        guards: "a field of the wrong type is a JSON 422 naming the field",
        check: Check::Run(wrong_field_type),
    },
    Case {
        id: "server.wrong-content-type",
        guards: "a JSON body sent as `text/plain` is a JSON 415 naming the header to send",
        check: Check::Run(wrong_content_type),
    },
    Case {
        id: "server.undecodable-path",
        guards: "a path parameter that is not UTF-8 once decoded (`%FF`) is a JSON 400",
        check: Check::Run(undecodable_path),
    },
    Case {
        id: "server.post-without-csrf",
        guards: "a POST with a session cookie but no forgery-protection token is a JSON 403 and changes nothing",
        check: Check::Run(post_without_csrf),
    },
    Case {
        id: "server.post-with-a-forged-csrf",
        guards: "a POST with a session cookie and a made-up token is a JSON 403",
        check: Check::Run(post_with_a_forged_csrf),
    },
    Case {
        id: "server.upload-over-the-limit",
        guards: "an upload over the studio's `max_upload_mb` is a JSON 413 naming the limit; nothing is kept",
        check: Check::Run(upload_over_the_limit),
    },
    Case {
        id: "server.upload-not-multipart",
        guards: "an upload that is not `multipart/form-data` is a JSON 400 saying what to send",
        check: Check::Run(upload_not_multipart),
    },
    Case {
        id: "server.import-a-ragged-csv",
        guards: "`POST /api/datasets` of a ragged CSV is a 4xx naming the file and line; nothing is registered",
        check: Check::Run(import_a_ragged_csv),
    },
    Case {
        id: "server.register-an-unsupported-backbone",
        guards: "`POST /api/backbones` of a GPT-2 folder is a 4xx naming the architecture; nothing is registered",
        check: Check::Run(register_an_unsupported_backbone),
    },
    Case {
        id: "server.settings-that-do-not-validate",
        guards: "`POST /api/experiments` with `learning_rate: 0` is a 422 naming the setting; nothing is queued",
        check: Check::Run(settings_that_do_not_validate),
    },
    Case {
        id: "server.any-host-without-token",
        guards: "`serve --host 0.0.0.0` without a token refuses to start, naming `--token`",
        check: Check::Run(any_host_without_token),
    },
    Case {
        id: "server.port-taken",
        guards: "`serve --port` of a port in use names the address",
        check: Check::Run(port_taken),
    },
    Case {
        id: "server.access-token",
        guards: "with `--token`, the API answers 401 without it and the pages ask for it",
        check: Check::Elsewhere("crates/server/tests/security.rs::forgery_protection_and_access_token"),
    },
    Case {
        id: "server.internal-error",
        guards: "an internal failure is a 500 with a request id only; the details are in `server.log`",
        check: Check::Elsewhere(
            "crates/server/tests/errors.rs::a_broken_home_is_a_500_with_a_request_id_and_the_details_in_the_log",
        ),
    },
];

/// Sends a request and checks it left the home as it was.
fn unchanged(lab: &Lab, send: impl FnOnce() -> Reply) -> Reply {
    lab.server();
    let before = Snapshot::of(&lab.home());
    let reply = send();
    before.assert_same(&Snapshot::of(&lab.home()), &reply_line(&reply));
    reply
}

fn reply_line(reply: &Reply) -> String {
    format!("the request answered {} {}", reply.status, reply.body)
}

fn traversal_in_dataset_name(lab: &Lab) {
    let r = unchanged(lab, || {
        lab.server().json("GET", "/api/datasets/..%2F..%2Fetc", "")
    });
    r.is_api_error(400, &["invalid dataset name `../../etc`", "help:"]);
    // A plain unknown name is a 404 whose help points at the studio's page, not at a CLI command.
    let r = unchanged(lab, || {
        lab.server().json("GET", "/api/datasets/no-such-set", "")
    });
    r.is_api_error(404, &["no dataset named `no-such-set`", "/datasets"]);
    assert!(!r.body.contains("ferrotune dataset"), "{}", r.body);
    let r = lab
        .server()
        .json("GET", "/api/datasets/..%2F..%2Fetc%2Fpasswd/rows", "");
    assert!((400..500).contains(&r.status), "{}", reply_line(&r));
    assert!(!r.body.contains("root:"), "{}", r.body);
}

fn traversal_in_experiment_name(lab: &Lab) {
    for path in [
        "/api/experiments/..%2F..%2Fetc/logs",
        "/api/experiments/..%2F..%2Fetc/config",
        "/api/experiments/..%2F..%2Fetc/download/config",
    ] {
        let r = unchanged(lab, || lab.server().json("GET", path, ""));
        assert!((400..500).contains(&r.status), "{path}: {}", reply_line(&r));
        r.is_api_error(r.status, &["../../etc"]);
    }
}

fn traversal_in_delete(lab: &Lab) {
    let r = unchanged(lab, || {
        lab.server().json("DELETE", "/api/datasets/..%2Fgood", "")
    });
    r.is_api_error(400, &["invalid dataset name `../good`", "help:"]);
}

fn traversal_in_backbone_name(lab: &Lab) {
    let body = serde_json::json!({"name": "../../etc", "path": s(&model_fixture("llama3_rope"))});
    let r = unchanged(lab, || {
        lab.server()
            .json("POST", "/api/backbones", &body.to_string())
    });
    r.is_api_error(400, &["invalid backbone name `../../etc`", "help:"]);
}

fn traversal_in_static(lab: &Lab) {
    for path in [
        "/static/../../Cargo.toml",
        "/static/..%2F..%2FCargo.toml",
        "/static/%2e%2e/%2e%2e/Cargo.toml",
    ] {
        let r = unchanged(lab, || lab.server().request("GET", path, &[], b""));
        assert!((400..500).contains(&r.status), "{path}: {}", reply_line(&r));
        assert!(
            !r.body.contains("[package]") && !r.body.contains("[workspace]"),
            "{path}: {}",
            r.body
        );
    }
}

fn unknown_route(lab: &Lab) {
    let r = unchanged(lab, || lab.server().json("GET", "/api/no-such-thing", ""));
    r.is_api_error(404, &["`GET /api/no-such-thing`", "help:"]);
}

fn unknown_method(lab: &Lab) {
    let r = unchanged(lab, || lab.server().json("DELETE", "/api/settings", ""));
    r.is_api_error(405, &["DELETE /api/settings", "help:"]);
    let allow = r.header("allow").unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("PUT"), "{allow}");
}

fn malformed_json(lab: &Lab) {
    let r = unchanged(lab, || {
        lab.server()
            .json("PUT", "/api/settings", "{\"max_upload_mb\": 5,")
    });
    r.is_api_error(400, &["not valid JSON", "line 1", "help:"]);
}

fn wrong_field_type(lab: &Lab) {
    let r = unchanged(lab, || {
        lab.server()
            .json("PUT", "/api/settings", r#"{"max_epochs": "ten"}"#)
    });
    r.is_api_error(422, &["max_epochs", "invalid type", "help:"]);
}

fn wrong_content_type(lab: &Lab) {
    let body = br#"{"name": "x", "path": "/tmp"}"#;
    let r = unchanged(lab, || {
        lab.server().request(
            "POST",
            "/api/backbones",
            &[("Content-Type", "text/plain")],
            body,
        )
    });
    r.is_api_error(415, &["Content-Type: application/json"]);
}

fn undecodable_path(lab: &Lab) {
    let r = unchanged(lab, || lab.server().json("GET", "/api/datasets/%FF", ""));
    r.is_api_error(400, &["the path does not fit"]);
}

const COOKIE: (&str, &str) = ("Cookie", "ft_session=0123456789abcdef0123456789abcdef");

fn post_without_csrf(lab: &Lab) {
    let body = br#"{"max_upload_mb": 1, "max_epochs": 1, "experiment_defaults": {}}"#;
    let r = unchanged(lab, || {
        lab.server().request(
            "PUT",
            "/api/settings",
            &[("Content-Type", "application/json"), COOKIE],
            body,
        )
    });
    r.is_api_error(403, &["X-CSRF-Token", "reload the page"]);
    let body = br#"{"name": "x", "path": "/tmp"}"#;
    let r = unchanged(lab, || {
        lab.server().request(
            "POST",
            "/api/backbones",
            &[
                ("Content-Type", "application/json"),
                COOKIE,
                ("Origin", "http://evil.example"),
            ],
            body,
        )
    });
    r.is_api_error(403, &["X-CSRF-Token"]);
}

fn post_with_a_forged_csrf(lab: &Lab) {
    let r = unchanged(lab, || {
        lab.server().request(
            "DELETE",
            "/api/datasets/good",
            &[COOKIE, ("X-CSRF-Token", "0123456789abcdef0123456789abcdef")],
            b"",
        )
    });
    r.is_api_error(403, &["X-CSRF-Token"]);
}

/// A `multipart/form-data` body with one file field.
fn multipart(file_name: &str, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = "ferrotune-hostile-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn upload_over_the_limit(lab: &Lab) {
    let server = lab.server();
    let limit = server.json(
        "PUT",
        "/api/settings",
        r#"{"max_upload_mb": 1, "max_epochs": 100, "experiment_defaults": {}}"#,
    );
    assert_eq!(limit.status, 200, "{}", limit.body);
    let mut csv = b"prompt,answer\n".to_vec();
    while csv.len() < 2 << 20 {
        csv.extend_from_slice(b"a question that goes on,an answer that goes on\n");
    }
    let (content_type, body) = multipart("big.csv", &csv);
    let r = unchanged(lab, || {
        server.request(
            "POST",
            "/api/uploads",
            &[("Content-Type", &content_type)],
            &body,
        )
    });
    r.is_api_error(413, &["`big.csv`", "upload limit of 1 MiB", "help:"]);
    let uploads = lab.home().join("uploads");
    let kept: Vec<_> = std::fs::read_dir(&uploads)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        kept.iter()
            .all(|p| std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())),
        "uploads kept: {kept:?}"
    );
}

fn upload_not_multipart(lab: &Lab) {
    let r = unchanged(lab, || lab.server().json("POST", "/api/uploads", "{}"));
    r.is_api_error(400, &["multipart/form-data"]);
}

fn import_a_ragged_csv(lab: &Lab) {
    let file = lab.file("server-ragged.csv", "prompt,answer\nq,a\nq,a,b\n");
    let body = serde_json::json!({"name": "ragged", "path": file});
    let r = unchanged(lab, || {
        lab.server()
            .json("POST", "/api/datasets", &body.to_string())
    });
    assert!((400..500).contains(&r.status), "{}", reply_line(&r));
    r.is_api_error(r.status, &["server-ragged.csv", "line 3", "help:"]);
}

fn register_an_unsupported_backbone(lab: &Lab) {
    let dir = lab.model_copy("llama3_rope", "server-gpt2");
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    std::fs::write(&path, cfg.to_string()).unwrap();
    let body = serde_json::json!({"name": "gpt2", "path": s(&dir)});
    let r = unchanged(lab, || {
        lab.server()
            .json("POST", "/api/backbones", &body.to_string())
    });
    assert!((400..500).contains(&r.status), "{}", reply_line(&r));
    r.is_api_error(r.status, &["`GPT2LMHeadModel`", "help:"]);
}

fn settings_that_do_not_validate(lab: &Lab) {
    let body = serde_json::json!({
        "values": {"training.learning_rate": "0", "llm_backbone": s(&model_fixture("llama3_rope"))},
        "dataset": "good",
    });
    let r = unchanged(lab, || {
        lab.server()
            .json("POST", "/api/experiments", &body.to_string())
    });
    assert_eq!(r.status, 422, "{}", reply_line(&r));
    let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let errors = json["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.iter().any(|e| e["key"] == "training.learning_rate"
            && e["message"].as_str().is_some_and(|m| m.contains("> 0"))),
        "{json}"
    );
}

fn any_host_without_token(lab: &Lab) {
    lab.refuses(
        &["serve", "--host", "0.0.0.0", "--port", "0", "--no-demo"],
        &["needs an access token", "--token"],
    );
}

fn port_taken(lab: &Lab) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    lab.refuses(
        &["serve", "--port", &port, "--no-demo"],
        &[&format!("cannot listen on `127.0.0.1:{port}`")],
    );
}
