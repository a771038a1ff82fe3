//! GraphiQL, served from the binary: the page at `GET /graphql` (for a
//! browser) and its scripts and stylesheet under `/graphiql/`, so it works
//! on a machine without internet. The assets are vendored in
//! `query-api/graphiql/` (versions in its README).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// (file name, media type, content)
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../graphiql/react-dom.production.min.js"),
    ),
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../graphiql/graphiql.min.css"),
    ),
];

/// The IDE's page: every asset from this server, the endpoint and the
/// subscription endpoint relative to where the page was loaded.
pub(crate) fn page() -> Html<&'static str> {
    Html(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex">
  <title>Freshledger GraphiQL</title>
  <style>body { margin: 0; height: 100vh; overflow: hidden; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="/graphiql/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading…</div>
  <script src="/graphiql/react.production.min.js"></script>
  <script src="/graphiql/react-dom.production.min.js"></script>
  <script src="/graphiql/graphiql.min.js"></script>
  <script>
    const ws = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/graphql/ws";
    const fetcher = GraphiQL.createFetcher({ url: "/graphql", subscriptionUrl: ws });
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true })
    );
  </script>
</body>
</html>
"#,
    )
}

/// `GET /graphiql/{file}`: one of the vendored assets; they never change
/// within a build, so browsers may keep them for a day.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, media, bytes)) => (
            [
                (header::CONTENT_TYPE, *media),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "code": "route_not_found",
                "message": "no such GraphiQL asset",
                "details": null,
            })),
        )
            .into_response(),
    }
}
