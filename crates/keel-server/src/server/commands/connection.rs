//! Connection commands: PING, ECHO, SELECT, QUIT, HELLO, AUTH, RESET, and TIME.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use keel_engine::args::parse_i64;
use keel_engine::keys::DATABASES;
use keel_engine::reply::errors;
use keel_engine::Reply;

use super::{eq_ci, err, Outcome};
use crate::resp::Protocol;
use crate::server::acl::DEFAULT_USER;
use crate::server::conn::Session;

/// The Redis version keel answers to in HELLO and INFO (clients gate features on it);
/// the engine's, which scripts see too.
pub use keel_engine::REDIS_COMPAT_VERSION;

const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

pub(super) fn ping(_s: &mut Session, args: &[Bytes]) -> Outcome {
    match args {
        [_] => Outcome::Reply(Reply::Simple("PONG".into())),
        [_, msg] => Outcome::Reply(Reply::Bulk(msg.clone())),
        _ => err(errors::wrong_args("ping")),
    }
}

pub(super) fn echo(_s: &mut Session, args: &[Bytes]) -> Outcome {
    Outcome::Reply(args.get(1).cloned().map_or(Reply::Nil, Reply::Bulk))
}

pub(super) fn select(s: &mut Session, args: &[Bytes]) -> Outcome {
    let Some(n) = args.get(1).and_then(|a| parse_i64(a)) else {
        return err(errors::NOT_INTEGER);
    };
    match u8::try_from(n) {
        Ok(db) if db < DATABASES => {
            s.client.select(db);
            Outcome::Reply(Reply::Ok)
        }
        _ => err(errors::DB_INDEX),
    }
}

pub(super) fn quit(_s: &mut Session, _args: &[Bytes]) -> Outcome {
    Outcome::ReplyThenClose(Reply::Ok)
}

/// Authenticates the connection as `user` (None: the default user) with `pass`; a
/// failure is logged in ACL LOG.
fn authenticate(
    s: &mut Session,
    cmd: &[u8],
    user: Option<&[u8]>,
    pass: &[u8],
) -> Result<(), &'static str> {
    let acl = &s.shared.acl;
    let name = user.unwrap_or(DEFAULT_USER.as_bytes());
    if user.is_none() && acl.default_slot().user().nopass() {
        return Err(NO_PASSWORD);
    }
    match acl.authenticate(name, pass) {
        Some(slot) => {
            s.client.set_user(slot);
            s.client.authenticated = true;
            Ok(())
        }
        None => {
            s.acl_auth_failed(cmd, name);
            Err(WRONGPASS)
        }
    }
}

pub(super) fn auth(s: &mut Session, args: &[Bytes]) -> Outcome {
    let res = match args {
        [cmd, pass] => authenticate(s, cmd, None, pass),
        [cmd, user, pass] => authenticate(s, cmd, Some(user), pass),
        _ => return err(errors::SYNTAX),
    };
    match res {
        Ok(()) => Outcome::Reply(Reply::Ok),
        Err(e) => err(e),
    }
}

pub(super) fn hello(s: &mut Session, args: &[Bytes]) -> Outcome {
    let mut proto = None;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        match parse_i64(v) {
            Some(2) => proto = Some(Protocol::Resp2),
            Some(3) => proto = Some(Protocol::Resp3),
            Some(_) => return err("NOPROTO unsupported protocol version"),
            None => return err("ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut setname = None;
    // Of several AUTH options the last counts, as in Redis.
    let mut auth = None;
    while i < args.len() {
        let opt = &args[i];
        let left = args.len() - i - 1;
        if eq_ci(opt, "AUTH") && left >= 2 {
            auth = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if eq_ci(opt, "SETNAME") && left >= 1 {
            let name = &args[i + 1];
            if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                return err(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            setname = Some(String::from_utf8_lossy(name).into_owned());
            i += 2;
        } else {
            return err(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if let Some((user, pass)) = auth {
        if let Err(e) = authenticate(s, &args[0], Some(user), pass) {
            return err(e);
        }
    }
    if !s.client.authenticated {
        return err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    if let Some(p) = proto {
        s.client.protocol = p;
    }
    if let Some(n) = setname {
        *s.client.handle.name.lock() = Some(n);
    }
    let proto_n = match s.client.protocol {
        Protocol::Resp2 => 2,
        Protocol::Resp3 => 3,
    };
    let field = |k: &str, v: Reply| (Reply::bulk(k), v);
    Outcome::Reply(Reply::Map(vec![
        field("server", Reply::bulk("redis")),
        field("version", Reply::bulk(REDIS_COMPAT_VERSION)),
        field("proto", Reply::Int(proto_n)),
        field(
            "id",
            Reply::Int(i64::try_from(s.client.handle.id).unwrap_or(i64::MAX)),
        ),
        field("mode", Reply::bulk("standalone")),
        field("role", Reply::bulk("master")),
        field("modules", Reply::Array(Vec::new())),
        field("keel_version", Reply::bulk(env!("CARGO_PKG_VERSION"))),
    ]))
}

pub(super) fn reset(s: &mut Session, _args: &[Bytes]) -> Outcome {
    let needs_auth = s.shared.acl.needs_auth();
    crate::server::multi::forget(s);
    s.stop_tracking();
    s.client.reset(s.shared.acl.default_slot(), needs_auth);
    Outcome::Reply(Reply::Simple("RESET".into()))
}

pub(super) fn time(_s: &mut Session, _args: &[Bytes]) -> Outcome {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Outcome::Reply(Reply::Array(vec![
        Reply::bulk(d.as_secs().to_string()),
        Reply::bulk(d.subsec_micros().to_string()),
    ]))
}
