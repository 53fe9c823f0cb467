//! ACLs with Redis 7.2 semantics: AUTH (both forms) and HELLO AUTH, NOAUTH, WRONGPASS;
//! ACL SETUSER rules and their error texts; ACL GETUSER / LIST / USERS / WHOAMI /
//! DELUSER / CAT / GENPASS / DRYRUN / LOG / HELP; the per-call checks of commands,
//! subcommands, categories, keys (`~`, `%R~`, `%W~`), channels (PUBLISH, SUBSCRIBE and
//! the literal match of PSUBSCRIBE patterns) and of MULTI (queue time and EXEC time);
//! permission changes reaching connected clients; CONFIG SET requirepass as the default
//! user's password; CLIENT LIST `user=` and CLIENT KILL USER; the INFO denial counters;
//! the ACL file (loaded at start, ACL SAVE, ACL LOAD, a bad file, no file). Raw RESP for
//! the exact error texts.
//!
//! A limited user's scripts: each call checked (Redis's "ACL failure in script"), logged
//! in the lua context, and refused alike when the log is replayed.

mod common;

use std::io::{ErrorKind, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use common::raw::{arr, b, Raw, V};
use common::{InProc, WAIT};
use keel_server::Config;

fn start() -> InProc {
    InProc::start(Config::default())
}

/// A server whose users come from (and are saved to) `path`.
fn start_with_aclfile(path: &Path) -> InProc {
    InProc::start(Config {
        aclfile: Some(path.to_path_buf()),
        ..Config::default()
    })
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NOAUTH: &str = "NOAUTH Authentication required.";
const NOPERM_KEY: &str = "NOPERM No permissions to access a key";
const NOPERM_CHANNEL: &str = "NOPERM No permissions to access a channel";
const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You \
    may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE \
    (assuming you have a Redis configuration file set) in order to store users in the Redis \
    configuration.";
const LOAD_ROLLBACK: &str =
    "WARNING: ACL errors detected, no change to the previously active ACL rules was performed";

/// SHA-256 hex digests of the passwords used below.
const SHA_SECRET: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b";
const SHA_P1: &str = "f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a";
const SHA_P2: &str = "3946ca64ff78d93ca61090a437cbb6b3d2ca0d488f5f9ccf3059608368b27693";
const SHA_SEKRIT: &str = "7e35aaaea6b83ab43c9271737060ce485dc285837d9b4b98b6458408886ac7b1";

fn ok() -> V {
    V::Simple("OK".into())
}

fn e(text: &str) -> V {
    V::Err(text.into())
}

fn int(n: i64) -> V {
    V::Int(n)
}

fn bulks(items: &[&str]) -> V {
    arr(items.iter().map(|s| b(s)).collect())
}

/// "NOPERM User <user> has no permissions to run the '<cmd>' command".
fn noperm_cmd(user: &str, cmd: &str) -> V {
    e(&format!(
        "NOPERM User {user} has no permissions to run the '{cmd}' command"
    ))
}

/// The error ACL SETUSER gives for a bad rule.
fn setuser_err(rule: &str, why: &str) -> V {
    e(&format!(
        "ERR Error in ACL SETUSER modifier '{rule}': {why}"
    ))
}

fn text(v: &V) -> String {
    match v {
        V::Bulk(x) => String::from_utf8(x.clone()).expect("utf8"),
        V::Simple(s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

fn connect(srv: &InProc) -> Raw {
    Raw::connect(srv)
}

/// A connection authenticated as `user`.
fn login(srv: &InProc, user: &str, pass: &str) -> Raw {
    let mut r = connect(srv);
    assert_eq!(r.call(&["AUTH", user, pass]), ok(), "AUTH {user}");
    r
}

/// ACL SETUSER `user` `rules`, which must succeed.
fn setuser(r: &mut Raw, user: &str, rules: &[&str]) {
    let mut args = vec!["ACL", "SETUSER", user];
    args.extend_from_slice(rules);
    assert_eq!(r.call(&args), ok(), "ACL SETUSER {user} {rules:?}");
}

/// ACL GETUSER as (field, value) pairs (RESP2).
fn getuser(r: &mut Raw, user: &str) -> Vec<(String, V)> {
    match r.call(&["ACL", "GETUSER", user]) {
        V::Arr(items) => {
            assert_eq!(items.len() % 2, 0, "odd GETUSER reply {items:?}");
            items
                .chunks(2)
                .map(|p| (text(&p[0]), p[1].clone()))
                .collect()
        }
        other => panic!("ACL GETUSER {user}: {other:?}"),
    }
}

/// The value of `name` in a (field, value) list.
fn field<'a>(fields: &'a [(String, V)], name: &str) -> &'a V {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
}

/// ACL LIST's lines.
fn acl_list(r: &mut Raw) -> Vec<String> {
    match r.call(&["ACL", "LIST"]) {
        V::Arr(items) => items.iter().map(text).collect(),
        other => panic!("ACL LIST: {other:?}"),
    }
}

/// ACL LOG [args], each entry as (field, value) pairs.
fn acl_log(r: &mut Raw, args: &[&str]) -> Vec<Vec<(String, V)>> {
    let mut cmd = vec!["ACL", "LOG"];
    cmd.extend_from_slice(args);
    match r.call(&cmd) {
        V::Arr(entries) => entries
            .into_iter()
            .map(|en| match en {
                V::Arr(items) => items
                    .chunks(2)
                    .map(|p| (text(&p[0]), p[1].clone()))
                    .collect(),
                other => panic!("ACL LOG entry: {other:?}"),
            })
            .collect(),
        other => panic!("ACL LOG: {other:?}"),
    }
}

fn as_int(v: &V) -> i64 {
    match v {
        V::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// The value of `field` in INFO `section`.
fn info_field(r: &mut Raw, section: &str, name: &str) -> String {
    let info = text(&r.call(&["INFO", section]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in INFO {section}: {info}"))
        .trim()
        .to_string()
}

/// Asserts that the server closes `r` (within the read timeout, WAIT) without sending
/// anything more.
fn assert_closed(r: &mut Raw, what: &str) {
    let mut buf = [0u8; 512];
    match r.rd.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "{what}: got {:?} instead of a close",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(err)
            if matches!(
                err.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ) => {}
        Err(err) => panic!("{what}: the connection stayed open ({err})"),
    }
}

/// The CLIENT LIST lines whose `user=` is `user`.
fn clients_of(r: &mut Raw, user: &str) -> Vec<String> {
    let want = format!("user={user}");
    text(&r.call(&["CLIENT", "LIST"]))
        .lines()
        .filter(|l| l.split_whitespace().any(|t| t == want))
        .map(str::to_string)
        .collect()
}

/// Polls CLIENT LIST until `user` has `n` connections (bounded by WAIT).
fn wait_clients_of(r: &mut Raw, user: &str, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = clients_of(r, user);
        if got.len() == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} kept {} connections, want {n}: {got:?}",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------
// Users, AUTH, HELLO, NOAUTH

#[test]
fn connections_start_as_default_and_new_users_are_listed_disabled_with_no_permissions() {
    let srv = start();
    let mut r = connect(&srv);
    assert_eq!(r.call(&["ACL", "WHOAMI"]), b("default"));
    assert_eq!(r.call(&["ACL", "USERS"]), bulks(&["default"]));
    assert_eq!(
        acl_list(&mut r),
        ["user default on nopass sanitize-payload ~* &* +@all"]
    );

    setuser(&mut r, "newbie", &[]);
    setuser(&mut r, "alice", &["on", ">p1", "~*", "+@all"]);
    // Sorted by name.
    assert_eq!(
        r.call(&["ACL", "USERS"]),
        bulks(&["alice", "default", "newbie"])
    );
    assert_eq!(
        acl_list(&mut r),
        [
            format!("user alice on sanitize-payload #{SHA_P1} ~* resetchannels +@all"),
            "user default on nopass sanitize-payload ~* &* +@all".to_string(),
            "user newbie off sanitize-payload resetchannels -@all".to_string(),
        ]
    );
    let newbie = getuser(&mut r, "newbie");
    assert_eq!(
        field(&newbie, "flags"),
        &bulks(&["off", "sanitize-payload"])
    );
    assert_eq!(field(&newbie, "passwords"), &arr(vec![]));
    assert_eq!(field(&newbie, "commands"), &b("-@all"));
    assert_eq!(field(&newbie, "keys"), &b(""));
    assert_eq!(field(&newbie, "channels"), &b(""));
    assert_eq!(r.call(&["ACL", "GETUSER", "nosuch"]), V::Nil);

    // A new user is off: no password lets it in.
    let mut c = connect(&srv);
    assert_eq!(c.call(&["AUTH", "newbie", "anything"]), e(WRONGPASS));
    assert_eq!(c.call(&["AUTH", "newbie", ""]), e(WRONGPASS));
    assert_eq!(c.call(&["ACL", "WHOAMI"]), b("default"));
}

#[test]
fn auth_checks_the_password_set_and_leaves_the_user_unchanged_on_failure() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "alice", &["on", ">p1", ">p2", "~*", "+@all"]);

    let mut c = connect(&srv);
    assert_eq!(c.call(&["AUTH", "alice", "p1"]), ok());
    assert_eq!(c.call(&["ACL", "WHOAMI"]), b("alice"));
    assert_eq!(c.call(&["AUTH", "alice", "p2"]), ok());
    assert_eq!(c.call(&["AUTH", "alice", "p3"]), e(WRONGPASS));
    assert_eq!(c.call(&["AUTH", "nosuch", "p1"]), e(WRONGPASS));
    assert_eq!(
        c.call(&["ACL", "WHOAMI"]),
        b("alice"),
        "a failed AUTH keeps the connection's user"
    );
    assert_eq!(
        c.call(&["AUTH", "default", "whatever"]),
        ok(),
        "default is nopass"
    );
    assert_eq!(c.call(&["ACL", "WHOAMI"]), b("default"));

    // <pass removes one password.
    setuser(&mut admin, "alice", &["<p1"]);
    assert_eq!(c.call(&["AUTH", "alice", "p1"]), e(WRONGPASS));
    assert_eq!(c.call(&["AUTH", "alice", "p2"]), ok());
    assert_eq!(
        field(&getuser(&mut admin, "alice"), "passwords"),
        &bulks(&[SHA_P2])
    );

    // off: no login even with the right password.
    setuser(&mut admin, "alice", &["off"]);
    assert_eq!(c.call(&["AUTH", "alice", "p2"]), e(WRONGPASS));

    // nopass: any password, and the password list is cleared.
    setuser(&mut admin, "alice", &["on", "nopass"]);
    assert_eq!(c.call(&["AUTH", "alice", "anything"]), ok());
    let alice = getuser(&mut admin, "alice");
    assert_eq!(
        field(&alice, "flags"),
        &bulks(&["on", "nopass", "sanitize-payload"])
    );
    assert_eq!(field(&alice, "passwords"), &arr(vec![]));

    // resetpass: no password and not nopass, so nothing works.
    setuser(&mut admin, "alice", &["resetpass"]);
    assert_eq!(c.call(&["AUTH", "alice", "anything"]), e(WRONGPASS));
    assert_eq!(c.call(&["AUTH", "alice", "p2"]), e(WRONGPASS));
    assert_eq!(
        field(&getuser(&mut admin, "alice"), "flags"),
        &bulks(&["on", "sanitize-payload"])
    );

    // A password after nopass turns nopass off.
    setuser(&mut admin, "alice", &["nopass", ">p1"]);
    assert_eq!(c.call(&["AUTH", "alice", "other"]), e(WRONGPASS));
    assert_eq!(c.call(&["AUTH", "alice", "p1"]), ok());

    // A user allowed no command can still AUTH (and HELLO) to switch users.
    setuser(&mut admin, "alice", &["nocommands"]);
    assert_eq!(c.call(&["PING"]), noperm_cmd("alice", "ping"));
    assert!(
        matches!(c.call(&["HELLO", "2"]), V::Arr(_)),
        "HELLO is allowed without permissions"
    );
    assert_eq!(c.call(&["AUTH", "default", "x"]), ok());
    assert_eq!(c.call(&["PING"]), V::Simple("PONG".into()));

    let mut d = connect(&srv);
    assert_eq!(
        d.call(&["AUTH", "onlypass"]),
        e(
            "ERR AUTH <password> called without any password configured for the default \
           user. Are you sure your configuration is correct?"
        )
    );
    assert_eq!(d.call(&["AUTH", "a", "b", "c"]), e("ERR syntax error"));
}

#[test]
fn hashed_passwords_are_added_removed_and_validated() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(
        &mut admin,
        "bob",
        &["on", &format!("#{SHA_SECRET}"), "~*", "+@all"],
    );
    assert_eq!(
        login(&srv, "bob", "secret").call(&["ACL", "WHOAMI"]),
        b("bob")
    );
    assert_eq!(
        field(&getuser(&mut admin, "bob"), "passwords"),
        &bulks(&[SHA_SECRET]),
        "GETUSER shows hashes"
    );

    setuser(&mut admin, "bob", &[">p1"]);
    assert_eq!(
        field(&getuser(&mut admin, "bob"), "passwords"),
        &bulks(&[SHA_SECRET, SHA_P1])
    );
    // Adding the same password again does not duplicate it.
    setuser(&mut admin, "bob", &[&format!("#{SHA_P1}")]);
    assert_eq!(
        field(&getuser(&mut admin, "bob"), "passwords"),
        &bulks(&[SHA_SECRET, SHA_P1])
    );

    setuser(&mut admin, "bob", &[&format!("!{SHA_SECRET}")]);
    let mut c = connect(&srv);
    assert_eq!(c.call(&["AUTH", "bob", "secret"]), e(WRONGPASS));
    assert_eq!(c.call(&["AUTH", "bob", "p1"]), ok());

    let missing = "The password you are trying to remove from the user does not exist";
    let rule = format!("!{SHA_SECRET}");
    assert_eq!(
        admin.call(&["ACL", "SETUSER", "bob", &rule]),
        setuser_err(&rule, missing)
    );
    assert_eq!(
        admin.call(&["ACL", "SETUSER", "bob", "<nosuch"]),
        setuser_err("<nosuch", missing)
    );

    let bad_hash = "The password hash must be exactly 64 characters and contain only \
                    lowercase hexadecimal characters";
    let upper = format!("#{}", SHA_P2.to_uppercase());
    let short = format!("#{}", &SHA_P2[..63]);
    let long = format!("#{SHA_P2}0");
    let not_hex = format!("#{}g", &SHA_P2[..63]);
    let bang_short = format!("!{}", &SHA_P2[..63]);
    for rule in [&upper, &short, &long, &not_hex, &bang_short] {
        assert_eq!(
            admin.call(&["ACL", "SETUSER", "bob", rule]),
            setuser_err(rule, bad_hash),
            "{rule}"
        );
    }
    assert_eq!(
        field(&getuser(&mut admin, "bob"), "passwords"),
        &bulks(&[SHA_P1]),
        "refused rules change nothing"
    );
}

#[test]
fn requirepass_is_the_default_users_password_and_noauth_comes_before_auth() {
    let srv = start();
    let mut admin = connect(&srv);
    assert_eq!(
        admin.call(&["CONFIG", "SET", "requirepass", "sekrit"]),
        ok()
    );
    assert_eq!(
        admin.call(&["PING"]),
        V::Simple("PONG".into()),
        "the connection that set it stays authenticated"
    );
    let default = getuser(&mut admin, "default");
    assert_eq!(
        field(&default, "flags"),
        &bulks(&["on", "sanitize-payload"])
    );
    assert_eq!(field(&default, "passwords"), &bulks(&[SHA_SEKRIT]));

    let mut c = connect(&srv);
    assert_eq!(c.call(&["GET", "k"]), e(NOAUTH));
    assert_eq!(c.call(&["PING"]), e(NOAUTH));
    assert_eq!(c.call(&["ACL", "WHOAMI"]), e(NOAUTH));
    assert_eq!(c.call(&["AUTH", "wrong"]), e(WRONGPASS));
    assert_eq!(c.call(&["GET", "k"]), e(NOAUTH));
    assert_eq!(c.call(&["AUTH", "sekrit"]), ok());
    assert_eq!(c.call(&["GET", "k"]), V::Nil);
    assert_eq!(c.call(&["ACL", "WHOAMI"]), b("default"));
    let mut d = connect(&srv);
    assert_eq!(d.call(&["AUTH", "default", "sekrit"]), ok());
    assert_eq!(d.call(&["PING"]), V::Simple("PONG".into()));

    // Another user logs in on a NOAUTH connection with its own password.
    setuser(&mut admin, "alice", &["on", ">p1", "+@all", "~*"]);
    let mut a = connect(&srv);
    assert_eq!(a.call(&["GET", "k"]), e(NOAUTH));
    assert_eq!(a.call(&["AUTH", "alice", "p1"]), ok());
    assert_eq!(a.call(&["GET", "k"]), V::Nil);

    assert_eq!(admin.call(&["CONFIG", "SET", "requirepass", ""]), ok());
    let default = getuser(&mut admin, "default");
    assert_eq!(
        field(&default, "flags"),
        &bulks(&["on", "nopass", "sanitize-payload"])
    );
    assert_eq!(field(&default, "passwords"), &arr(vec![]));
    let mut f = connect(&srv);
    assert_eq!(f.call(&["PING"]), V::Simple("PONG".into()));
    assert_eq!(f.call(&["ACL", "WHOAMI"]), b("default"));
}

#[test]
fn a_disabled_default_user_leaves_new_connections_unauthenticated() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "alice", &["on", ">p1", "+@all", "~*"]);
    setuser(&mut admin, "default", &["off"]);
    assert_eq!(
        admin.call(&["PING"]),
        V::Simple("PONG".into()),
        "connections already in stay"
    );
    let mut c = connect(&srv);
    assert_eq!(c.call(&["GET", "k"]), e(NOAUTH));
    assert_eq!(c.call(&["AUTH", "default", "x"]), e(WRONGPASS));
    assert_eq!(c.call(&["AUTH", "alice", "p1"]), ok());
    assert_eq!(c.call(&["GET", "k"]), V::Nil);
}

#[test]
fn hello_3_auth_logs_in_and_switches_protocol_only_on_success() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "alice", &["on", ">p1", "+@all", "~*"]);

    let mut c = connect(&srv);
    assert_eq!(
        c.call(&["HELLO", "3", "AUTH", "alice", "wrong"]),
        e(WRONGPASS)
    );
    assert_eq!(c.call(&["ACL", "WHOAMI"]), b("default"));
    assert!(
        matches!(c.call(&["CONFIG", "GET", "maxmemory"]), V::Arr(_)),
        "a failed HELLO keeps RESP2"
    );
    match c.call(&["HELLO", "3", "AUTH", "alice", "p1"]) {
        V::Map(m) => assert!(m.contains(&(b("proto"), int(3))), "{m:?}"),
        other => panic!("HELLO 3 AUTH: {other:?}"),
    }
    assert_eq!(c.call(&["ACL", "WHOAMI"]), b("alice"));
    assert!(matches!(c.call(&["CONFIG", "GET", "maxmemory"]), V::Map(_)));

    assert_eq!(
        admin.call(&["CONFIG", "SET", "requirepass", "sekrit"]),
        ok()
    );
    let mut d = connect(&srv);
    assert_eq!(
        d.call(&["HELLO", "3"]),
        e(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise \
           the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the \
           client and select the RESP protocol version at the same time"
        )
    );
    assert_eq!(
        d.call(&["HELLO", "3", "AUTH", "default", "wrong"]),
        e(WRONGPASS)
    );
    assert_eq!(d.call(&["GET", "k"]), e(NOAUTH));
    assert!(matches!(
        d.call(&["HELLO", "3", "AUTH", "default", "sekrit"]),
        V::Map(_)
    ));
    assert_eq!(d.call(&["ACL", "WHOAMI"]), b("default"));
}

