//! Rules on client-supplied text: message content, names and client ids.

use chat_protocol::limits::{CLIENT_ID_MAX, MAX_CONTENT_CHARS, NAME_MAX_CHARS};

use crate::{Error, Result};

/// Message content as stored: trimmed, 1 to 4000 Unicode characters.
pub fn message_content(raw: &str) -> Result<String> {
    let content = raw.trim();
    if content.is_empty() {
        return Err(Error::bad_request("content is empty"));
    }
    let chars = content.chars().count();
    if chars > MAX_CONTENT_CHARS {
        return Err(Error::TooLarge(format!(
            "content has {chars} characters, at most {MAX_CONTENT_CHARS} are allowed"
        )));
    }
    Ok(content.to_owned())
}

/// A room or display name: trimmed, 1 to 64 characters, no control characters.
pub fn name(field: &str, raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::bad_request(format!("{field} is empty")));
    }
    if name.chars().count() > NAME_MAX_CHARS {
        return Err(Error::bad_request(format!(
            "{field} is longer than {NAME_MAX_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::bad_request(format!(
            "{field} contains control characters"
        )));
    }
    Ok(name.to_owned())
}

/// A client-chosen idempotency key: 1 to 64 characters.
pub fn client_id(raw: Option<&str>) -> Result<Option<String>> {
    match raw {
        None => Ok(None),
        Some(id) if id.is_empty() || id.chars().count() > CLIENT_ID_MAX => Err(Error::bad_request(
            format!("client_id must be 1 to {CLIENT_ID_MAX} characters"),
        )),
        Some(id) => Ok(Some(id.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::ErrorCode;

    #[test]
    fn content_is_trimmed_and_bounded_in_characters() {
        assert_eq!(message_content("  hi \n").unwrap(), "hi");
        assert_eq!(
            message_content(" \t\n").unwrap_err().code(),
            ErrorCode::BadRequest
        );
        // 4000 multi-byte characters are fine (12000 bytes), 4001 are not.
        assert!(message_content(&"€".repeat(4000)).is_ok());
        assert_eq!(
            message_content(&"€".repeat(4001)).unwrap_err().code(),
            ErrorCode::TooLarge
        );
        // Trimming happens before counting.
        assert!(message_content(&format!("  {}  ", "a".repeat(4000))).is_ok());
    }

    #[test]
    fn names() {
        assert_eq!(name("name", " general ").unwrap(), "general");
        assert!(name("name", "").is_err());
        assert!(name("name", &"n".repeat(65)).is_err());
        assert!(name("name", "a\u{0}b").is_err());
    }

    #[test]
    fn client_ids() {
        assert_eq!(client_id(None).unwrap(), None);
        assert_eq!(client_id(Some("k1")).unwrap().as_deref(), Some("k1"));
        assert!(client_id(Some("")).is_err());
        assert!(client_id(Some(&"k".repeat(65))).is_err());
    }
}
