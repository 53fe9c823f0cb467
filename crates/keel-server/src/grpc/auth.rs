//! Authentication of gRPC calls. They run as the ACL `default` user: when it has a
//! password (requirepass), every call carries one as `authorization: Bearer <password>`
//! or `x-keel-auth: <password>` metadata. The user is read per call, so CONFIG SET
//! requirepass and ACL SETUSER default apply to gRPC at once. The gRPC API checks no
//! per-command permissions, so while the default user is off or limited by ACL rules,
//! gRPC calls are refused rather than run unchecked.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::server::acl::Acl;

/// The interceptor in front of every gRPC service.
#[derive(Clone)]
pub struct Auth {
    acl: Arc<Acl>,
}

impl Auth {
    /// Checks calls against `acl`'s default user.
    pub fn new(acl: Arc<Acl>) -> Self {
        Auth { acl }
    }
}

impl Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let slot = self.acl.default_slot();
        let user = slot.user();
        if !user.enabled() || !slot.open() {
            return Err(Status::permission_denied(
                "gRPC calls run as the default user, which is off or limited by ACL rules: keel's gRPC API has no other users",
            ));
        }
        if user.nopass() {
            return Ok(req);
        }
        match presented(&req) {
            Some(p) if user.check_password(p.as_bytes()) => Ok(req),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(pass: Option<&str>) -> Auth {
        Auth::new(Arc::new(Acl::new(pass, None, 128).expect("no ACL file")))
    }

    fn call(pass: Option<&str>, md: &[(&'static str, &str)]) -> Result<(), tonic::Code> {
        call_with(&mut auth(pass), md)
    }

    fn call_with(auth: &mut Auth, md: &[(&'static str, &str)]) -> Result<(), tonic::Code> {
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

    #[test]
    fn refused_while_the_default_user_is_off_or_limited() {
        use tonic::Code::PermissionDenied as D;
        let mut a = auth(None);
        a.acl.set_user("default", &[b"-flushall"]).expect("rule");
        assert_eq!(call_with(&mut a, &[]), Err(D));
        a.acl.set_user("default", &[b"+@all"]).expect("rule");
        assert_eq!(call_with(&mut a, &[]), Ok(()));
        a.acl.set_user("default", &[b"off"]).expect("rule");
        assert_eq!(call_with(&mut a, &[]), Err(D));
    }
}