// ---------------------------------------------------------------------------------------
// ACL SETUSER / GETUSER / LIST / DELUSER

#[test]
fn setuser_refuses_bad_rules_with_the_redis_texts_and_changes_nothing() {
    let srv = start();
    let mut r = connect(&srv);
    let syntax = "Syntax error";
    let unknown = "Unknown command or category name in ACL";
    for (rule, why) in [
        ("nosuch", syntax),
        ("%X~a", syntax),
        ("+nosuchcmd", unknown),
        ("-nosuchcmd", unknown),
        ("+@nosuchcat", unknown),
        ("-@nosuchcat", unknown),
        ("+config|nosuch", unknown),
        (
            "+config|get|maxmemory",
            "Allowing first-arg of a subcommand is not supported",
        ),
    ] {
        assert_eq!(
            r.call(&["ACL", "SETUSER", "carol", "on", rule]),
            setuser_err(rule, why),
            "{rule}"
        );
    }
    assert_eq!(
        r.call(&["ACL", "GETUSER", "carol"]),
        V::Nil,
        "a refused SETUSER does not create the user"
    );

    assert_eq!(
        r.call(&["ACL", "SETUSER", "carol", "allkeys", "~x"]),
        setuser_err(
            "~x",
            "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and \
             does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
        )
    );
    assert_eq!(
        r.call(&["ACL", "SETUSER", "carol", "~*", "%R~x"]),
        setuser_err(
            "%R~x",
            "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and \
             does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
        )
    );
    assert_eq!(
        r.call(&["ACL", "SETUSER", "carol", "allchannels", "&x"]),
        setuser_err(
            "&x",
            "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid \
             and does not have any effect. Try 'resetchannels' to start with an empty list of \
             channels"
        )
    );
    assert_eq!(
        r.call(&["ACL", "SETUSER", "a b", "on"]),
        e("ERR Usernames can't contain spaces or null characters")
    );
    assert_eq!(
        r.call(&["ACL", "SETUSER"]),
        e("ERR wrong number of arguments for 'acl|setuser' command")
    );
    assert_eq!(r.call(&["ACL", "USERS"]), bulks(&["default"]));

    // An existing user keeps every rule when one rule of the call is bad.
    setuser(&mut r, "carol", &["on", ">p1", "~a*", "+get"]);
    assert_eq!(
        r.call(&[
            "ACL",
            "SETUSER",
            "carol",
            "off",
            "resetkeys",
            "~b*",
            "+set",
            "bogus"
        ]),
        setuser_err("bogus", syntax)
    );
    let carol = getuser(&mut r, "carol");
    assert_eq!(field(&carol, "flags"), &bulks(&["on", "sanitize-payload"]));
    assert_eq!(field(&carol, "keys"), &b("~a*"));
    assert_eq!(field(&carol, "commands"), &b("-@all +get"));
    assert_eq!(
        login(&srv, "carol", "p1").call(&["SET", "a1", "v"]),
        noperm_cmd("carol", "set")
    );
}

