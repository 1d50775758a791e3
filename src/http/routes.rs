//! The endpoints.

use actix_web::http::header;
use actix_web::{HttpResponse, Responder, web};

use super::assets;
use super::live::State;
use super::prometheus;
use super::sse;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/assets/{name}", web::get().to(asset))
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics_text))
        .route("/api/topology", web::get().to(topology))
        .route("/api/metrics", web::get().to(metrics))
        .route("/api/topk", web::get().to(topk))
        .route("/api/history", web::get().to(history))
        .route("/api/events", web::get().to(sse::events));
}

async fn index() -> impl Responder {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(assets::INDEX_HTML)
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    match assets::get(&name) {
        Some((mime, body)) => HttpResponse::Ok()
            .content_type(mime)
            .insert_header((header::CACHE_CONTROL, "max-age=3600"))
            .body(body),
        None => HttpResponse::NotFound().body("not found\n"),
    }
}

async fn healthz() -> impl Responder {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

async fn metrics_text(state: web::Data<State>) -> impl Responder {
    let mut body = prometheus::render(
        &state.graph.name,
        state.started.elapsed().as_secs_f64(),
        &state.registry.tasks(),
        &state.capacity(),
    );
    prometheus::bad_requests(&mut body, super::bad_requests());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

async fn topology(state: web::Data<State>) -> impl Responder {
    web::Json(state.graph.to_json())
}

async fn metrics(state: web::Data<State>) -> impl Responder {
    web::Json(state.metrics())
}

async fn topk(state: web::Data<State>) -> impl Responder {
    web::Json(state.topk())
}

async fn history(state: web::Data<State>) -> impl Responder {
    web::Json(state.history())
}
