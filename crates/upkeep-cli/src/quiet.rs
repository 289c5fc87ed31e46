//! kube-client logs every failed request at ERROR on its own ("failed with
//! error client error (Connect)"); the upkeep-kube error a tool reports
//! already says the same with the operation and the server. While a tool
//! talks to the cluster, those two levels from kube's crates are dropped,
//! so a failure stays one line on stderr; their debug and trace events
//! still reach `-v`/`-vv`.

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// Runs `f` with the current subscriber minus kube's warnings and errors.
pub fn without_kube_errors<T>(f: impl FnOnce() -> T) -> T {
    let inner = tracing::dispatcher::get_default(Dispatch::clone);
    tracing::dispatcher::with_default(&Dispatch::new(WithoutKubeErrors(inner)), f)
}

struct WithoutKubeErrors(Dispatch);

fn dropped(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("kube") && *meta.level() <= Level::WARN
}

impl Subscriber for WithoutKubeErrors {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if dropped(meta) {
            // Not `never`: interest is cached per callsite for every
            // subscriber, and outside this scope the event is someone's.
            Interest::sometimes()
        } else {
            self.0.register_callsite(meta)
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        !dropped(meta) && self.0.enabled(meta)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.0.new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        self.0.record(span, values)
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        self.0.record_follows_from(span, follows)
    }

    fn event(&self, event: &Event<'_>) {
        if !dropped(event.metadata()) {
            self.0.event(event)
        }
    }

    fn enter(&self, span: &Id) {
        self.0.enter(span)
    }

    fn exit(&self, span: &Id) {
        self.0.exit(span)
    }

    fn clone_span(&self, id: &Id) -> Id {
        self.0.clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        self.0.try_close(id)
    }
}
