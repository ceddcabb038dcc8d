//! The access layer's request path (pingora `ProxyHttp`): local answers, per-address limits, routing by
//! path prefix, backend choice with retries, forwarding headers, the access log and metrics.

use super::access::Access;
use super::config::HttpProxyConfig;
use super::upstream::Upstream;
use crate::Edge;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, Session};
use pingora::{Error, ErrorType, Result};
use pingora_limits::inflight::Guard;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The pingora side of the access layer: every request except upgrades (see `tunnel`).
pub struct AccessProxy(pub Arc<Access>);

pub struct RequestCtx {
    started: Instant,
    client: Option<IpAddr>,
    upstream: Option<Arc<Upstream>>,
    tried: Vec<SocketAddr>,
    rejected: Option<&'static str>,
    _inflight: Option<Guard>,
}

impl AccessProxy {
    fn edge(&self) -> &Edge {
        &self.0.edge
    }

    fn config(&self) -> &HttpProxyConfig {
        self.0.config()
    }

    fn retry_allowed(&self, ctx: &RequestCtx) -> bool {
        ctx.tried.len() <= self.config().retries
    }

    async fn reject(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
        reason: &'static str,
    ) -> Result<bool> {
        ctx.rejected = Some(reason);
        self.edge().metrics.proxy_rejected.with_label_values(&[reason]).inc();
        let body = super::access::error_body(status, reason);
        respond(session, status, "application/json", body.into()).await?;
        Ok(true)
    }
}

async fn respond(session: &mut Session, status: u16, content_type: &str, body: Bytes) -> Result<()> {
    let mut header = ResponseHeader::build(status, Some(2))?;
    header.insert_header("content-type", content_type)?;
    header.insert_header("content-length", body.len().to_string())?;
    session.write_response_header(Box::new(header), false).await?;
    session.write_response_body(Some(body), true).await
}

#[async_trait]
impl pingora::proxy::ProxyHttp for AccessProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            client: None,
            upstream: None,
            tried: Vec::new(),
            rejected: None,
            _inflight: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.client = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        if session.req_header().uri.path() == "/healthz" {
            let up = self.edge().link.is_up();
            let body = serde_json::json!({ "status": if up { "ok" } else { "core-unreachable" } }).to_string();
            respond(session, if up { 200 } else { 503 }, "application/json", body.into()).await?;
            return Ok(true);
        }
        match self.0.admit(ctx.client) {
            Ok(guard) => ctx._inflight = guard,
            Err(reason) => return self.reject(session, ctx, 429, reason).await,
        }
        if self.0.forbidden(session.req_header().uri.path()) {
            return self.reject(session, ctx, 403, "cluster_api").await;
        }
        ctx.upstream = self.0.route(session.req_header().uri.path());
        if ctx.upstream.is_none() {
            return self.reject(session, ctx, 404, "no_route").await;
        }
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let upstream = ctx.upstream.as_ref().ok_or_else(|| Error::new(ErrorType::InternalError))?;
        let Some(addr) = upstream.pick(&ctx.tried) else {
            self.edge().metrics.proxy_rejected.with_label_values(&["no_backend"]).inc();
            return Err(Error::explain(ErrorType::HTTPStatus(502), "no live backend"));
        };
        if !ctx.tried.is_empty() {
            self.edge().metrics.proxy_retries.inc();
        }
        ctx.tried.push(addr);
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_millis(self.config().connect_timeout_ms));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        // An upgraded WebSocket may sit quiet far longer than any request should take.
        if !session.is_upgrade_req() {
            peer.options.read_timeout = Some(Duration::from_millis(self.config().read_timeout_ms));
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(ip) = ctx.client {
            let ip = ip.to_string();
            let forwarded = match session.req_header().headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(earlier) => format!("{earlier}, {ip}"),
                None => ip.clone(),
            };
            request.insert_header("x-forwarded-for", forwarded)?;
            request.insert_header("x-real-ip", ip)?;
        }
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        request.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
        // Lets the core's `/route` put this edge, the one the client reached, first.
        request.insert_header("x-tern-edge", self.edge().config.edge_id.as_str())?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        _response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Draining: the client learns from this answer not to send on this connection again.
        if self.edge().draining() {
            session.set_keepalive(None);
        }
        if let (Some(upstream), Some(addr)) = (&ctx.upstream, ctx.tried.last()) {
            upstream.succeeded(*addr);
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(upstream), Some(addr)) = (&ctx.upstream, ctx.tried.last()) {
            upstream.failed(*addr);
        }
        // Nothing reached the backend, so any method may go to another one.
        e.set_retry(self.retry_allowed(ctx));
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("backend {peer}"));
        if let (Some(upstream), Some(addr)) = (&ctx.upstream, ctx.tried.last()) {
            upstream.failed(*addr);
        }
        // The backend may have acted on the request: only a repeatable one, whose body we still hold
        // and whose answer has not started, may be sent again.
        let retry = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
            && session.response_written().is_none()
            && self.retry_allowed(ctx);
        e.set_retry(retry);
        e
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if let (None, Some(upstream)) = (ctx.rejected, &ctx.upstream) {
            upstream.record(status, ctx.started.elapsed());
        }
        let upstream = ctx.upstream.as_ref().map(|u| u.name.as_str());
        if self.config().access_log {
            let req = session.req_header();
            let uri = req.uri.to_string();
            let error = e.map(|e| e.to_string());
            self.0.log(
                ctx.client,
                req.method.as_str(),
                &uri,
                status,
                upstream,
                &ctx.tried,
                ctx.started,
                error.as_deref(),
            );
        }
    }
}
