//! Signing in and out: passwords checked against argon2id hashes, failures counted towards a
//! growing lockout, sign-ins that expire when idle and after an absolute time.

use super::accounts;
use super::{Auth, Login, Result, Role, Signed, Workspace, WorkspaceError};
use crate::domain::SessionToken;

impl Workspace {
    /// Checks a name and password. Failures count towards a lockout that doubles with each
    /// further failure (up to an hour); every attempt is audited.
    pub async fn login(&self, username: &str, password: &str, ip: &str) -> Result<Login> {
        let username = username.trim();
        let now = self.now();
        let Some(c) = self.db.counselor_by_username(username).await? else {
            // Same work as a wrong password, so timing does not tell which names exist.
            let pw = password.to_string();
            let _ = tokio::task::spawn_blocking(move || {
                accounts::verify_password(accounts::decoy_hash(), &pw)
            })
            .await;
            self.audit(None, username, "login_failed", "", "unknown_user", ip)
                .await?;
            return Ok(Login::Invalid);
        };
        if c.locked_until > now {
            self.audit(Some(&c), username, "login_failed", "", "locked", ip)
                .await?;
            let secs = ((c.locked_until - now) as u64).div_ceil(1000);
            return Ok(Login::Locked {
                retry_after_secs: secs.max(1),
            });
        }
        let hash = c.password_hash.clone();
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || accounts::verify_password(&hash, &pw))
            .await
            .unwrap_or(false);
        if !ok {
            let n = self.db.count_failed_login(&c.id, now).await?;
            let over = n - self.cfg.max_failed_logins;
            let mut detail = "wrong_password".to_string();
            if over >= 0 {
                let secs = self
                    .cfg
                    .lockout_secs
                    .saturating_mul(1u64 << over.min(16))
                    .min(3600);
                self.db
                    .lock_counselor(&c.id, now + secs as i64 * 1000)
                    .await?;
                detail = format!("wrong_password; locked {secs}s");
            }
            self.audit(Some(&c), username, "login_failed", "", &detail, ip)
                .await?;
            return Ok(Login::Invalid);
        }
        if c.disabled {
            self.audit(Some(&c), username, "login_failed", "", "disabled", ip)
                .await?;
            return Ok(Login::Disabled);
        }
        let Some(role) = Role::parse(&c.role) else {
            return Err(WorkspaceError::Forbidden("unknown role"));
        };
        self.db.clear_failed_logins(&c.id).await?;
        let token = SessionToken::new();
        let csrf = crate::store::new_id();
        let token_hash = token.hash().as_str().to_string();
        self.db
            .add_console_session(&token_hash, &c.id, &csrf, now)
            .await?;
        self.audit(Some(&c), username, "login", "", "", ip).await?;
        Ok(Login::Ok {
            token,
            signed: Box::new(Signed {
                counselor: c,
                role,
                csrf,
                token_hash,
            }),
        })
    }

    /// The counselor behind a cookie value. An expired sign-in is deleted; a valid one's idle
    /// time restarts when `activity` (a person's action, not the page refreshing itself).
    pub async fn authenticate(&self, cookie: &str, activity: bool) -> Result<Auth> {
        let hash = SessionToken::from_client(cookie).hash();
        let Some((s, c)) = self.db.console_session(hash.as_str()).await? else {
            return Ok(Auth::Missing);
        };
        let now = self.now();
        let idle = self.cfg.idle_timeout_minutes as i64 * 60_000;
        let absolute = self.cfg.absolute_timeout_hours as i64 * 3_600_000;
        let role = Role::parse(&c.role);
        if c.disabled || now - s.last_seen > idle || now - s.created_at > absolute || role.is_none()
        {
            self.db.delete_console_session(&s.token_hash).await?;
            return Ok(Auth::Expired);
        }
        if activity {
            self.db.touch_console_session(&s.token_hash, now).await?;
        }
        Ok(Auth::Ok(Box::new(Signed {
            counselor: c,
            role: role.unwrap_or(Role::Counselor),
            csrf: s.csrf_token,
            token_hash: s.token_hash,
        })))
    }

    /// Whether a sign-in still exists (a long-lived stream re-checks it without counting as
    /// activity).
    pub async fn still_signed_in(&self, token_hash: &str) -> Result<bool> {
        let Some((s, c)) = self.db.console_session(token_hash).await? else {
            return Ok(false);
        };
        let now = self.now();
        Ok(!c.disabled
            && now - s.last_seen <= self.cfg.idle_timeout_minutes as i64 * 60_000
            && now - s.created_at <= self.cfg.absolute_timeout_hours as i64 * 3_600_000)
    }

    /// Signs out.
    pub async fn logout(&self, who: &Signed, ip: &str) -> Result<()> {
        self.db.delete_console_session(&who.token_hash).await?;
        self.audit(
            Some(&who.counselor),
            &who.counselor.username,
            "logout",
            "",
            "",
            ip,
        )
        .await
    }
}
