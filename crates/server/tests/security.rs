//! Forgery protection and the access token.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};

use crate::common::Studio;

#[tokio::test]
async fn forgery_protection_and_access_token() {
    // A page's session without its token cannot change anything; with it, it can.
    let s = Studio::new(None);
    let (cookie, token) = s.session().await;
    let body = serde_json::json!({"max_upload_mb": 5, "max_epochs": 3, "experiment_defaults": {}})
        .to_string();
    let put = |csrf: Option<&str>| {
        let mut r = Request::put("/api/settings")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, cookie.clone())
            .header(header::ORIGIN, "http://evil.example");
        if let Some(t) = csrf {
            r = r.header("X-CSRF-Token", t);
        }
        r.body(Body::from(body.clone())).unwrap()
    };
    let (status, _, text) = s.send(put(None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let (status, _, _) = s.send(put(Some("0123456789abcdef0123456789abcdef"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, text) = s.send(put(Some(&token))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(s.state.settings().max_epochs, 3);
    let (cookie_line, _) = (cookie, ());
    assert!(cookie_line.starts_with("ft_session="));

    // With a token: 401 for the API, the login page for pages, and the cookie after logging in.
    let s = Studio::new(Some("sesame"));
    let (status, body) = s.get("/api/experiments").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, headers, _) = s
        .send(Request::get("/experiments").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login?next=/experiments");
    let (status, _, _) = s
        .send(
            Request::get("/api/experiments")
                .header(header::AUTHORIZATION, "Bearer sesame")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let login = |token: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}&next=/datasets")))
            .unwrap()
    };
    let (status, _, _) = s.send(login("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, headers, _) = s.send(login("sesame")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/datasets");
    let set = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("ft_token="))
        .unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    let (status, _, _) = s
        .send(
            Request::get("/experiments")
                .header(header::COOKIE, set.split(';').next().unwrap())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Without a token, a bearer-less script request from a browser origin is refused.
    let s = Studio::new(Some("sesame"));
    let (status, _) = s.json("PUT", "/api/settings", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
