//! A bounded pool of RESP connections with retries on connection errors.

use std::sync::Arc;
use std::time::Duration;

use parking_lot_free::IdleList;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::retry::{is_idempotent, RetryPolicy};
use crate::{ClientError, ConnectOptions, Connection, Result, Value};

/// Pool sizing and behaviour.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most connections open at once (idle + in use).
    pub max_size: usize,
    /// Longest wait for a free connection.
    pub acquire_timeout: Duration,
    /// Retry policy for [`Pool::command`].
    pub retry: RetryPolicy,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_size: 8,
            acquire_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// A cheaply clonable handle to a bounded set of connections to one server.
///
/// ```no_run
/// # async fn demo() -> keel_client::Result<()> {
/// use keel_client::{ConnectOptions, Pool, PoolConfig};
/// let pool = Pool::new(ConnectOptions::new("127.0.0.1", 6379), PoolConfig::default());
/// pool.command(&["SET", "greeting", "hello"]).await?;
/// let v = pool.command(&["GET", "greeting"]).await?;
/// assert_eq!(v.as_text().as_deref(), Some("hello"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: ConnectOptions,
    cfg: PoolConfig,
    permits: Arc<Semaphore>,
    idle: IdleList,
}

/// A connection on loan from the pool; it goes back when dropped unless discarded.
#[derive(Debug)]
pub struct PooledConnection {
    conn: Option<Connection>,
    pool: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl PooledConnection {
    /// The connection itself.
    pub fn conn(&mut self) -> &mut Connection {
        // Invariant: `conn` is only None after `discard` consumed self.
        self.conn.as_mut().unwrap_or_else(|| unreachable!())
    }

    /// Closes the connection instead of returning it (after an error left it unusable).
    pub fn discard(mut self) {
        self.conn = None;
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.idle.put(c);
        }
    }
}

impl Pool {
    /// A pool for the server `opts` describes; connections are opened on demand.
    pub fn new(opts: ConnectOptions, cfg: PoolConfig) -> Pool {
        let permits = Arc::new(Semaphore::new(cfg.max_size.max(1)));
        Pool {
            inner: Arc::new(Inner {
                opts,
                cfg,
                permits,
                idle: IdleList::default(),
            }),
        }
    }

    /// Connections currently idle in the pool.
    pub fn idle_count(&self) -> usize {
        self.inner.idle.len()
    }

    /// Borrows a connection: an idle one, or a new one while under `max_size`; waits up
    /// to `acquire_timeout` when all are in use.
    pub async fn get(&self) -> Result<PooledConnection> {
        let permit = tokio::time::timeout(
            self.inner.cfg.acquire_timeout,
            self.inner.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            op: "pool acquire",
            addr: self.inner.opts.addr(),
            after: self.inner.cfg.acquire_timeout,
        })?
        .map_err(|_| ClientError::Closed {
            addr: self.inner.opts.addr(),
        })?;
        let conn = match self.inner.idle.take() {
            Some(c) => c,
            None => Connection::connect(&self.inner.opts).await?,
        };
        Ok(PooledConnection {
            conn: Some(conn),
            pool: self.inner.clone(),
            _permit: permit,
        })
    }

    /// Runs one command, retrying per the module rule in [`crate::retry`]: connection
    /// failures before sending are always retried, after sending only for read-only
    /// commands. Error replies are returned as `Ok(Value::Error)`.
    pub async fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Value> {
        let idempotent = args.first().is_some_and(|n| is_idempotent(n.as_ref()));
        self.run(args, idempotent).await
    }

    /// Like [`Pool::command`], for a command the caller knows is safe to apply twice
    /// (e.g. `SET k v` without options, `DEL k`): retried after sending too.
    pub async fn command_idempotent<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Value> {
        self.run(args, true).await
    }

    async fn run<A: AsRef<[u8]>>(&self, args: &[A], idempotent: bool) -> Result<Value> {
        if args.is_empty() {
            return Err(ClientError::InvalidRequest("empty command".into()));
        }
        let policy = self.inner.cfg.retry;
        let mut attempt = 1;
        loop {
            let (err, sent) = match self.get().await {
                Err(e) => (e, false),
                Ok(mut pc) => match pc.conn().command(args).await {
                    Ok(v) => return Ok(v),
                    Err(e) => {
                        // A half-read reply would poison the next borrower.
                        pc.discard();
                        (e, true)
                    }
                },
            };
            if !policy.should_retry(&err, attempt, sent, idempotent) {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }
}

mod parking_lot_free {
    //! The idle list: a plain mutex is enough, it is held for one push or pop.

    use std::sync::Mutex;

    use crate::Connection;

    /// Idle connections, most recently returned first.
    #[derive(Debug, Default)]
    pub(super) struct IdleList(Mutex<Vec<Connection>>);

    impl IdleList {
        pub(super) fn put(&self, c: Connection) {
            if let Ok(mut v) = self.0.lock() {
                v.push(c);
            }
        }

        pub(super) fn take(&self) -> Option<Connection> {
            self.0.lock().ok().and_then(|mut v| v.pop())
        }

        pub(super) fn len(&self) -> usize {
            self.0.lock().map(|v| v.len()).unwrap_or(0)
        }
    }
}
