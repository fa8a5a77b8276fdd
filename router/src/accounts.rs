//! Registration and login.

use chat_persistence::{NewUser, StoreError, UserRecord};
use chat_protocol::limits::{
    PASSWORD_MAX_BYTES, PASSWORD_MIN, USERNAME_MAX, USERNAME_MIN, is_valid_username,
};
use chat_protocol::rest::{LoginRequest, RegisterRequest};

use crate::{Chat, Error, Result, content};

impl Chat {
    /// Creates an account. Usernames are unique case-insensitively.
    pub async fn register(&self, request: RegisterRequest) -> Result<UserRecord> {
        if !is_valid_username(&request.username) {
            return Err(Error::bad_request(format!(
                "username must be {USERNAME_MIN} to {USERNAME_MAX} characters of A-Z a-z 0-9 _ . -"
            )));
        }
        check_password(&request.password)?;
        let display_name = match request.display_name.as_deref() {
            Some(name) => content::name("display_name", name)?,
            None => request.username.clone(),
        };
        let password_hash = self.passwords().hash(&request.password).await?;
        let id = self.mint_id()?;
        let user = NewUser {
            id,
            username: request.username,
            display_name,
            password_hash,
            created_at: id.unix_ms(),
        };
        match self.store.create_user(user).await {
            Err(StoreError::Conflict(_)) => Err(Error::Conflict("username is taken")),
            other => Ok(other?),
        }
    }

    /// Checks a username and password; answers the user and the password
    /// hash that the password matched. Unknown users and wrong passwords
    /// get the same error after the same amount of work.
    pub async fn login(&self, request: LoginRequest) -> Result<(UserRecord, String)> {
        if request.password.len() > PASSWORD_MAX_BYTES || !is_valid_username(&request.username) {
            return Err(Error::BadCredentials);
        }
        let credentials = self.store.credentials(&request.username).await?;
        let phc = credentials.as_ref().map(|c| c.password_hash.as_str());
        if self.passwords().verify(&request.password, phc).await? {
            credentials
                .map(|c| (c.user, c.password_hash))
                .ok_or(Error::BadCredentials)
        } else {
            Err(Error::BadCredentials)
        }
    }
}

pub(crate) fn check_password(password: &str) -> Result<()> {
    if password.chars().count() < PASSWORD_MIN {
        return Err(Error::bad_request(format!(
            "password must be at least {PASSWORD_MIN} characters"
        )));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(Error::bad_request(format!(
            "password must be at most {PASSWORD_MAX_BYTES} bytes"
        )));
    }
    Ok(())
}
