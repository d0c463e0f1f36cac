//! The HTTP answers of the monitoring port (`--metrics`, and `--stats` with `--stats-http`):
//! `/metrics` (Prometheus), `/health` (the master's loop runs), `/ready` (accepting: false while
//! shutting down or while no worker accepts), and on the stats port anything else gets the stats
//! JSON, as uwsgitop asks for `/`.

/// Which document a request path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/metrics`: the Prometheus text exposition.
    Metrics,
    /// `/health` or `/healthz`: 200 while the master's loop runs.
    Health,
    /// `/ready` or `/readyz`: 200 while some worker accepts, 503 otherwise.
    Ready,
    /// The stats JSON (the stats port's default).
    Stats,
    /// Any other path on the `--metrics` port: 404.
    NotFound,
}

/// The route of a request head (`GET /path HTTP/1.1\r\n...`); `default` for `/` and unknown paths.
pub fn route(head: &[u8], default: Route) -> Route {
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or(b"");
    let mut parts = line.split(|&b| b == b' ');
    let _method = parts.next();
    let target = parts.next().unwrap_or(b"/");
    let path = target.split(|&b| b == b'?').next().unwrap_or(b"/");
    match path {
        b"/metrics" => Route::Metrics,
        b"/health" | b"/healthz" => Route::Health,
        b"/ready" | b"/readyz" => Route::Ready,
        _ => default,
    }
}

/// A complete HTTP/1.0 response (the connection closes after it).
pub fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.0 {status}\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The `/health` or `/ready` answer.
pub fn probe(ok: bool, what: &str) -> String {
    if ok {
        response("200 OK", "text/plain", &format!("{what}\n"))
    } else {
        response(
            "503 Service Unavailable",
            "text/plain",
            &format!("not {what}\n"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\n", Route::Stats),
            Route::Metrics
        );
        assert_eq!(
            route(b"GET /ready?x=1 HTTP/1.0\r\n\r\n", Route::Stats),
            Route::Ready
        );
        assert_eq!(
            route(b"GET /health HTTP/1.1\r\n", Route::NotFound),
            Route::Health
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n", Route::Stats), Route::Stats);
        assert_eq!(route(b"", Route::NotFound), Route::NotFound);
    }
}
