//! A cap on response bodies, so a broken or hostile server cannot make a tool buffer without
//! bound. Watches are exempt: they are streams read one event at a time, bounded by time.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body_util::{Either, Limited};
use tower::{Layer, Service};

/// Default cap: one list page of [`crate::DEFAULT_PAGE_SIZE`] large objects (CRDs with
/// kubectl's last-applied annotation run to a MiB or two) fits with room to spare.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// What `http_body_util::Limited` reports; matched to turn it into a clear error.
pub(crate) const LIMIT_MESSAGE: &str = "length limit exceeded";

#[derive(Debug, Clone)]
pub(crate) struct LimitLayer {
    pub(crate) max: usize,
}

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Limit<S> {
        Limit {
            inner,
            max: self.max,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Limit<S> {
    inner: S,
    max: usize,
}

fn is_watch<B>(req: &Request<B>) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqB, ResB> Service<Request<ReqB>> for Limit<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = Response<Either<Limited<ResB>, ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let watch = is_watch(&req);
        let max = self.max;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|body| {
                if watch {
                    Either::Right(body)
                } else {
                    Either::Left(Limited::new(body, max))
                }
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_watches_are_exempt() {
        let req = |uri: &str| Request::get(uri).body(()).unwrap();
        assert!(is_watch(&req(
            "/api/v1/configmaps?fieldSelector=x&watch=true"
        )));
        assert!(is_watch(&req("/api/v1/configmaps?watch=1")));
        assert!(!is_watch(&req("/api/v1/configmaps?limit=500")));
        assert!(!is_watch(&req("/api/v1/configmaps?watchful=true")));
    }
}
