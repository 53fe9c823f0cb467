//! Authentication of gRPC calls: with `requirepass` set, every call carries the password
//! as `authorization: Bearer <password>` or `x-keel-auth: <password>` metadata. The
//! password is read per call, so CONFIG SET requirepass applies to gRPC at once.

use std::sync::Arc;

use parking_lot::RwLock;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::config::Config;

/// The interceptor in front of every gRPC service.
#[derive(Clone)]
pub struct Auth {
    config: Arc<RwLock<Config>>,
}

impl Auth {
    /// Checks calls against `config`'s requirepass.
    pub fn new(config: Arc<RwLock<Config>>) -> Self {
        Auth { config }
    }
}

impl Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(pass) = self.config.read().requirepass.clone() else {
            return Ok(req);
        };
        match presented(&req) {
            Some(p) if constant_time_eq(p.as_bytes(), pass.as_bytes()) => Ok(req),
            Some(_) => Err(Status::unauthenticated("invalid password")),
            None => Err(Status::unauthenticated(
                "authentication required: send metadata 'authorization: Bearer <password>'",
            )),
        }
    }
}

/// The password the call presents, if any.
fn presented(req: &Request<()>) -> Option<String> {
    let md = req.metadata();
    if let Some(v) = md.get("authorization").and_then(|v| v.to_str().ok()) {
        let (scheme, token) = v.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    md.get("x-keel-auth")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Compares without an early exit, so timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(pass: Option<&str>, md: &[(&'static str, &str)]) -> Result<(), tonic::Code> {
        let cfg = Config {
            requirepass: pass.map(str::to_string),
            ..Config::default()
        };
        let mut auth = Auth::new(Arc::new(RwLock::new(cfg)));
        let mut req = Request::new(());
        for (k, v) in md {
            req.metadata_mut()
                .insert(*k, v.parse().expect("ascii metadata"));
        }
        auth.call(req).map(|_| ()).map_err(|s| s.code())
    }

    #[test]
    fn bearer_or_header_when_a_password_is_set() {
        use tonic::Code::Unauthenticated as U;
        assert_eq!(call(None, &[]), Ok(()));
        assert_eq!(call(Some("pw"), &[]), Err(U));
        assert_eq!(call(Some("pw"), &[("authorization", "Bearer pw")]), Ok(()));
        assert_eq!(call(Some("pw"), &[("authorization", "bearer pw")]), Ok(()));
        assert_eq!(call(Some("pw"), &[("authorization", "Bearer px")]), Err(U));
        assert_eq!(call(Some("pw"), &[("authorization", "Basic pw")]), Err(U));
        assert_eq!(call(Some("pw"), &[("x-keel-auth", "pw")]), Ok(()));
        assert_eq!(call(Some("pw"), &[("x-keel-auth", "p")]), Err(U));
    }
}