#[test]
fn getuser_and_list_describe_flags_passwords_commands_keys_and_channels() {
    let srv = start();
    let mut r = connect(&srv);
    setuser(
        &mut r,
        "u",
        &[
            "on",
            ">p1",
            "~k*",
            "%R~r*",
            "%W~w*",
            "&ch*",
            "&news.*",
            "+@read",
            "-get",
            "+set",
            "+config|get",
        ],
    );
    let u = getuser(&mut r, "u");
    assert_eq!(field(&u, "flags"), &bulks(&["on", "sanitize-payload"]));
    assert_eq!(field(&u, "passwords"), &bulks(&[SHA_P1]));
    assert_eq!(
        field(&u, "commands"),
        &b("-@all +@read -get +set +config|get")
    );
    assert_eq!(field(&u, "keys"), &b("~k* %R~r* %W~w*"));
    assert_eq!(field(&u, "channels"), &b("&ch* &news.*"));
    assert_eq!(
        acl_list(&mut r)[1],
        format!(
            "user u on sanitize-payload #{SHA_P1} ~k* %R~r* %W~w* resetchannels &ch* \
             &news.* -@all +@read -get +set +config|get"
        )
    );

    setuser(&mut r, "u", &["allkeys", "allchannels", "allcommands"]);
    let u = getuser(&mut r, "u");
    assert_eq!(field(&u, "commands"), &b("+@all"));
    assert_eq!(field(&u, "keys"), &b("~*"));
    assert_eq!(field(&u, "channels"), &b("&*"));
    assert_eq!(
        acl_list(&mut r)[1],
        format!("user u on sanitize-payload #{SHA_P1} ~* &* +@all")
    );

    setuser(&mut r, "u", &["-flushall"]);
    assert_eq!(
        field(&getuser(&mut r, "u"), "commands"),
        &b("+@all -flushall")
    );

    setuser(&mut r, "u", &["resetkeys", "resetchannels", "nocommands"]);
    let u = getuser(&mut r, "u");
    assert_eq!(field(&u, "commands"), &b("-@all"));
    assert_eq!(field(&u, "keys"), &b(""));
    assert_eq!(field(&u, "channels"), &b(""));
    assert_eq!(
        acl_list(&mut r)[1],
        format!("user u on sanitize-payload #{SHA_P1} resetchannels -@all")
    );

    // reset: back to a new user's state.
    setuser(&mut r, "u", &["~*", "&*", "+@all", "nopass"]);
    setuser(&mut r, "u", &["reset"]);
    assert_eq!(
        acl_list(&mut r)[1],
        "user u off sanitize-payload resetchannels -@all"
    );
    let u = getuser(&mut r, "u");
    assert_eq!(field(&u, "flags"), &bulks(&["off", "sanitize-payload"]));
    assert_eq!(field(&u, "passwords"), &arr(vec![]));
}

#[test]
fn deluser_removes_users_and_disconnects_their_clients_but_never_default() {
    let srv = start();
    let mut admin = connect(&srv);
    let protect = e("ERR The 'default' user cannot be removed");
    assert_eq!(admin.call(&["ACL", "DELUSER", "default"]), protect);
    setuser(&mut admin, "a", &[]);
    assert_eq!(admin.call(&["ACL", "DELUSER", "a", "default"]), protect);
    assert_eq!(
        admin.call(&["ACL", "USERS"]),
        bulks(&["a", "default"]),
        "nothing is deleted when default is named"
    );
    assert_eq!(admin.call(&["ACL", "DELUSER", "nosuch"]), int(0));
    setuser(&mut admin, "b", &[]);
    assert_eq!(admin.call(&["ACL", "DELUSER", "a", "b", "nosuch"]), int(2));
    assert_eq!(admin.call(&["ACL", "USERS"]), bulks(&["default"]));

    setuser(&mut admin, "c", &["on", ">pw", "+@all", "~*"]);
    let mut c1 = login(&srv, "c", "pw");
    let mut c2 = login(&srv, "c", "pw");
    let mut bystander = connect(&srv);
    assert_eq!(admin.call(&["ACL", "DELUSER", "c"]), int(1));
    assert_closed(&mut c1, "c1 of the deleted user");
    assert_closed(&mut c2, "c2 of the deleted user");
    assert_eq!(bystander.call(&["PING"]), V::Simple("PONG".into()));
    assert_eq!(
        connect(&srv).call(&["AUTH", "c", "pw"]),
        e(WRONGPASS),
        "the deleted user cannot log in"
    );

    // A client that deletes its own user gets the reply, then is closed.
    setuser(&mut admin, "c", &["on", ">pw", "+@all", "~*"]);
    let mut own = login(&srv, "c", "pw");
    assert_eq!(own.call(&["ACL", "DELUSER", "c"]), int(1));
    assert_closed(&mut own, "the client that deleted its own user");
    assert_eq!(admin.call(&["ACL", "USERS"]), bulks(&["default"]));
}

