//! Who may call what: the business (manager) token for users, channels and messages, the admin token
//! for the operator API; compared in constant time.

use super::{ApiError, AppState};
use crate::context::Core;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which tokens a request may present, by what it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Privilege {
    /// Users, channels and messages: the business (manager) token, or the admin token.
    Business,
    /// `/cluster/*`: the admin token only. Without one (loopback or `insecure` only), the business token
    /// guards it as it guards the rest.
    Admin,
}

/// Whether a request presenting `given` may go on; `None` when no token is configured for it.
fn admitted(c: &crate::config::CoreConfig, wanted: Privilege, given: Option<&str>) -> Option<bool> {
    let matches = |t: &Option<String>| t.as_deref().map(|t| tern_shared::secret::token_matches(t, given));
    match (wanted, matches(&c.admin_token), matches(&c.manager_token)) {
        (_, None, None) => None,
        (Privilege::Admin, Some(admin), _) => Some(admin),
        (Privilege::Admin, None, business) => business,
        (Privilege::Business, admin, business) => Some(admin == Some(true) || business == Some(true)),
    }
}

async fn require_token(core: &Core, wanted: Privilege, req: Request, next: Next) -> Response {
    let given = req.headers().get("token").and_then(|v| v.to_str().ok());
    if admitted(&core.config, wanted, given) == Some(false) {
        let msg = match wanted {
            Privilege::Business => "missing or wrong manager token",
            Privilege::Admin => "missing or wrong admin token (the business token cannot call /cluster)",
        };
        return ApiError::new(axum::http::StatusCode::UNAUTHORIZED, msg).into_response();
    }
    next.run(req).await
}

pub(super) async fn require_business_token(State(core): State<AppState>, req: Request, next: Next) -> Response {
    require_token(&core, Privilege::Business, req, next).await
}

pub(super) async fn require_admin_token(State(core): State<AppState>, req: Request, next: Next) -> Response {
    require_token(&core, Privilege::Admin, req, next).await
}

#[cfg(test)]
mod tests {
    use super::{admitted, Privilege::*};

    #[test]
    fn each_token_opens_what_it_should() {
        let mut c = crate::config::CoreConfig::default();
        assert_eq!(admitted(&c, Admin, None), None, "no tokens: open (loopback only)");
        c.manager_token = Some("biz".into());
        assert_eq!(admitted(&c, Business, Some("biz")), Some(true));
        assert_eq!(admitted(&c, Business, Some("bi")), Some(false));
        assert_eq!(admitted(&c, Admin, Some("biz")), Some(true), "no admin token: the business token guards");
        c.admin_token = Some("adm".into());
        assert_eq!(admitted(&c, Admin, Some("biz")), Some(false), "least privilege");
        assert_eq!(admitted(&c, Admin, Some("adm")), Some(true));
        assert_eq!(admitted(&c, Admin, None), Some(false));
        assert_eq!(admitted(&c, Business, Some("adm")), Some(true), "the admin token opens everything");
        assert_eq!(admitted(&c, Business, None), Some(false));
        c.manager_token = None;
        assert_eq!(admitted(&c, Business, None), Some(false), "an admin token alone guards everything");
    }
}
