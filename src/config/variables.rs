//! Which `CHAT_*` environment variables are read, a warning with a hint
//! for those that are not (most likely typos), and configuration errors
//! phrased as the user would look for them.

/// The top-level keys, which are the only `CHAT_*` variables read.
pub(super) const KEYS: &[&str] = &[
    "listen",
    "ops_listen",
    "data_dir",
    "jwt_secret",
    "jwt_issuer",
    "jwt_audience",
    "token_ttl_secs",
    "worker_id",
    "redis_url",
    "redis_cluster",
    "log_format",
    "runtime_threads",
    "limits",
    "rates",
    "rooms",
    "realtime",
    "sqlite",
    "scylla",
    "files",
    "admins",
    "trusted_proxies",
    "revocation_refresh_secs",
    "missed_rooms_check_secs",
    "audit",
];

/// `CHAT_*` variables that are not settings of the server but are read
/// elsewhere: the config file's path, the ScyllaDB shorthands, the terminal
/// client's password, and the test suites' own.
pub(super) const OTHER_VARIABLES: &[&str] = &[
    "CHAT_CONFIG",
    "CHAT_SCYLLA_NODES",
    "CHAT_SCYLLA_KEYSPACE",
    "CHAT_SCYLLA_CONSISTENCY",
    "CHAT_PASSWORD",
];

/// Settings whose values are never repeated in an error message.
pub(super) const SECRET_KEYS: &[&str] = &["jwt_secret", "redis_url", "scylla.password"];

/// A configuration error as the user would look for it: the variable and
/// its value (`CHAT_LISTEN="notanaddress"`), or the key and the file,
/// without figment's profile name in front.
pub(super) fn explain(errors: figment::Error) -> anyhow::Error {
    let explained: Vec<String> = errors
        .into_iter()
        .map(|error| {
            let key = error.path.join(".").to_lowercase();
            let what = match &error.kind {
                figment::error::Kind::UnknownField(field, expected) => format!(
                    "unknown key `{field}`; the keys here are {}",
                    expected.join(", ")
                ),
                kind => kind.to_string(),
            };
            let metadata = error.metadata.as_ref();
            if metadata.is_some_and(|metadata| metadata.name.contains("environment")) {
                let variable = format!("CHAT_{}", key.replace('.', "__").to_uppercase());
                let secret = SECRET_KEYS.iter().any(|secret| key.starts_with(secret));
                match std::env::var(&variable) {
                    Ok(value) if !secret => format!("{variable}={value:?}: {what}"),
                    _ => format!("{variable}: {what}"),
                }
            } else if let Some(figment::Source::File(path)) =
                metadata.and_then(|metadata| metadata.source.as_ref())
            {
                format!("`{key}` in {}: {what}", path.display())
            } else {
                format!("`{key}`: {what}")
            }
        })
        .collect();
    anyhow::anyhow!("{}", explained.join("; "))
}

/// Says which `CHAT_*` variables are neither a setting nor read elsewhere:
/// most likely a typo, which would otherwise pass silently. Only a warning,
/// since the same shell may hold variables of other tools.
pub(super) fn warn_about_unknown_variables(variables: impl Iterator<Item = (String, String)>) {
    for name in unknown_variables(variables.map(|(name, _)| name)) {
        let hint = closest_setting(&name)
            .map(|known| format!("; did you mean CHAT_{}?", known.to_uppercase()))
            .unwrap_or_default();
        eprintln!("chatd: warning: {name} is not a setting and is ignored{hint}");
    }
}

/// The `CHAT_*` names among `names` that nothing reads.
pub(super) fn unknown_variables(names: impl Iterator<Item = String>) -> Vec<String> {
    names
        .filter(|name| {
            let Some(key) = name.strip_prefix("CHAT_") else {
                return false;
            };
            let top = key.split("__").next().unwrap_or_default();
            !KEYS.iter().any(|known| known.eq_ignore_ascii_case(top))
                && !OTHER_VARIABLES.contains(&name.as_str())
                && !name.starts_with("CHAT_TEST_")
        })
        .collect()
}

/// The top-level key within two edits of `variable`'s, if any.
pub(super) fn closest_setting(variable: &str) -> Option<&'static str> {
    let typed = variable
        .strip_prefix("CHAT_")?
        .split("__")
        .next()?
        .to_lowercase();
    KEYS.iter()
        .map(|known| (edit_distance(&typed, known), *known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance, for the typo hint.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