// ---------------------------------------------------------------------------------------
// The checks

#[test]
fn commands_and_categories_are_checked_with_the_noperm_text() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "u", &["on", ">pw", "~*", "&*", "+get"]);
    let mut c = login(&srv, "u", "pw");
    assert_eq!(c.call(&["GET", "k"]), V::Nil);
    assert_eq!(c.call(&["SET", "k", "v"]), noperm_cmd("u", "set"));
    assert_eq!(
        c.call(&["SeT", "k", "v"]),
        noperm_cmd("u", "set"),
        "the text names the command in lower case"
    );
    assert_eq!(
        c.call(&["NOSUCHCMD", "x"]),
        e("ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' "),
        "an unknown command is unknown before it is denied"
    );

    setuser(&mut admin, "u", &["-@all", "+@read"]);
    assert_eq!(c.call(&["GET", "k"]), V::Nil);
    assert_eq!(c.call(&["STRLEN", "k"]), int(0));
    assert_eq!(c.call(&["SET", "k", "v"]), noperm_cmd("u", "set"));
    assert_eq!(c.call(&["DEL", "k"]), noperm_cmd("u", "del"));

    setuser(&mut admin, "u", &["+@all", "-@dangerous"]);
    assert_eq!(c.call(&["SET", "k", "v"]), ok());
    assert_eq!(c.call(&["FLUSHALL"]), noperm_cmd("u", "flushall"));
    assert_eq!(c.call(&["KEYS", "*"]), noperm_cmd("u", "keys"));
    assert_eq!(c.call(&["GET", "k"]), b("v"));

    setuser(&mut admin, "u", &["allcommands", "-flushall"]);
    assert_eq!(c.call(&["KEYS", "*"]), bulks(&["k"]));
    assert_eq!(c.call(&["FLUSHALL"]), noperm_cmd("u", "flushall"));

    setuser(&mut admin, "u", &["+@all", "-@string", "+get"]);
    assert_eq!(c.call(&["GET", "k"]), b("v"));
    assert_eq!(c.call(&["APPEND", "k", "x"]), noperm_cmd("u", "append"));
    assert_eq!(c.call(&["HSET", "h", "f", "v"]), int(1));

    setuser(&mut admin, "u", &["nocommands"]);
    assert_eq!(c.call(&["GET", "k"]), noperm_cmd("u", "get"));
    assert_eq!(c.call(&["PING"]), noperm_cmd("u", "ping"));
    assert_eq!(
        admin.call(&["GET", "k"]),
        b("v"),
        "a denied command has no effect, other users are not affected"
    );
}

#[test]
fn subcommand_rules_allow_and_refuse_single_subcommands() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(
        &mut admin,
        "u",
        &["on", ">pw", "~*", "&*", "+config|get", "+client|id"],
    );
    let mut c = login(&srv, "u", "pw");
    assert!(matches!(c.call(&["CONFIG", "GET", "maxmemory"]), V::Arr(_)));
    assert_eq!(
        c.call(&["CONFIG", "SET", "maxmemory", "0"]),
        noperm_cmd("u", "config|set")
    );
    assert_eq!(
        c.call(&["CONFIG", "RESETSTAT"]),
        noperm_cmd("u", "config|resetstat")
    );
    assert!(matches!(c.call(&["CLIENT", "ID"]), V::Int(_)));
    assert_eq!(c.call(&["CLIENT", "LIST"]), noperm_cmd("u", "client|list"));

    // The whole command minus one subcommand.
    setuser(&mut admin, "u", &["+config", "-config|set"]);
    assert!(matches!(c.call(&["CONFIG", "GET", "maxmemory"]), V::Arr(_)));
    assert_eq!(c.call(&["CONFIG", "RESETSTAT"]), ok());
    assert_eq!(
        c.call(&["CONFIG", "SET", "maxmemory", "0"]),
        noperm_cmd("u", "config|set")
    );
    assert_eq!(c.call(&["ACL", "WHOAMI"]), noperm_cmd("u", "acl|whoami"));
}

#[test]
fn key_patterns_including_read_and_write_only_ones_are_checked() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(
        &mut admin,
        "u",
        &["on", ">pw", "+@all", "~k*", "%R~r*", "%W~w*"],
    );
    let mut c = login(&srv, "u", "pw");
    assert_eq!(c.call(&["SET", "k1", "v"]), ok());
    assert_eq!(c.call(&["GET", "k1"]), b("v"));
    assert_eq!(c.call(&["SET", "other", "v"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["GET", "other"]), e(NOPERM_KEY));
    // %R~: read only.
    assert_eq!(c.call(&["GET", "r1"]), V::Nil);
    assert_eq!(c.call(&["SET", "r1", "v"]), e(NOPERM_KEY));
    // %W~: write only.
    assert_eq!(c.call(&["SET", "w1", "v"]), ok());
    assert_eq!(c.call(&["GET", "w1"]), e(NOPERM_KEY));
    // Multi-key commands need every key.
    assert_eq!(c.call(&["MSET", "k1", "a", "other", "b"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["MGET", "k1", "other"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["MGET", "k1", "k2"]), arr(vec![b("v"), V::Nil]));
    assert_eq!(c.call(&["DEL", "k1", "w1", "other"]), e(NOPERM_KEY));
    assert_eq!(
        admin.call(&["GET", "k1"]),
        b("v"),
        "the refused MSET wrote nothing"
    );
    assert_eq!(admin.call(&["EXISTS", "other"]), int(0));
    // Commands without keys are not affected.
    assert_eq!(c.call(&["PING"]), V::Simple("PONG".into()));

    setuser(&mut admin, "u", &["allkeys"]);
    assert_eq!(c.call(&["SET", "other", "v"]), ok());
    assert_eq!(c.call(&["GET", "w1"]), b("v"));
    setuser(&mut admin, "u", &["resetkeys", "~other"]);
    assert_eq!(c.call(&["GET", "k1"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["GET", "other"]), b("v"));
}

#[test]
fn channel_patterns_are_checked_and_psubscribe_needs_a_literal_match() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(
        &mut admin,
        "u",
        &["on", ">pw", "+@all", "~*", "&news.*", "&exact"],
    );
    let mut c = login(&srv, "u", "pw");
    assert_eq!(c.call(&["PUBLISH", "news.tech", "hi"]), int(0));
    assert_eq!(c.call(&["PUBLISH", "exact", "hi"]), int(0));
    assert_eq!(c.call(&["PUBLISH", "other", "hi"]), e(NOPERM_CHANNEL));

    // SUBSCRIBE matches each channel against the patterns; one bad channel refuses all.
    assert_eq!(c.call(&["SUBSCRIBE", "other"]), e(NOPERM_CHANNEL));
    assert_eq!(c.call(&["SUBSCRIBE", "news.a", "other"]), e(NOPERM_CHANNEL));
    assert_eq!(
        c.call(&["PING"]),
        V::Simple("PONG".into()),
        "a refused SUBSCRIBE subscribes to nothing"
    );
    // PSUBSCRIBE patterns must be one of the user's patterns, literally.
    assert_eq!(c.call(&["PSUBSCRIBE", "news.a*"]), e(NOPERM_CHANNEL));
    assert_eq!(c.call(&["PSUBSCRIBE", "*"]), e(NOPERM_CHANNEL));
    assert_eq!(
        c.call(&["PSUBSCRIBE", "news.*", "other"]),
        e(NOPERM_CHANNEL)
    );

    let mut s = login(&srv, "u", "pw");
    assert_eq!(
        s.call(&["SUBSCRIBE", "news.x"]),
        arr(vec![b("subscribe"), b("news.x"), int(1)])
    );
    let mut p = login(&srv, "u", "pw");
    assert_eq!(
        p.call(&["PSUBSCRIBE", "news.*"]),
        arr(vec![b("psubscribe"), b("news.*"), int(1)])
    );
    assert_eq!(
        p.call(&["PSUBSCRIBE", "exact"]),
        arr(vec![b("psubscribe"), b("exact"), int(2)])
    );

    setuser(&mut admin, "u", &["allchannels"]);
    assert_eq!(c.call(&["PUBLISH", "other", "hi"]), int(0));
    setuser(&mut admin, "u", &["resetchannels"]);
    assert_eq!(c.call(&["PUBLISH", "exact", "hi"]), e(NOPERM_CHANNEL));
}

#[test]
fn a_denied_command_in_multi_is_refused_at_queue_time_and_exec_aborts() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(
        &mut admin,
        "u",
        &["on", ">pw", "+@all", "-del", "~k*", "&*"],
    );
    let mut c = login(&srv, "u", "pw");
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "k1", "v"]), V::Simple("QUEUED".into()));
    assert_eq!(c.call(&["DEL", "k1"]), noperm_cmd("u", "del"));
    assert_eq!(c.call(&["SET", "other", "v"]), e(NOPERM_KEY));
    assert_eq!(
        c.call(&["EXEC"]),
        e("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(admin.call(&["GET", "k1"]), V::Nil, "nothing of it ran");

    let log = acl_log(&mut admin, &[]);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(field(&log[0], "reason"), &b("key"));
    assert_eq!(field(&log[0], "context"), &b("multi"));
    assert_eq!(field(&log[0], "object"), &b("other"));
    assert_eq!(field(&log[1], "reason"), &b("command"));
    assert_eq!(field(&log[1], "context"), &b("multi"));
    assert_eq!(field(&log[1], "object"), &b("del"));
}

#[test]
fn rules_changed_between_queueing_and_exec_are_checked_at_exec() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "u", &["on", ">pw", "+@all", "~*", "&*"]);
    let mut c = login(&srv, "u", "pw");
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["SET", "k", "v"]), V::Simple("QUEUED".into()));
    assert_eq!(c.call(&["INCR", "n"]), V::Simple("QUEUED".into()));
    setuser(&mut admin, "u", &["-set"]);
    assert_eq!(
        c.call(&["EXEC"]),
        arr(vec![
            e(
                "NOPERM ACLs rules changed between the moment the transaction was accumulated \
               and the EXEC call. This command is no longer allowed for the following reason: \
               no permission to execute the command or subcommand"
            ),
            int(1),
        ])
    );
    assert_eq!(admin.call(&["GET", "k"]), V::Nil);
}

