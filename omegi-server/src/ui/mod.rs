//! The web UI that `omegi serve` serves at `/`: a single-page app in plain
//! JavaScript over the REST API, built into the binary.
//!
//! Screens, by hash route: the dashboard (`#/`), issues (`#/issues`), an
//! issue with its flow (`#/issue/<project>/<fingerprint>`), notes
//! (`#/notes`, `#/note/<id>`, the editor at `#/notes/new`), the note graph
//! (`#/graph`) and search (`#/search`). The user signs in with an API
//! token, kept in the browser's `localStorage` and sent as
//! `Authorization: Bearer`; the alert stream takes it as `?token=`.
//!
//! [`router`] answers `/` and `/assets/*`; merge it into the API router.
//! The assets are embedded with `include_str!`: no file is read at run time.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_str!("assets/index.html"),
    content_type: "text/html; charset=utf-8",
};

/// The files under `/assets/`: the app, and the graph layout's d3-force
/// with its dependencies, vendored unchanged from npm with their license
/// (`assets/vendor/LICENSE-d3.txt`).
const ASSETS: &[(&str, Asset)] = &[
    vendored(
        "d3-dispatch.min.js",
        include_str!("assets/vendor/d3-dispatch.min.js"),
    ),
    vendored(
        "d3-quadtree.min.js",
        include_str!("assets/vendor/d3-quadtree.min.js"),
    ),
    vendored(
        "d3-timer.min.js",
        include_str!("assets/vendor/d3-timer.min.js"),
    ),
    vendored(
        "d3-force.min.js",
        include_str!("assets/vendor/d3-force.min.js"),
    ),
    (
        "LICENSE-d3.txt",
        Asset {
            body: include_str!("assets/vendor/LICENSE-d3.txt"),
            content_type: "text/plain; charset=utf-8",
        },
    ),
    (
        "app.js",
        Asset {
            body: include_str!("assets/app.js"),
            content_type: "text/javascript; charset=utf-8",
        },
    ),
    (
        "graph.js",
        Asset {
            body: include_str!("assets/graph.js"),
            content_type: "text/javascript; charset=utf-8",
        },
    ),
    (
        "app.css",
        Asset {
            body: include_str!("assets/app.css"),
            content_type: "text/css; charset=utf-8",
        },
    ),
];

const fn vendored(name: &'static str, body: &'static str) -> (&'static str, Asset) {
    (
        name,
        Asset {
            body,
            content_type: "text/javascript; charset=utf-8",
        },
    )
}

/// What the page may load: its own scripts, styles and API only (images
/// also from `blob:`: note attachments, fetched with the caller's token).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The UI's routes: `/` and `/assets/{file}`. They need no state and no
/// token (the page itself holds no data; the API checks every request).
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{file}", get(asset))
}

async fn index() -> Response {
    serve(&INDEX)
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _)| *name == file) {
        Some((_, asset)) => serve(asset),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

fn serve(asset: &Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Small files, revalidated each time: a new binary shows its new UI.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
