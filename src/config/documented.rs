//! docs/configuration.md held against the code: every setting has a row in
//! its table of keys, every row names a setting, with the environment
//! variable that sets it, and each default the table gives as a literal is
//! the default the code has. Operators set the service up from that table,
//! so a key renamed or a default changed in one place only fails here.

use std::collections::BTreeMap;

use super::Config;

const DOC: &str = include_str!("../../docs/configuration.md");

/// A row of the table of keys.
struct Row {
    key: &'static str,
    default: &'static str,
    variable: &'static str,
}

/// The rows of the table under "## Keys", one per key (a row may name
/// several: `` `scylla.username`, `scylla.password` ``).
fn rows() -> Vec<Row> {
    let section = DOC
        .split("\n## ")
        .find(|section| section.starts_with("Keys\n"))
        .expect("docs/configuration.md has a section \"Keys\"");
    let mut rows = Vec::new();
    for line in section.lines() {
        let Some(cells) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = cells.split(" | ").collect();
        let (Some(default), Some(variable)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        for key in cells[0].trim_end_matches('`').split("`, `") {
            rows.push(Row {
                key,
                default: default.trim(),
                variable: variable.trim(),
            });
        }
    }
    rows
}

/// The defaults, by dotted key; settings whose default is "none" are absent.
fn defaults() -> BTreeMap<String, toml::Value> {
    fn flatten(prefix: &str, value: toml::Value, into: &mut BTreeMap<String, toml::Value>) {
        match value {
            toml::Value::Table(table) if !table.is_empty() => {
                for (name, value) in table {
                    let key = if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}.{name}")
                    };
                    flatten(&key, value, into);
                }
            }
            value => {
                into.insert(prefix.to_string(), value);
            }
        }
    }
    let mut flat = BTreeMap::new();
    let value = toml::Value::try_from(Config::default()).expect("the defaults serialize");
    flatten("", value, &mut flat);
    flat
}

/// The literal a default cell starts with (`` `10000` (10 s) `` → `10000`),
/// read as TOML, or as a string when it is a bare word (`` `persist` ``);
/// `None` when the cell explains instead ("none"; "`10` with `redis_url`,
/// else `0`" is read as 10).
fn literal(cell: &str) -> Option<toml::Value> {
    let literal = cell.strip_prefix('`')?.split('`').next()?;
    match toml::from_str::<toml::Table>(&format!("value = {literal}")) {
        Ok(parsed) => parsed.get("value").cloned(),
        Err(_) => Some(toml::Value::String(literal.to_string())),
    }
}

/// Whether `key` is a setting: a file setting it to `probe` is refused
/// for its type or value, never as an unknown key.
fn is_setting(key: &str, probe: &str) -> bool {
    let (path, name) = key.rsplit_once('.').unwrap_or(("", key));
    let file = if path.is_empty() {
        format!("{name} = {probe}\n")
    } else {
        format!("[{path}]\n{name} = {probe}\n")
    };
    match toml::from_str::<Config>(&file) {
        Ok(_) => true,
        Err(error) => !error.message().contains("unknown field"),
    }
}

#[test]
fn every_setting_is_documented_with_its_default() {
    let rows = rows();
    assert!(rows.len() > 50, "the table of keys was found");
    let documented: BTreeMap<&str, &Row> = rows.iter().map(|row| (row.key, row)).collect();
    assert_eq!(documented.len(), rows.len(), "each key has one row");

    let defaults = defaults();
    let undocumented: Vec<&String> = defaults
        .keys()
        .filter(|key| !documented.contains_key(key.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "settings missing from docs/configuration.md: {undocumented:?}"
    );

    for row in &rows {
        let variable = format!("CHAT_{}", row.key.replace('.', "__").to_uppercase());
        assert!(
            row.variable.contains(&format!("`{variable}`")),
            "`{}`: its variable is {variable}, the table says {}",
            row.key,
            row.variable
        );
        match (defaults.get(row.key), literal(row.default)) {
            (Some(default), Some(documented)) => assert_eq!(
                &documented, default,
                "`{}`: the table's default is {}, the code's {default}",
                row.key, row.default
            ),
            (Some(default), None) => {
                panic!(
                    "`{}`: the table gives no default ({}), the code has {default}",
                    row.key, row.default
                )
            }
            (None, _) => assert!(
                is_setting(row.key, "\"probe\""),
                "`{}` is in docs/configuration.md but is not a setting",
                row.key
            ),
        }
    }
}

#[test]
fn a_key_that_is_not_a_setting_is_told_apart() {
    assert!(is_setting("realtime.partitions", "\"probe\""));
    assert!(is_setting("scylla.tablets", "\"probe\""));
    assert!(!is_setting("realtime.partition", "\"probe\""));
    assert!(!is_setting("listn", "\"probe\""));
    assert_eq!(literal("`10000` (10 s)"), Some(toml::Value::Integer(10000)));
    assert_eq!(literal("none"), None);
    assert_eq!(
        literal("`persist`"),
        Some(toml::Value::String("persist".into()))
    );
}