/// SORT's BY (with a pattern) and GET read keys named by patterns: only a user who may
/// read every key may use them (Redis's texts); BY without a pattern needs nothing more.
#[test]
fn sort_by_and_get_need_read_access_to_every_key() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "u", &["on", ">pw", "+@all", "~mylist"]);
    assert_eq!(admin.call(&["RPUSH", "mylist", "2", "1"]), int(2));
    let mut c = login(&srv, "u", "pw");
    assert_eq!(c.call(&["SORT", "mylist"]), bulks(&["1", "2"]));
    assert_eq!(
        c.call(&["SORT", "mylist", "BY", "w_*"]),
        e("ERR BY option of SORT denied due to insufficient ACL permissions.")
    );
    assert_eq!(
        c.call(&["SORT", "mylist", "GET", "#"]),
        e("ERR GET option of SORT denied due to insufficient ACL permissions.")
    );
    assert_eq!(
        c.call(&["SORT", "mylist", "BY", "nosort"]),
        bulks(&["2", "1"])
    );
    setuser(&mut admin, "u", &["%R~*"]);
    assert_eq!(c.call(&["SORT", "mylist", "GET", "#"]), bulks(&["1", "2"]));
}

/// A client blocked in BLPOP is checked again when woken: rules changed while it waited
/// refuse the pop, and the element stays for others.
#[test]
fn a_blocked_command_is_checked_again_when_woken() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "u", &["on", ">pw", "+@all", "~*"]);
    let mut c = login(&srv, "u", "pw");
    c.send(&["BLPOP", "q", "0"]);
    let mut con = srv.client();
    common::wait_blocked(&mut con, 1);
    setuser(&mut admin, "u", &["resetkeys"]);
    assert_eq!(admin.call(&["LPUSH", "q", "x"]), int(1));
    assert_eq!(c.read(), e(NOPERM_KEY));
    assert_eq!(admin.call(&["LLEN", "q"]), int(1));
    assert_eq!(c.call(&["PING"]), V::Simple("PONG".into()));
}

#[test]
fn permission_changes_reach_connected_clients_at_once() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "u", &["on", ">pw", "~*", "&*", "+get"]);
    let mut c = login(&srv, "u", "pw");
    assert_eq!(c.call(&["GET", "k"]), V::Nil);
    assert_eq!(c.call(&["SET", "k", "v"]), noperm_cmd("u", "set"));

    setuser(&mut admin, "u", &["+set"]);
    assert_eq!(c.call(&["SET", "k", "v"]), ok());
    setuser(&mut admin, "u", &["-get"]);
    assert_eq!(c.call(&["GET", "k"]), noperm_cmd("u", "get"));
    setuser(&mut admin, "u", &["resetkeys", "~other"]);
    assert_eq!(c.call(&["SET", "k", "v"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["SET", "other", "v"]), ok());
    setuser(&mut admin, "u", &["resetchannels", "+publish"]);
    assert_eq!(c.call(&["PUBLISH", "ch", "x"]), e(NOPERM_CHANNEL));

    // A change of password does not log existing connections out.
    setuser(&mut admin, "u", &["resetpass", ">new"]);
    assert_eq!(c.call(&["ACL", "WHOAMI"]), noperm_cmd("u", "acl|whoami"));
    assert_eq!(c.call(&["SET", "other", "w"]), ok());
}

// ---------------------------------------------------------------------------------------
// ACL CAT / GENPASS / DRYRUN / LOG / HELP

#[test]
fn acl_cat_lists_the_categories_and_their_commands() {
    let srv = start();
    let mut r = connect(&srv);
    assert_eq!(
        r.call(&["ACL", "CAT"]),
        bulks(&[
            "keyspace",
            "read",
            "write",
            "set",
            "sortedset",
            "list",
            "hash",
            "string",
            "bitmap",
            "hyperloglog",
            "geo",
            "stream",
            "pubsub",
            "admin",
            "fast",
            "slow",
            "blocking",
            "dangerous",
            "connection",
            "transaction",
            "scripting",
        ])
    );
    let mut members = |cat: &str| -> Vec<String> {
        match r.call(&["ACL", "CAT", cat]) {
            V::Arr(items) => items.iter().map(text).collect(),
            other => panic!("ACL CAT {cat}: {other:?}"),
        }
    };
    let has = |list: &[String], cmd: &str| list.iter().any(|c| c == cmd);
    let read = members("read");
    assert!(has(&read, "get") && has(&read, "mget"), "{read:?}");
    assert!(!has(&read, "set"), "{read:?}");
    let string = members("string");
    assert!(has(&string, "get") && has(&string, "set"), "{string:?}");
    assert!(!has(&string, "hset"), "{string:?}");
    let write = members("write");
    assert!(has(&write, "set") && !has(&write, "get"), "{write:?}");
    let dangerous = members("dangerous");
    assert!(
        has(&dangerous, "flushall") && has(&dangerous, "keys"),
        "{dangerous:?}"
    );
    assert!(!has(&dangerous, "get"), "{dangerous:?}");
    assert!(has(&members("pubsub"), "publish"));
    assert!(has(&members("transaction"), "multi"));
    assert_eq!(members("READ"), read, "category names are case-insensitive");

    assert_eq!(
        r.call(&["ACL", "CAT", "nosuch"]),
        e("ERR Unknown category 'nosuch'")
    );
}

#[test]
fn acl_genpass_returns_random_hex_of_the_asked_size() {
    let srv = start();
    let mut r = connect(&srv);
    let is_hex = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    };
    let first = text(&r.call(&["ACL", "GENPASS"]));
    let second = text(&r.call(&["ACL", "GENPASS"]));
    assert_eq!(first.len(), 64, "{first}");
    assert!(is_hex(&first), "{first}");
    assert_ne!(first, second);
    for (bits, chars) in [("1", 1), ("5", 2), ("128", 32), ("4096", 1024)] {
        let p = text(&r.call(&["ACL", "GENPASS", bits]));
        assert_eq!(p.len(), chars, "GENPASS {bits}: {p}");
        assert!(is_hex(&p), "{p}");
    }
    let range = e(
        "ERR ACL GENPASS argument must be the number of bits for the output \
                   password, a positive number up to 4096",
    );
    assert_eq!(r.call(&["ACL", "GENPASS", "0"]), range);
    assert_eq!(r.call(&["ACL", "GENPASS", "-8"]), range);
    assert_eq!(r.call(&["ACL", "GENPASS", "4097"]), range);
    assert_eq!(
        r.call(&["ACL", "GENPASS", "abc"]),
        e("ERR value is not an integer or out of range")
    );
}

