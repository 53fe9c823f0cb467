//! The one future a connection waits on for "stop serving this client": server shutdown
//! or CLIENT KILL (also an exceeded output-buffer limit).
//!
//! It is built once per connection and polled by reference in every `select!` of the
//! connection loop, behind a [`Gate`] so that a poll is one atomic load until it fires.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::watch;

use super::client::ClientHandle;
use super::gate::Gate;

/// Resolves once the server shuts down or the client is killed; stays resolved.
pub struct Closing {
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
    gate: Gate,
}

impl Closing {
    /// Watches `stop` (server shutdown) and `handle.kill`.
    pub fn new(mut stop: watch::Receiver<bool>, handle: Arc<ClientHandle>) -> Self {
        let inner = Box::pin(async move {
            tokio::select! {
                biased;
                _ = handle.kill.notified() => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
        Closing {
            inner,
            done: false,
            gate: Gate::default(),
        }
    }
}

impl Future for Closing {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(());
        }
        let inner = &mut this.inner;
        match this.gate.poll(cx, |icx| inner.as_mut().poll(icx)) {
            Poll::Ready(()) => {
                this.done = true;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn handle() -> Arc<ClientHandle> {
        let addr = "127.0.0.1:1".parse().expect("literal address");
        crate::server::client::ClientRegistry::default().add(addr)
    }

    #[tokio::test]
    async fn resolves_on_kill_and_on_shutdown_and_stays_resolved() {
        let (tx, rx) = watch::channel(false);
        let h = handle();
        let mut c = Closing::new(rx.clone(), Arc::clone(&h));
        // Polled (and pending) many times, as the connection loop does.
        for _ in 0..3 {
            let r = tokio::time::timeout(Duration::from_millis(20), &mut c).await;
            assert!(r.is_err(), "must not resolve before a signal");
        }
        h.kill.notify_one();
        tokio::time::timeout(Duration::from_secs(5), &mut c)
            .await
            .expect("kill resolves it");
        tokio::time::timeout(Duration::from_secs(5), &mut c)
            .await
            .expect("stays resolved");

        let mut c = Closing::new(rx, handle());
        let r = tokio::time::timeout(Duration::from_millis(20), &mut c).await;
        assert!(r.is_err());
        tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), &mut c)
            .await
            .expect("shutdown resolves it");
    }
}
