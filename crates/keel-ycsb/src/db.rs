//! How YCSB's record operations map onto Redis commands, as YCSB's redis binding does:
//! a record is a hash `user<fnv(keynum)>` with fields `field0..field9`; the sorted set
//! `_indices` holds every record key for scans, scored by the key's hash shifted right by
//! 11 bits (exact in a double, and in the same order as the key numbers' hashes).
//!
//! - insert: `HSET key field0 v0 .. field9 v9` and `ZADD _indices score key`, pipelined
//! - read: `HGETALL key`, checked to hold every field at the configured length
//! - update: `HSET key fieldN v` for one random field (YCSB's writeallfields=false)
//! - scan: `ZRANGEBYSCORE _indices score +inf LIMIT 0 len`, then `HGETALL` of each key,
//!   pipelined
//! - read-modify-write: read, then update

use crate::generator::{fnv_hash64, Rng};
use crate::resp::{ClientError, Conn, Reply};

/// The sorted set of record keys that scans walk.
pub const INDEX_KEY: &str = "_indices";

/// Record shape: how many fields and how long each value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordShape {
    /// Fields per record (YCSB: 10).
    pub fields: usize,
    /// Bytes per field value (YCSB: 100).
    pub field_len: usize,
}

impl Default for RecordShape {
    fn default() -> Self {
        RecordShape {
            fields: 10,
            field_len: 100,
        }
    }
}

/// Why one record operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The connection failed; the caller reconnects.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The server answered with an error or an unexpected reply type.
    #[error("{command} {key}: {reply}")]
    Reply {
        /// The command.
        command: &'static str,
        /// The key it addressed.
        key: String,
        /// The reply, as text.
        reply: String,
    },
    /// A record read back does not have the shape every insert writes.
    #[error("{command} {key}: bad record: {detail}")]
    BadRecord {
        /// The command.
        command: &'static str,
        /// The record key.
        key: String,
        /// What was wrong.
        detail: String,
    },
}

impl DbError {
    /// True when the connection itself failed (as opposed to one command).
    pub fn is_connection(&self) -> bool {
        matches!(self, DbError::Client(_))
    }
}

/// The key of record number `keynum`: YCSB's hashed key name.
pub fn record_key(keynum: u64) -> String {
    format!("user{}", fnv_hash64(keynum))
}

/// The index score of record number `keynum` (an integer exact in a double).
pub fn index_score(keynum: u64) -> u64 {
    fnv_hash64(keynum) >> 11
}

/// Field name `i`.
pub fn field_name(i: usize) -> String {
    format!("field{i}")
}

fn unexpected(command: &'static str, key: &str, reply: &Reply) -> DbError {
    let text = match reply {
        Reply::Error(e) => format!("error reply: {e}"),
        other => format!("unexpected reply: {other:?}"),
    };
    DbError::Reply {
        command,
        key: key.to_string(),
        reply: text,
    }
}

/// Per-connection operations on records.
#[derive(Debug)]
pub struct Db {
    conn: Conn,
    shape: RecordShape,
    value: Vec<u8>,
    fields: Vec<String>,
}

impl Db {
    /// Wraps a connection.
    pub fn new(conn: Conn, shape: RecordShape) -> Db {
        Db {
            conn,
            shape,
            value: vec![0; shape.field_len],
            fields: (0..shape.fields).map(field_name).collect(),
        }
    }

    /// The underlying connection.
    pub fn conn_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Replaces the connection after a failure.
    pub fn replace_conn(&mut self, conn: Conn) {
        self.conn = conn;
    }

    /// Inserts record `keynum` with random values in every field.
    pub async fn insert(&mut self, rng: &mut Rng, keynum: u64) -> Result<(), DbError> {
        let key = record_key(keynum);
        let mut values = vec![0u8; self.shape.fields * self.shape.field_len];
        rng.fill_printable(&mut values);
        let mut args: Vec<&[u8]> = Vec::with_capacity(2 + 2 * self.shape.fields);
        args.push(b"HSET");
        args.push(key.as_bytes());
        for (name, v) in self
            .fields
            .iter()
            .zip(values.chunks(self.shape.field_len.max(1)))
        {
            args.push(name.as_bytes());
            args.push(v);
        }
        self.conn.queue(&args);
        let score = index_score(keynum).to_string();
        self.conn.queue(&[
            b"ZADD".as_slice(),
            INDEX_KEY.as_bytes(),
            score.as_bytes(),
            key.as_bytes(),
        ]);
        let replies = self.conn.finish().await?;
        match replies.as_slice() {
            [Reply::Int(_), Reply::Int(_)] => Ok(()),
            [Reply::Int(_), other] => Err(unexpected("ZADD", &key, other)),
            [other, ..] => Err(unexpected("HSET", &key, other)),
            [] => Err(unexpected("HSET", &key, &Reply::Array(None))),
        }
    }