#[test]
fn acl_dryrun_reports_what_a_user_may_run_without_running_or_logging_it() {
    let srv = start();
    let mut r = connect(&srv);
    setuser(
        &mut r,
        "u",
        &["on", "nopass", "~k*", "&ch", "+get", "+set", "+publish"],
    );
    assert_eq!(r.call(&["ACL", "DRYRUN", "u", "set", "k1", "v"]), ok());
    assert_eq!(r.call(&["GET", "k1"]), V::Nil, "DRYRUN runs nothing");
    assert_eq!(
        r.call(&["ACL", "DRYRUN", "u", "del", "k1"]),
        b("User u has no permissions to run the 'del' command")
    );
    assert_eq!(
        r.call(&["ACL", "DRYRUN", "u", "config", "get", "x"]),
        b("User u has no permissions to run the 'config|get' command")
    );
    assert_eq!(
        r.call(&["ACL", "DRYRUN", "u", "get", "other"]),
        b("User u has no permissions to access the 'other' key")
    );
    assert_eq!(
        r.call(&["ACL", "DRYRUN", "u", "publish", "nope", "x"]),
        b("User u has no permissions to access the 'nope' channel")
    );
    assert_eq!(
        r.call(&["ACL", "DRYRUN", "nosuch", "get", "k"]),
        e("ERR User 'nosuch' not found")
    );
    assert_eq!(
        r.call(&["ACL", "DRYRUN", "u", "nosuchcmd"]),
        e("ERR Command 'nosuchcmd' not found")
    );
    assert_eq!(
        r.call(&["ACL", "DRYRUN", "u", "get"]),
        e("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(acl_log(&mut r, &[]), Vec::<Vec<(String, V)>>::new());
    assert_eq!(info_field(&mut r, "stats", "acl_access_denied_cmd"), "0");
}

/// Asserts the fields of one ACL LOG entry that do not depend on time.
fn assert_entry(
    entry: &[(String, V)],
    count: i64,
    reason: &str,
    context: &str,
    object: &str,
    user: &str,
) {
    assert_eq!(field(entry, "count"), &int(count), "{entry:?}");
    assert_eq!(field(entry, "reason"), &b(reason), "{entry:?}");
    assert_eq!(field(entry, "context"), &b(context), "{entry:?}");
    assert_eq!(field(entry, "object"), &b(object), "{entry:?}");
    assert_eq!(field(entry, "username"), &b(user), "{entry:?}");
}

#[test]
fn acl_log_records_denials_aggregates_repeats_and_resets() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(
        &mut admin,
        "u",
        &["on", ">pw", "~k*", "&ch", "+get", "+publish"],
    );
    let mut c = login(&srv, "u", "pw");
    assert_eq!(acl_log(&mut admin, &[]).len(), 0);

    for _ in 0..3 {
        assert_eq!(c.call(&["DEL", "k1"]), noperm_cmd("u", "del"));
    }
    let log = acl_log(&mut admin, &[]);
    assert_eq!(log.len(), 1, "repeated denials are one entry: {log:?}");
    let names: Vec<&str> = log[0].iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "count",
            "reason",
            "context",
            "object",
            "username",
            "age-seconds",
            "client-info",
            "entry-id",
            "timestamp-created",
            "timestamp-last-updated",
        ]
    );
    assert_entry(&log[0], 3, "command", "toplevel", "del", "u");
    let age: f64 = text(field(&log[0], "age-seconds"))
        .parse()
        .expect("age-seconds");
    assert!(age >= 0.0, "{age}");
    let cinfo = text(field(&log[0], "client-info"));
    assert!(cinfo.starts_with("id="), "{cinfo}");
    assert!(cinfo.split_whitespace().any(|t| t == "user=u"), "{cinfo}");
    let created = as_int(field(&log[0], "timestamp-created"));
    let updated = as_int(field(&log[0], "timestamp-last-updated"));
    assert!(
        created > 1_600_000_000_000,
        "milliseconds since the epoch: {created}"
    );
    assert!(updated >= created, "{updated} < {created}");

    assert_eq!(c.call(&["GET", "other"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["PUBLISH", "nope", "x"]), e(NOPERM_CHANNEL));
    let mut bad = connect(&srv);
    assert_eq!(bad.call(&["AUTH", "u", "wrong"]), e(WRONGPASS));
    // The same denial again moves its entry to the front.
    assert_eq!(c.call(&["DEL", "k1"]), noperm_cmd("u", "del"));

    let log = acl_log(&mut admin, &[]);
    assert_eq!(log.len(), 4, "{log:?}");
    assert_entry(&log[0], 4, "command", "toplevel", "del", "u");
    assert_entry(&log[1], 1, "auth", "toplevel", "AUTH", "u");
    assert_entry(&log[2], 1, "channel", "toplevel", "nope", "u");
    assert_entry(&log[3], 1, "key", "toplevel", "other", "u");
    let ids: Vec<i64> = log.iter().map(|en| as_int(field(en, "entry-id"))).collect();
    assert!(
        ids[1] > ids[2] && ids[2] > ids[3] && ids[0] < ids[3],
        "entry ids follow creation order: {ids:?}"
    );

    let two = acl_log(&mut admin, &["2"]);
    assert_eq!(two.len(), 2);
    assert_entry(&two[0], 4, "command", "toplevel", "del", "u");
    assert_entry(&two[1], 1, "auth", "toplevel", "AUTH", "u");
    assert_eq!(acl_log(&mut admin, &["0"]).len(), 0);
    assert_eq!(acl_log(&mut admin, &["100"]).len(), 4);
    assert_eq!(
        admin.call(&["ACL", "LOG", "abc"]),
        e("ERR value is not an integer or out of range")
    );

    assert_eq!(admin.call(&["ACL", "LOG", "RESET"]), ok());
    assert_eq!(acl_log(&mut admin, &[]).len(), 0);
    assert_eq!(c.call(&["DEL", "k1"]), noperm_cmd("u", "del"));
    let log = acl_log(&mut admin, &[]);
    assert_eq!(log.len(), 1);
    assert_entry(&log[0], 1, "command", "toplevel", "del", "u");
}

#[test]
fn acl_help_lists_the_subcommands_and_unknown_ones_are_refused() {
    let srv = start();
    let mut r = connect(&srv);
    assert_eq!(
        r.call(&["ACL", "HELP"]),
        arr(
            [
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "DELUSER <username> [<username> ...]",
                "    Delete a list of users.",
                "DRYRUN <username> <command> [<arg> ...]",
                "    Returns whether the user can execute the given command without executing the command.",
                "GETUSER <username>",
                "    Get the user's details.",
                "GENPASS [<bits>]",
                "    Generate a secure 256-bit user password. The optional `bits` argument can",
                "    be used to specify a different size.",
                "LIST",
                "    Show users details in config file format.",
                "LOAD",
                "    Reload users from the ACL file.",
                "LOG [<count> | RESET]",
                "    Show the ACL log entries.",
                "SAVE",
                "    Save the current config to the ACL file.",
                "SETUSER <username> <attribute> [<attribute> ...]",
                "    Create or modify a user with the specified attributes.",
                "USERS",
                "    List all the registered usernames.",
                "WHOAMI",
                "    Return the current connection username.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| V::Simple(l.to_string()))
            .collect()
        )
    );
    assert_eq!(
        r.call(&["ACL", "NOSUCH"]),
        e("ERR unknown subcommand 'NOSUCH'. Try ACL HELP.")
    );
}

// ---------------------------------------------------------------------------------------
// CLIENT, INFO

#[test]
fn client_list_shows_the_user_and_client_kill_user_closes_its_connections() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "u", &["on", ">pw", "+@all", "~*", "&*"]);
    let mut c1 = login(&srv, "u", "pw");
    let mut c2 = login(&srv, "u", "pw");
    let info = text(&c1.call(&["CLIENT", "INFO"]));
    assert!(info.split_whitespace().any(|t| t == "user=u"), "{info}");
    assert_eq!(clients_of(&mut admin, "u").len(), 2);
    assert_eq!(clients_of(&mut admin, "default").len(), 1);

    assert_eq!(admin.call(&["CLIENT", "KILL", "USER", "u"]), int(2));
    assert_closed(&mut c1, "c1");
    assert_closed(&mut c2, "c2");
    wait_clients_of(&mut admin, "u", 0);
    assert_eq!(admin.call(&["CLIENT", "KILL", "USER", "u"]), int(0));
    assert_eq!(
        admin.call(&["CLIENT", "KILL", "USER", "nosuch"]),
        e("ERR No such user 'nosuch'")
    );
    assert_eq!(admin.call(&["PING"]), V::Simple("PONG".into()));
}

