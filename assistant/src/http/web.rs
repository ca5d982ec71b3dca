//! The web chat widget (`assistant/web/`), compiled into the binary: the demo page at `/` and
//! the embeddable `/widget.js`.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::AppState;

const INDEX: &str = include_str!("../../web/index.html");
const WIDGET: &str = include_str!("../../web/widget.js");

pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
            }),
        )
        .route(
            "/widget.js",
            get(|| async {
                (
                    [
                        (
                            header::CONTENT_TYPE,
                            "application/javascript; charset=utf-8",
                        ),
                        // Any site may embed the widget; the API it calls is the same origin.
                        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                        (header::CACHE_CONTROL, "public, max-age=300"),
                    ],
                    WIDGET,
                )
                    .into_response()
            }),
        )
}