    /// Reads record `keynum` in full and checks its shape.
    pub async fn read(&mut self, keynum: u64) -> Result<(), DbError> {
        let key = record_key(keynum);
        let reply = self
            .conn
            .call(&[b"HGETALL".as_slice(), key.as_bytes()])
            .await?;
        self.check_record("HGETALL", &key, &reply)
    }

    /// Reads record `keynum` and returns its fields (name, value) as stored.
    pub async fn fetch(&mut self, keynum: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>, DbError> {
        let key = record_key(keynum);
        let reply = self
            .conn
            .call(&[b"HGETALL".as_slice(), key.as_bytes()])
            .await?;
        match reply {
            Reply::Array(Some(items)) => {
                let mut out = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(Reply::Bulk(Some(f))), Some(Reply::Bulk(Some(v)))) =
                    (it.next(), it.next())
                {
                    out.push((f, v));
                }
                Ok(out)
            }
            other => Err(unexpected("HGETALL", &key, &other)),
        }
    }

    /// Overwrites one random field of record `keynum`.
    pub async fn update(&mut self, rng: &mut Rng, keynum: u64) -> Result<(), DbError> {
        let key = record_key(keynum);
        let idx = rng.below(self.fields.len() as u64) as usize;
        rng.fill_printable(&mut self.value);
        let field = self
            .fields
            .get(idx)
            .map(String::as_bytes)
            .unwrap_or(b"field0");
        let reply = self
            .conn
            .call(&[b"HSET".as_slice(), key.as_bytes(), field, &self.value])
            .await?;
        match reply {
            Reply::Int(_) => Ok(()),
            other => Err(unexpected("HSET", &key, &other)),
        }
    }

    /// Reads up to `len` records in index order starting at record `keynum`'s score;
    /// returns how many were read.
    pub async fn scan(&mut self, keynum: u64, len: u64) -> Result<usize, DbError> {
        let start = record_key(keynum);
        let score = index_score(keynum).to_string();
        let limit = len.to_string();
        let reply = self
            .conn
            .call(&[
                b"ZRANGEBYSCORE".as_slice(),
                INDEX_KEY.as_bytes(),
                score.as_bytes(),
                b"+inf",
                b"LIMIT",
                b"0",
                limit.as_bytes(),
            ])
            .await?;
        let keys = match reply {
            Reply::Array(Some(items)) => items,
            other => return Err(unexpected("ZRANGEBYSCORE", &start, &other)),
        };
        let mut names = Vec::with_capacity(keys.len());
        for k in keys {
            match k {
                Reply::Bulk(Some(name)) => names.push(name),
                other => return Err(unexpected("ZRANGEBYSCORE", &start, &other)),
            }
        }
        if names.is_empty() {
            return Ok(0);
        }
        for name in &names {
            self.conn.queue(&[b"HGETALL".as_slice(), name]);
        }
        let replies = self.conn.finish().await?;
        for (name, reply) in names.iter().zip(&replies) {
            self.check_record("HGETALL", &String::from_utf8_lossy(name), reply)?;
        }
        Ok(names.len())
    }

    /// Checks an HGETALL reply against the record shape.
    fn check_record(&self, command: &'static str, key: &str, reply: &Reply) -> Result<(), DbError> {
        let bad = |detail: String| DbError::BadRecord {
            command,
            key: key.to_string(),
            detail,
        };
        let items = match reply {
            Reply::Array(Some(items)) => items,
            other => return Err(unexpected(command, key, other)),
        };
        if items.is_empty() {
            return Err(bad("record not found".into()));
        }
        if items.len() != 2 * self.shape.fields {
            return Err(bad(format!(
                "{} fields, expected {}",
                items.len() / 2,
                self.shape.fields
            )));
        }
        for pair in items.chunks(2) {
            match pair {
                [Reply::Bulk(Some(f)), Reply::Bulk(Some(v))] => {
                    if v.len() != self.shape.field_len {
                        return Err(bad(format!(
                            "field {} has {} bytes, expected {}",
                            String::from_utf8_lossy(f),
                            v.len(),
                            self.shape.field_len
                        )));
                    }
                }
                _ => return Err(bad("field or value not a bulk string".into())),
            }
        }
        Ok(())
    }
}