#[test]
fn info_stats_count_denials_by_kind() {
    let srv = start();
    let mut admin = connect(&srv);
    let fields = [
        "acl_access_denied_auth",
        "acl_access_denied_cmd",
        "acl_access_denied_key",
        "acl_access_denied_channel",
    ];
    let counts =
        |r: &mut Raw| -> Vec<String> { fields.iter().map(|f| info_field(r, "stats", f)).collect() };
    assert_eq!(counts(&mut admin), ["0", "0", "0", "0"]);

    setuser(
        &mut admin,
        "u",
        &["on", ">pw", "~k*", "&ch", "+get", "+publish", "+multi"],
    );
    let mut c = connect(&srv);
    assert_eq!(c.call(&["AUTH", "u", "wrong"]), e(WRONGPASS));
    assert_eq!(c.call(&["AUTH", "nosuch", "x"]), e(WRONGPASS));
    assert_eq!(c.call(&["HELLO", "3", "AUTH", "u", "wrong"]), e(WRONGPASS));
    assert_eq!(counts(&mut admin), ["3", "0", "0", "0"]);

    assert_eq!(c.call(&["AUTH", "u", "pw"]), ok());
    assert_eq!(c.call(&["SET", "k", "v"]), noperm_cmd("u", "set"));
    assert_eq!(c.call(&["GET", "x"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["GET", "y"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["PUBLISH", "x", "m"]), e(NOPERM_CHANNEL));
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(c.call(&["DEL", "k"]), noperm_cmd("u", "del"));
    assert_eq!(counts(&mut admin), ["3", "2", "2", "1"]);
    assert_eq!(
        admin.call(&["ACL", "DRYRUN", "u", "del", "k"]),
        b("User u has no permissions to run the 'del' command")
    );
    assert_eq!(
        counts(&mut admin),
        ["3", "2", "2", "1"],
        "DRYRUN counts nothing"
    );
}

// ---------------------------------------------------------------------------------------
// The ACL file

#[test]
fn acl_save_and_load_without_an_acl_file_answer_the_redis_error() {
    let srv = start();
    let mut r = connect(&srv);
    assert_eq!(r.call(&["ACL", "SAVE"]), e(NO_ACLFILE));
    assert_eq!(r.call(&["ACL", "LOAD"]), e(NO_ACLFILE));
}

#[test]
fn users_of_the_acl_file_are_loaded_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.acl");
    std::fs::write(
        &path,
        "user alice on >secret ~a* &news +@all -flushall\n\nuser bob off nopass\n",
    )
    .expect("write");
    let srv = start_with_aclfile(&path);
    let mut r = connect(&srv);
    assert_eq!(
        r.call(&["ACL", "USERS"]),
        bulks(&["alice", "bob", "default"])
    );
    assert_eq!(
        acl_list(&mut r),
        [
            format!(
                "user alice on sanitize-payload #{SHA_SECRET} ~a* resetchannels &news +@all \
                 -flushall"
            ),
            "user bob off nopass sanitize-payload resetchannels -@all".to_string(),
            "user default on nopass sanitize-payload ~* &* +@all".to_string(),
        ]
    );
    let mut a = login(&srv, "alice", "secret");
    assert_eq!(a.call(&["SET", "a1", "v"]), ok());
    assert_eq!(a.call(&["SET", "b1", "v"]), e(NOPERM_KEY));
    assert_eq!(a.call(&["FLUSHALL"]), noperm_cmd("alice", "flushall"));
    assert_eq!(connect(&srv).call(&["AUTH", "bob", "x"]), e(WRONGPASS));
}

#[test]
fn acl_save_writes_the_users_and_acl_load_restores_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.acl");
    std::fs::write(&path, "user default on nopass ~* &* +@all\n").expect("write");
    let srv = start_with_aclfile(&path);
    let mut r = connect(&srv);
    setuser(
        &mut r,
        "bob",
        &["on", ">p1", "~b*", "&ch", "-@all", "+get", "+config|get"],
    );
    assert_eq!(r.call(&["ACL", "SAVE"]), ok());
    let saved = std::fs::read_to_string(&path).expect("read");
    let listed = acl_list(&mut r);
    assert_eq!(
        saved.lines().collect::<Vec<_>>(),
        listed,
        "ACL SAVE writes ACL LIST's lines: {saved:?}"
    );
    assert!(saved.ends_with('\n'), "{saved:?}");
    assert!(!saved.contains("p1"), "no clear text password: {saved:?}");

    // Changes after the save are dropped by ACL LOAD.
    let mut bob = login(&srv, "bob", "p1");
    setuser(&mut r, "carol", &["on", "nopass"]);
    setuser(&mut r, "default", &["resetchannels"]);
    assert_eq!(r.call(&["ACL", "DELUSER", "bob"]), int(1));
    assert_closed(&mut bob, "bob after DELUSER");
    assert_eq!(r.call(&["ACL", "USERS"]), bulks(&["carol", "default"]));
    let mut carol = login(&srv, "carol", "x");
    assert_eq!(r.call(&["ACL", "LOAD"]), ok());
    assert_eq!(r.call(&["ACL", "USERS"]), bulks(&["bob", "default"]));
    assert_eq!(acl_list(&mut r), listed);
    assert_closed(&mut carol, "a user removed by ACL LOAD is disconnected");
    let mut bob = login(&srv, "bob", "p1");
    assert_eq!(bob.call(&["GET", "b1"]), V::Nil);
    assert_eq!(bob.call(&["SET", "b1", "v"]), noperm_cmd("bob", "set"));
    assert!(matches!(
        bob.call(&["CONFIG", "GET", "maxmemory"]),
        V::Arr(_)
    ));
    assert_eq!(
        r.call(&["PUBLISH", "x", "y"]),
        int(0),
        "the default user's channels came back from the file"
    );
}

#[test]
fn acl_load_of_a_bad_file_names_the_line_and_keeps_the_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("users.acl");
    std::fs::write(&path, "user alice on >secret ~* +@all\n").expect("write");
    let srv = start_with_aclfile(&path);
    let mut r = connect(&srv);
    setuser(&mut r, "zed", &["on", ">p1", "+@all", "~*"]);
    let before = acl_list(&mut r);
    let p = path.display();

    for (file, error) in [
        (
            "user alice on >secret ~* +@all\nuser eve on +nosuchcmd\n",
            format!(
                "ERR {p}:2: Error in applying operation '+nosuchcmd': Unknown command or \
                 category name in ACL. {LOAD_ROLLBACK}"
            ),
        ),
        (
            "user alice on >secret ~* +@all\n\nuser eve on bogus\n",
            format!("ERR {p}:3: Syntax error. {LOAD_ROLLBACK}"),
        ),
        (
            "user alice on >secret ~* +@all\nalice on\n",
            format!(
                "ERR {p}:2 should start with user keyword followed by the username. \
                 {LOAD_ROLLBACK}"
            ),
        ),
        (
            "user alice on\nuser zed on\nuser alice off\n",
            format!("ERR WARNING: Duplicate user 'alice' found on line 3. {LOAD_ROLLBACK}"),
        ),
        // Every unknown command of a line is named; of other errors only the first.
        (
            "user eve on +nosuch1 bogus +nosuch2 bogus2\n",
            format!(
                "ERR {p}:1: Error in applying operation '+nosuch1': Unknown command or \
                 category name in ACL. {p}:1: Syntax error. {p}:1: Error in applying \
                 operation '+nosuch2': Unknown command or category name in ACL. \
                 {LOAD_ROLLBACK}"
            ),
        ),
    ] {
        std::fs::write(&path, file).expect("write");
        assert_eq!(r.call(&["ACL", "LOAD"]), e(&error), "{file:?}");
        assert_eq!(
            acl_list(&mut r),
            before,
            "a refused ACL LOAD changes nothing"
        );
    }
    assert_eq!(login(&srv, "zed", "p1").call(&["ACL", "WHOAMI"]), b("zed"));
    assert_eq!(connect(&srv).call(&["AUTH", "eve", ""]), e(WRONGPASS));
}

// ---------------------------------------------------------------------------------------
// Scripts

#[test]
fn scripts_run_normally_for_a_user_allowed_every_command_key_and_channel() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "full", &["on", ">pw", "+@all", "~*", "&*"]);
    let mut c = login(&srv, "full", "pw");
    let sha = text(&c.call(&["SCRIPT", "LOAD", "return 1"]));
    assert_eq!(c.call(&["EVAL", "return 1", "0"]), int(1));
    assert_eq!(c.call(&["EVALSHA", &sha, "0"]), int(1));
    assert_eq!(c.call(&["EVAL_RO", "return 1", "0"]), int(1));
    assert_eq!(c.call(&["EVALSHA_RO", &sha, "0"]), int(1));
    assert_eq!(c.call(&["SCRIPT", "EXISTS", &sha]), arr(vec![int(1)]));
    assert_eq!(
        c.call(&["EVAL", "return redis.call('SET', KEYS[1], 'v')", "1", "k"]),
        ok()
    );
    assert_eq!(admin.call(&["GET", "k"]), b("v"));
}

/// The reply of a script whose call was refused: Redis's "ACL failure in script".
fn script_refusal(why: &str, sha: &str) -> V {
    e(&format!(
        "ERR ACL failure in script: {why} script: {sha}, on @user_script:1."
    ))
}

const ONE_OK_ONE_REFUSED: &str =
    "redis.call('SET', 'a:1', 'x'); return redis.call('SET', 'b:1', 'y')";

