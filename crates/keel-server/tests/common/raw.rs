//! A raw RESP2/RESP3 test client that keeps the exact frame types (push vs array, map,
//! null), for tests that check reply shapes and out-of-band messages. Every read is
//! bounded by `WAIT`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{InProc, WAIT};

/// A decoded RESP2/RESP3 value that keeps the frame type (push vs array).
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Arr(Vec<V>),
    Push(Vec<V>),
    Map(Vec<(V, V)>),
    Other(String),
}

pub fn b(s: &str) -> V {
    V::Bulk(s.as_bytes().to_vec())
}

pub fn push(items: Vec<V>) -> V {
    V::Push(items)
}

pub fn arr(items: Vec<V>) -> V {
    V::Arr(items)
}

/// The RESP encoding of one request.
pub fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// A raw RESP connection with bounded reads.
pub struct Raw {
    pub rd: BufReader<TcpStream>,
    pub wr: TcpStream,
}

impl Raw {
    pub fn connect(srv: &InProc) -> Raw {
        Raw::connect_addr(srv.addr)
    }

    pub fn connect_addr(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        Raw {
            wr: s.try_clone().expect("clone"),
            rd: BufReader::new(s),
        }
    }

    pub fn send(&mut self, args: &[&str]) {
        self.wr.write_all(&resp(args)).expect("write");
    }

    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.rd.read_line(&mut l).expect("read line");
        assert!(l.ends_with("\r\n"), "truncated line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    pub fn read(&mut self) -> V {
        let l = self.line();
        let (t, rest) = l.split_at(1);
        let n = || rest.parse::<i64>().expect("length");
        match t {
            "+" => V::Simple(rest.into()),
            "-" => V::Err(rest.into()),
            ":" => V::Int(n()),
            "_" => V::Nil,
            "$" if n() < 0 => V::Nil,
            "$" => {
                let len = usize::try_from(n()).expect("len");
                let mut buf = vec![0; len + 2];
                self.rd.read_exact(&mut buf).expect("bulk");
                buf.truncate(len);
                V::Bulk(buf)
            }
            "*" if n() < 0 => V::Nil,
            "*" | ">" | "~" => {
                let items = (0..n()).map(|_| self.read()).collect();
                if t == ">" {
                    V::Push(items)
                } else {
                    V::Arr(items)
                }
            }
            "%" => V::Map((0..n()).map(|_| (self.read(), self.read())).collect()),
            _ => V::Other(l.clone()),
        }
    }

    pub fn call(&mut self, args: &[&str]) -> V {
        self.send(args);
        self.read()
    }

    /// The next frame if its first byte arrives within `d`, or None. A frame that has
    /// started arriving is read whole with the normal `WAIT` bound, which is restored
    /// before this returns. Panics if the server closed the connection.
    pub fn read_timeout(&mut self, d: Duration) -> Option<V> {
        // A zero duration would mean "block forever" to set_read_timeout.
        let d = d.max(Duration::from_millis(1));
        self.rd
            .get_ref()
            .set_read_timeout(Some(d))
            .expect("timeout");
        let ready = match self.rd.fill_buf() {
            Ok([]) => {
                self.rd
                    .get_ref()
                    .set_read_timeout(Some(WAIT))
                    .expect("timeout");
                panic!("connection closed while waiting for a frame");
            }
            Ok(_) => true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) => panic!("read: {e}"),
        };
        self.rd
            .get_ref()
            .set_read_timeout(Some(WAIT))
            .expect("timeout");
        ready.then(|| self.read())
    }
}
