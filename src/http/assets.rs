//! The dashboard's static files, embedded in the binary (no build step). uPlot 1.6.32
//! (MIT, vendored from the npm registry: `npm pack uplot@1.6.32`) draws the latency chart.

pub(crate) const INDEX_HTML: &str = include_str!("assets/index.html");

/// `(content type, body)` of `/assets/{name}`.
pub(crate) fn get(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "app.js" => (
            "text/javascript; charset=utf-8",
            include_str!("assets/app.js"),
        ),
        "style.css" => ("text/css; charset=utf-8", include_str!("assets/style.css")),
        "uPlot.iife.min.js" => (
            "text/javascript; charset=utf-8",
            include_str!("assets/vendor/uPlot.iife.min.js"),
        ),
        "uPlot.min.css" => (
            "text/css; charset=utf-8",
            include_str!("assets/vendor/uPlot.min.css"),
        ),
        _ => return None,
    })
}
