//! Access and forgery protection.
//!
//! - **Token**: when the server has one (required off loopback), every request but the login page and the static
//!   files must carry it, as the `ft_token` cookie (set by the login page) or an `Authorization: Bearer` header;
//!   else 401 (API) or a redirect to `/login` (pages).
//! - **Forgery**: every browser gets a random `ft_session` cookie (`SameSite=Strict`, `HttpOnly`); pages carry the
//!   session's token (derived from it and the server's secret) and our script sends it back as `X-CSRF-Token` on
//!   each state-changing request. Such a request passes with that header, or with a valid bearer token, or — on a
//!   server without a token — from a client that sends neither cookies nor an `Origin` (a script, not a page).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::error::ApiError;
use crate::extract::{AppForm, AppQuery};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "ft_session";
pub const TOKEN_COOKIE: &str = "ft_token";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// `n` random bytes as hex.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Equal without an early exit (no timing hint about how much of a guess was right).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/")
}

/// The session id a request carries, or a new one (with the cookie to set).
struct Session {
    id: String,
    is_new: bool,
}

/// Checks the token and the forgery protection, then sets the session cookie on first visit.
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let path = request.uri().path().to_string();
    let is_api = path.starts_with("/api/");
    let bearer_ok = bearer(&headers).is_some_and(|given| state.is_token(given));
    if path == "/v1" || path.starts_with("/v1/") {
        return guard_v1(&state, &headers, bearer_ok, request, next).await;
    }
    if state.has_token() {
        let cookie_ok = cookie(&headers, TOKEN_COOKIE).is_some_and(|c| state.is_token(c));
        if !cookie_ok && !bearer_ok && !is_public(&path) {
            if is_api {
                return ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "this server needs its access token: send `Authorization: Bearer TOKEN` or log in at /login",
                )
                .into_response();
            }
            let next = urlencode(&path);
            return Redirect::to(&format!("/login?next={next}")).into_response();
        }
    }
    let session = match cookie(&headers, SESSION_COOKIE) {
        Some(id) if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) => Session {
            id: id.to_string(),
            is_new: false,
        },
        _ => Session {
            id: random_hex(16),
            is_new: true,
        },
    };
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if unsafe_method && path != "/login" {
        let header_ok = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|given| !session.is_new && same(&state.csrf_token(&session.id), given));
        let script = !state.has_token()
            && !headers.contains_key(header::COOKIE)
            && !headers.contains_key(header::ORIGIN);
        if !(header_ok || bearer_ok || script) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "this request lacks the page's forgery-protection token (X-CSRF-Token); reload the page and try again",
            )
            .into_response();
        }
    }
    let csrf = state.csrf_token(&session.id);
    request.extensions_mut().insert(Csrf(csrf));
    let mut response = next.run(request).await;
    if session.is_new {
        let value = format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            session.id
        );
        if let Ok(v) = value.parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// `/v1` is for programs (OpenAI clients), not pages: with a token only the bearer header is accepted (no cookie,
/// so no forgery-protection token is needed), without one (loopback) a cross-site browser request — one with an
/// `Origin` — is refused; no session cookie is set.
async fn guard_v1(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    bearer_ok: bool,
    request: Request,
    next: Next,
) -> Response {
    use crate::routes::openai::OpenAiError;
    if state.has_token() && !bearer_ok {
        return OpenAiError::unauthorized().into_response();
    }
    if !state.has_token() && headers.contains_key(header::ORIGIN) && request.method() != Method::GET
    {
        return OpenAiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "cross-site requests from a web page are refused on a server without a token: call /v1 from a program, \
             or start `ferrotune serve --token …` and send `Authorization: Bearer …`",
        )
        .into_response();
    }
    next.run(request).await
}

/// The request's forgery-protection token, for the page's `<meta name="csrf-token">`.
#[derive(Debug, Clone)]
pub struct Csrf(pub String);

/// Percent-encodes a path for a query parameter.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes (invalid ones stay as they are; invalid UTF-8 becomes U+FFFD).
pub fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|&b| hex(b)),
            bytes.get(i + 2).and_then(|&b| hex(b)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The login form's submission.
#[derive(serde::Deserialize)]
pub struct Login {
    pub token: String,
    #[serde(default)]
    pub next: String,
}

/// `POST /login`: sets the token cookie when the token is right.
pub async fn login_submit(
    State(state): State<AppState>,
    AppForm(form): AppForm<Login>,
) -> Response {
    if !state.has_token() {
        return Redirect::to("/").into_response();
    }
    let token = form.token.trim();
    if !state.is_token(token) {
        let html = crate::views::render(
            "login.html",
            minijinja::context! { title => "Log in", error => "That token is not this server's.", next => form.next },
        )
        .unwrap_or_default();
        return (StatusCode::UNAUTHORIZED, axum::response::Html(html)).into_response();
    }
    // Only local paths: no open redirect.
    let next = if form.next.starts_with('/') && !form.next.starts_with("//") {
        form.next
    } else {
        "/".into()
    };
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    let mut response = Redirect::to(&next).into_response();
    if let Ok(v) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `GET /login`.
pub async fn login_page(
    AppQuery(q): AppQuery<std::collections::HashMap<String, String>>,
) -> Response {
    let next = q.get("next").cloned().unwrap_or_default();
    match crate::views::render(
        "login.html",
        minijinja::context! { title => "Log in", next => next },
    ) {
        Ok(html) => axum::response::Html(html).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_tokens_and_url_escapes() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; ft_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
        assert!(same("secret", "secret") && !same("secret", "secreT") && !same("s", "secret"));
        assert_eq!(urlencode("/a b&c"), "/a%20b%26c");
        assert_eq!(urldecode("/x%3Cy%3E%zz"), "/x<y>%zz");
        assert_eq!(random_hex(8).len(), 16);
    }
}