#[test]
fn a_limited_users_script_has_each_call_checked_and_the_refusals_logged() {
    let srv = start();
    let mut admin = connect(&srv);
    setuser(&mut admin, "app", &["on", ">pw", "~a:*", "+@all", "-incr"]);
    let mut c = login(&srv, "app", "pw");
    let sha = text(&c.call(&["SCRIPT", "LOAD", ONE_OK_ONE_REFUSED]));
    assert_eq!(
        c.call(&["EVAL", ONE_OK_ONE_REFUSED, "0"]),
        script_refusal("No permissions to access a key", &sha)
    );
    // What the script wrote before the refusal stays, as in Redis.
    assert_eq!(
        admin.call(&["MGET", "a:1", "b:1"]),
        arr(vec![b("x"), V::Nil])
    );
    assert_eq!(
        c.call(&["EVALSHA", &sha, "0"]),
        script_refusal("No permissions to access a key", &sha)
    );
    let incr = "return redis.call('INCR', 'a:n')";
    let incr_sha = text(&c.call(&["SCRIPT", "LOAD", incr]));
    assert_eq!(
        c.call(&["EVAL", incr, "0"]),
        script_refusal(
            "User app has no permissions to run the 'incr' command",
            &incr_sha
        )
    );
    // redis.pcall hands the refusal to the script.
    assert_eq!(
        c.call(&[
            "EVAL",
            "local r = redis.pcall('GET', 'b:1'); return r['err']",
            "0"
        ]),
        b("ERR ACL failure in script: No permissions to access a key")
    );
    assert_eq!(
        c.call(&["EVAL", "return redis.call('GET', 'a:1')", "0"]),
        b("x")
    );
    // The read-only forms run on the read path, checked alike.
    assert_eq!(
        c.call(&["EVAL_RO", "return redis.call('GET', 'a:1')", "0"]),
        b("x")
    );
    match c.call(&["EVAL_RO", "return redis.call('GET', 'b:1')", "0"]) {
        V::Err(t) if t.starts_with("ERR ACL failure in script: No permissions to access a key") => {
        }
        other => panic!("EVAL_RO reading b:1: {other:?}"),
    }
    // Inside MULTI too.
    assert_eq!(c.call(&["MULTI"]), ok());
    assert_eq!(
        c.call(&["EVAL", "return redis.call('SET', 'b:2', 'y')", "0"]),
        V::Simple("QUEUED".into())
    );
    match c.call(&["EXEC"]) {
        V::Arr(items) if matches!(&items[..], [V::Err(t)] if t.contains("ACL failure in script")) =>
            {}
        other => panic!("EXEC: {other:?}"),
    }
    assert_eq!(admin.call(&["EXISTS", "b:1", "b:2", "a:n"]), int(0));

    // ACL LOG names the call, in the lua context, and the client that ran the script.
    let log = acl_log(&mut admin, &["1"]);
    let entry = &log[0];
    assert_eq!(field(entry, "context"), &b("lua"));
    assert_eq!(field(entry, "reason"), &b("key"));
    assert_eq!(field(entry, "object"), &b("b:2"));
    assert_eq!(field(entry, "username"), &b("app"));
    let info = text(field(entry, "client-info"));
    assert!(
        info.contains("cmd=exec") && info.contains("user=app"),
        "{info}"
    );
    assert_eq!(
        info_field(&mut admin, "stats", "acl_access_denied_cmd"),
        "1"
    );
    assert_eq!(
        info_field(&mut admin, "stats", "acl_access_denied_key"),
        "5"
    );

    // Rules changed for a connected user apply to its next script.
    setuser(&mut admin, "app", &["allkeys"]);
    assert_eq!(c.call(&["EVALSHA", &sha, "0"]), ok());
    assert_eq!(admin.call(&["GET", "b:1"]), b("y"));
}

#[test]
fn a_replay_refuses_the_calls_refused_live_whatever_the_users_are_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = common::spawn_binary(dir.path(), &["--appendfsync", "always"]);
    let mut admin = Raw::connect_addr(srv.addr);
    setuser(&mut admin, "app", &["on", ">pw", "~a:*", "+@all"]);
    let mut c = Raw::connect_addr(srv.addr);
    assert_eq!(c.call(&["AUTH", "app", "pw"]), ok());
    assert!(matches!(
        c.call(&["EVAL", ONE_OK_ONE_REFUSED, "0"]),
        V::Err(_)
    ));
    // Live, the refusal left b:1 unset. A replay checking today's rules (all keys) or
    // none (the user is gone) would set it.
    setuser(&mut admin, "app", &["allkeys"]);
    assert_eq!(admin.call(&["ACL", "DELUSER", "app"]), int(1));
    assert_eq!(
        admin.call(&["MGET", "a:1", "b:1"]),
        arr(vec![b("x"), V::Nil])
    );
    srv.kill9();
    let srv = common::spawn_binary(dir.path(), &["--appendfsync", "always"]);
    let mut admin = Raw::connect_addr(srv.addr);
    assert_eq!(
        admin.call(&["MGET", "a:1", "b:1"]),
        arr(vec![b("x"), V::Nil])
    );
}

#[test]
fn a_limited_users_functions_have_each_call_checked_on_both_paths() {
    let srv = start();
    let mut admin = connect(&srv);
    let lib = "#!lua name=lib\n\
        redis.register_function('two_sets', function() redis.call('SET', 'a:1', 'x'); return redis.call('SET', 'b:1', 'y') end)\n\
        redis.register_function{function_name='peek', flags={'no-writes'}, callback=function(keys) return redis.call('GET', keys[1]) end}";
    assert_eq!(admin.call(&["FUNCTION", "LOAD", lib]), b("lib"));
    admin.call(&["SET", "b:2", "hidden"]);
    setuser(&mut admin, "app", &["on", ">pw", "~a:*", "+@all"]);
    let mut c = login(&srv, "app", "pw");
    assert_eq!(
        c.call(&["FCALL", "two_sets", "0"]),
        e("ERR ACL failure in script: No permissions to access a key script: two_sets, on @user_function:2.")
    );
    assert_eq!(
        admin.call(&["MGET", "a:1", "b:1"]),
        arr(vec![b("x"), V::Nil]),
        "what ran before the refusal stays"
    );
    // FCALL_RO runs on the read path; its calls are checked there too. The key is not
    // among the command's keys, so only the script's call is refused.
    assert_eq!(
        c.call(&["FCALL_RO", "peek", "0"]),
        e("ERR Lua redis lib command arguments must be strings or integers script: peek, on @user_function:3.")
    );
    c.call(&["FUNCTION", "LOAD", "#!lua name=lib2\nredis.register_function{function_name='peek_b2', flags={'no-writes'}, callback=function() return redis.call('GET', 'b:2') end}"]);
    assert_eq!(
        c.call(&["FCALL_RO", "peek_b2", "0"]),
        e("ERR ACL failure in script: No permissions to access a key script: peek_b2, on @user_function:2.")
    );
    assert_eq!(admin.call(&["FCALL_RO", "peek_b2", "0"]), b("hidden"));
    // Queued in MULTI, the read-only forms run in the funnel, and are checked there.
    assert_eq!(c.call(&["MULTI"]), ok());
    c.call(&["FCALL_RO", "peek_b2", "0"]);
    c.call(&["EVAL_RO", "return redis.call('GET', 'b:2')", "0"]);
    let sha = keel_engine::script::sha1_hex(b"return redis.call('GET', 'b:2')");
    assert_eq!(
        c.call(&["EXEC"]),
        arr(vec![
            e("ERR ACL failure in script: No permissions to access a key script: peek_b2, on @user_function:2."),
            script_refusal("No permissions to access a key", &sha),
        ])
    );
    // redis.acl_check_cmd answers for the running user, without logging.
    // Compared by each entry's count: an entry's age changes as the test runs.
    let counts = |r: &mut Raw| -> Vec<V> {
        acl_log(r, &[])
            .iter()
            .map(|en| field(en, "count").clone())
            .collect()
    };
    let before = counts(&mut admin);
    assert_eq!(
        c.call(&[
            "EVAL",
            "return {redis.acl_check_cmd('set', 'a:9', 1), redis.acl_check_cmd('set', 'b:9', 1)}",
            "0"
        ]),
        arr(vec![V::Int(1), V::Nil]),
        "true, then false"
    );
    assert_eq!(counts(&mut admin), before);
}

#[test]
fn every_key_of_a_movable_key_command_is_checked_even_where_its_key_spec_names_one() {
    let srv = start();
    let mut admin = connect(&srv);
    assert_eq!(admin.call(&["ZADD", "secret", "1", "topsecret"]), V::Int(1));
    assert_eq!(admin.call(&["RPUSH", "r1", "3", "1", "2"]), V::Int(3));
    assert_eq!(admin.call(&["SADD", "rset", "a", "b", "c"]), V::Int(3));
    assert_eq!(
        admin.call(&["GEOADD", "rgeo", "13.361389", "38.115556", "Palermo"]),
        V::Int(1)
    );
    setuser(
        &mut admin,
        "mover",
        &["on", ">pw", "+@all", "%R~r*", "%W~w*", "~mine*"],
    );
    let mut c = login(&srv, "mover", "pw");
    // The sources after ZUNIONSTORE's count (its spec names the destination only).
    for cmd in ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"] {
        assert_eq!(
            c.call(&[cmd, "mine", "1", "secret"]),
            e(NOPERM_KEY),
            "{cmd}"
        );
    }
    assert_eq!(c.call(&["ZUNIONSTORE", "mine", "1", "rset"]), V::Int(3));
    // STORE's destination (the spec of SORT and GEORADIUS names the source only).
    assert_eq!(c.call(&["SORT", "r1", "STORE", "r2"]), e(NOPERM_KEY));
    assert_eq!(c.call(&["SORT", "r1", "STORE", "w1"]), V::Int(3));
    assert_eq!(
        c.call(&["GEORADIUS", "rgeo", "15", "37", "200", "km", "STORE", "r3"]),
        e(NOPERM_KEY)
    );
    assert_eq!(
        c.call(&["GEORADIUS", "rgeo", "15", "37", "200", "km", "STORE", "w2"]),
        V::Int(1)
    );
    // Nothing was written where it was refused, and ACL DRYRUN agrees.
    assert_eq!(admin.call(&["EXISTS", "r2", "r3"]), V::Int(0));
    assert_eq!(admin.call(&["ZCARD", "mine"]), V::Int(3));
    let dry = admin.call(&[
        "ACL",
        "DRYRUN",
        "mover",
        "ZINTERSTORE",
        "w",
        "2",
        "r1",
        "secret",
    ]);
    assert_eq!(
        text(&dry),
        "User mover has no permissions to access the 'secret' key"
    );
}
