//! The one future a connection waits on for "stop serving this client": server shutdown
//! or CLIENT KILL (also an exceeded output-buffer limit).
//!
//! It is built once per connection and polled by reference in every `select!` of the
//! connection loop. Polling the underlying watch and `Notified` futures on every request
//! cost a tenth of a pipelined GET's instructions, so they are polled only when they
//! have signalled (through a waker of our own) or the task's waker changed; otherwise a
//! poll is one atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::client::ClientHandle;

/// Set by the inner futures' wake-ups; forwards them to the connection's task.
#[derive(Default)]
struct Signal {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        if let Some(w) = self.task.lock().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// Resolves once the server shuts down or the client is killed; stays resolved.
pub struct Closing {
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
    signal: Arc<Signal>,
    inner_waker: Waker,
    /// The task waker last handed to `signal`, to notice a change cheaply.
    last: Option<Waker>,
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
        let signal = Arc::new(Signal::default());
        Closing {
            inner,
            done: false,
            inner_waker: Waker::from(Arc::clone(&signal)),
            signal,
            last: None,
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
        let same_task = this.last.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if !same_task {
            *this.signal.task.lock() = Some(cx.waker().clone());
            this.last = Some(cx.waker().clone());
        } else if !this.signal.fired.load(Ordering::Acquire) {
            // Nothing happened since the inner futures last registered our waker.
            return Poll::Pending;
        }
        // Cleared before polling, so a wake-up during the poll is seen next time.
        this.signal.fired.store(false, Ordering::Release);
        let mut inner_cx = Context::from_waker(&this.inner_waker);
        match this.inner.as_mut().poll(&mut inner_cx) {
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
