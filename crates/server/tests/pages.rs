//! Every page renders; user text is escaped; errors read as messages.

use axum::http::StatusCode;

use crate::common::Studio;

#[tokio::test]
async fn every_page_renders_on_an_empty_home() {
    let s = Studio::new(None);
    for page in [
        "/",
        "/backbones",
        "/datasets",
        "/datasets/new",
        "/experiments",
        "/experiments/new",
        "/settings",
    ] {
        let (status, body) = s.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {body}");
        assert!(body.contains("<main id=\"main\">"), "{page}");
    }
    let (status, body) = s.get("/api/system").await;
    assert_eq!(status, StatusCode::OK);
    let sys: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(sys["cpus"].as_u64().unwrap() >= 1 && sys["memory_total"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn user_text_is_escaped_in_pages() {
    let s = Studio::new(None);
    s.dataset("marked");
    let (status, body) = s.get("/datasets/marked").await;
    assert_eq!(status, StatusCode::OK, "{body} {}", s.log());
    assert!(!body.contains("<script>alert"), "raw markup in the page");
    assert!(
        body.contains("&lt;script&gt;alert("),
        "the row is shown as text"
    );
    // A path that holds markup comes back in the 404 page as text.
    let (status, body) = s.get("/no/%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!body.contains("<script>alert") && body.contains("&lt;script&gt;"));
    // And in the dataset list, the API returns the row verbatim (JSON, not HTML).
    let (_, rows) = s.get("/api/datasets/marked/rows?n=1").await;
    assert!(rows.contains("<script>alert('x')</script>"));
}

#[tokio::test]
async fn library_errors_are_readable_json_and_unknown_routes_say_so() {
    let s = Studio::new(None);
    let (status, body) = s.get("/api/experiments/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("no experiment named `nothing`"));
    let (status, body) = s.get("/api/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("docs/api.md"));
    let (status, body) = s.get("/experiments/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("no experiment named"),
        "a page, not a stack trace: {body}"
    );
    let (status, icon) = s.get("/favicon.ico").await;
    assert_eq!(status, StatusCode::OK);
    assert!(icon.starts_with("<svg"), "a favicon, no 404 on every page");
    // The studio speaks of the studio: no CLI advice, links to its own pages instead.
    assert!(
        !body.contains("ferrotune experiment") && body.contains(r#"href="/experiments/new""#),
        "{body}"
    );
    let (status, body) = s.get("/compare?names=a").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("at least two experiments"));
}
