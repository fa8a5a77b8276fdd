//! The statements' text against the schema, and the row types against the
//! schema's column types, without a server.
//!
//! The `CREATE TABLE` statements of `schema` are parsed (simply: names,
//! types, keys) and every prepared statement of `statements` is checked
//! against them: its table exists, every column it names exists, it
//! restricts the whole partition key (so nothing needs `ALLOW FILTERING`),
//! and its kind matches its text. Then values are pushed through the
//! driver's own serializers and deserializers with the schema's column
//! types, so the Rust types bound and read agree with the CQL types.

use std::collections::{BTreeSet, HashMap};

use chat_protocol::id::EPOCH_MS;
use chat_protocol::{File, Id, Message, Role, Room, RoomId, RoomKind, Visibility};
use scylla::deserialize::FrameSlice;
use scylla::deserialize::row::{ColumnIterator, DeserializeRow};
use scylla::frame::response::result::{
    CollectionType, ColumnSpec, ColumnType, NativeType, TableSpec,
};
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;
use scylla::value::{CqlValue, Row};

use super::buckets::Buckets;
use super::lwt::LwtAnswer;
use super::rows::*;
use super::schema::TABLES;
use super::statements::{DEFINITIONS, Kind};
use crate::records::{Credentials, NewRoom, NewUser, UserRecord};

// ----- a small parser of the schema ------------------------------------------

#[derive(Debug)]
struct Table {
    name: String,
    columns: HashMap<String, String>,
    partition_key: Vec<String>,
    clustering_key: Vec<String>,
}

/// Splits on commas outside parentheses and angle brackets.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut parts, mut current, mut depth) = (Vec::new(), String::new(), 0i32);
    for character in text.chars() {
        match character {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(character);
    }
    if !current.trim().is_empty() {
        parts.push(current.trim().to_owned());
    }
    parts
}

fn parse_table(cql: &str) -> Table {
    let rest = cql
        .strip_prefix("CREATE TABLE IF NOT EXISTS ")
        .expect("a CREATE TABLE statement");
    let open = rest.find('(').expect("a column list");
    let name = rest[..open].trim().to_owned();
    // The body runs to the parenthesis matching the first one.
    let mut depth = 0;
    let mut close = open;
    for (index, character) in rest.char_indices().skip(open) {
        match character {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    close = index;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut table = Table {
        name,
        columns: HashMap::new(),
        partition_key: Vec::new(),
        clustering_key: Vec::new(),
    };
    for part in split_top_level(&rest[open + 1..close]) {
        let part = part.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(key) = part.strip_prefix("PRIMARY KEY (") {
            let key = key.strip_suffix(')').expect("a closed key");
            let elements = split_top_level(key);
            let partition = &elements[0];
            table.partition_key = match partition.strip_prefix('(') {
                Some(inner) => split_top_level(inner.strip_suffix(')').expect("closed"))
                    .into_iter()
                    .collect(),
                None => vec![partition.clone()],
            };
            table.clustering_key = elements[1..].to_vec();
        } else {
            let (column, typ) = part.split_once(' ').expect("a column and its type");
            let typ = match typ.strip_suffix(" PRIMARY KEY") {
                Some(typ) => {
                    table.partition_key = vec![column.to_owned()];
                    typ
                }
                None => typ,
            };
            table.columns.insert(column.to_owned(), typ.to_owned());
        }
    }
    table
}

fn tables() -> HashMap<String, Table> {
    TABLES
        .iter()
        .map(|cql| parse_table(cql))
        .map(|table| (table.name.clone(), table))
        .collect()
}

// ----- a small parser of the statements --------------------------------------

const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "IF",
    "NOT",
    "EXISTS",
    "IN",
    "LIMIT",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "USING",
    "TIMESTAMP",
    "TTL",
    "NULL",
    "TRUE",
    "FALSE",
];

/// The identifiers of a statement, string literals left out.
fn identifiers(cql: &str) -> Vec<String> {
    let mut without_literals = String::new();
    let mut in_literal = false;
    for character in cql.chars() {
        if character == '\'' {
            in_literal = !in_literal;
            without_literals.push(' ');
        } else if !in_literal {
            without_literals.push(character);
        }
    }
    without_literals
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|token| !token.is_empty())
        .filter(|token| token.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .map(str::to_owned)
        .collect()
}

/// The table a statement reads or writes.
fn table_of(cql: &str) -> String {
    let tokens = identifiers(cql);
    let position = tokens
        .iter()
        .position(|token| {
            matches!(
                token.to_ascii_uppercase().as_str(),
                "FROM" | "INTO" | "UPDATE"
            )
        })
        .expect("a table clause");
    tokens[position + 1].clone()
}

fn columns_of(cql: &str) -> BTreeSet<String> {
    let table = table_of(cql);
    identifiers(cql)
        .into_iter()
        .filter(|token| *token != table)
        .filter(|token| !KEYWORDS.contains(&token.to_ascii_uppercase().as_str()))
        .collect()
}

fn where_clause(cql: &str) -> &str {
    cql.split_once(" WHERE ").map_or("", |(_, clause)| clause)
}

/// The columns of an INSERT's column list.
fn insert_columns(cql: &str) -> Vec<String> {
    let list = cql.split_once('(').expect("a column list").1;
    let list = list.split_once(')').expect("a closed list").0;
    list.split(',')
        .map(|column| column.trim().to_owned())
        .collect()
}

#[test]
fn the_schema_parses() {
    let tables = tables();
    assert_eq!(tables.len(), TABLES.len(), "table names are unique");
    let messages = &tables["messages"];
    assert_eq!(messages.partition_key, vec!["room_id", "bucket"]);
    assert_eq!(messages.clustering_key, vec!["id"]);
    assert_eq!(
        messages.columns["attachments"],
        "frozen<list<frozen<tuple<bigint, text, bigint, text>>>>"
    );
    assert_eq!(tables["users"].partition_key, vec!["id"]);
    assert_eq!(tables["user_rooms"].clustering_key, vec!["room_id"]);
    for table in tables.values() {
        assert!(!table.partition_key.is_empty(), "{} has a key", table.name);
        for key in table.partition_key.iter().chain(&table.clustering_key) {
            assert!(
                table.columns.contains_key(key),
                "{}.{key} is a column",
                table.name
            );
        }
    }
}

#[test]
fn statements_name_only_tables_and_columns_of_the_schema() {
    let tables = tables();
    let mut names = BTreeSet::new();
    for statement in DEFINITIONS {
        assert!(
            names.insert(statement.name),
            "{} is declared once",
            statement.name
        );
        let table = table_of(statement.cql);
        if table.starts_with("system.") {
            continue;
        }
        let schema = tables
            .get(&table)
            .unwrap_or_else(|| panic!("{}: no table {table}", statement.name));
        for column in columns_of(statement.cql) {
            assert!(
                schema.columns.contains_key(&column),
                "{}: {table} has no column {column}",
                statement.name
            );
        }
    }
}

#[test]
fn statements_address_whole_partitions() {
    let tables = tables();
    for statement in DEFINITIONS {
        let cql = statement.cql;
        assert!(
            !cql.to_ascii_uppercase().contains("ALLOW FILTERING"),
            "{}",
            statement.name
        );
        let table = table_of(cql);
        let Some(schema) = tables.get(&table) else {
            continue;
        };
        if cql.starts_with("INSERT") {
            let columns = insert_columns(cql);
            for key in schema.partition_key.iter().chain(&schema.clustering_key) {
                assert!(
                    columns.contains(key),
                    "{}: the insert sets {key}",
                    statement.name
                );
            }
            continue;
        }
        let clause = where_clause(cql);
        for key in &schema.partition_key {
            assert!(
                clause.contains(&format!("{key} = ?")) || clause.contains(&format!("{key} = '")),
                "{}: restricts the partition key {key} by equality",
                statement.name
            );
        }
        if cql.starts_with("UPDATE") {
            for key in &schema.clustering_key {
                assert!(
                    clause.contains(&format!("{key} = ?")),
                    "{}: an update names its row ({key})",
                    statement.name
                );
            }
        }
    }
}

#[test]
fn kinds_match_the_statements() {
    for statement in DEFINITIONS {
        let conditional = statement.cql.contains(" IF ");
        assert_eq!(
            conditional,
            statement.kind == Kind::Lwt,
            "{}: a lightweight transaction exactly when conditional",
            statement.name
        );
        let select = statement.cql.starts_with("SELECT");
        assert_eq!(
            select,
            matches!(statement.kind, Kind::Read | Kind::SerialRead),
            "{}: reads are SELECTs",
            statement.name
        );
        assert_eq!(
            statement.kind.is_idempotent(),
            !matches!(statement.kind, Kind::Lwt | Kind::Counter)
        );
        let counter =
            statement.cql.contains(" = members + ?") || statement.cql.contains(" = version + 1");
        assert_eq!(
            counter,
            statement.kind == Kind::Counter,
            "{}: counter updates are Counter",
            statement.name
        );
    }
}

#[test]
fn no_table_mixes_transactions_with_plain_writes() {
    let mut writers: HashMap<String, BTreeSet<&str>> = HashMap::new();
    for statement in DEFINITIONS {
        if matches!(statement.kind, Kind::Read | Kind::SerialRead) {
            continue;
        }
        let class = if statement.kind == Kind::Lwt {
            "lwt"
        } else {
            "plain"
        };
        writers
            .entry(table_of(statement.cql))
            .or_default()
            .insert(class);
    }
    for (table, classes) in &writers {
        assert_eq!(classes.len(), 1, "{table} is written by {classes:?}");
    }
    // The tables whose uniqueness needs Paxos are written by Paxos alone.
    for table in ["usernames", "rooms", "room_members", "settings"] {
        assert_eq!(
            writers[table].iter().copied().collect::<Vec<_>>(),
            ["lwt"],
            "{table}"
        );
    }
}

#[test]
fn every_select_is_bounded_by_a_key_or_a_limit() {
    // A statement read unpaged must not return a whole large partition:
    // either it names a row (every key column by equality), or it has a
    // LIMIT, or it is one of the partition reads that go through paging.
    let tables = tables();
    let paged = [
        "select_members",
        "select_user_rooms",
        "select_prefixes",
        "select_sizes_of_uploader",
        "select_file_rooms",
        "select_unreferenced_files",
        "select_user_sessions",
        "select_revocations",
        "select_directory_keys",
    ];
    for statement in DEFINITIONS {
        let cql = statement.cql;
        if !cql.starts_with("SELECT") || cql.contains("system.") {
            continue;
        }
        let schema = &tables[&table_of(cql)];
        let clause = where_clause(cql);
        let names_a_row = schema.clustering_key.iter().all(|key| {
            clause.contains(&format!("{key} = ?")) || clause.contains(&format!("{key} IN ?"))
        });
        assert!(
            names_a_row || cql.contains(" LIMIT ") || paged.contains(&statement.name),
            "{} reads an unbounded slice",
            statement.name
        );
    }
}

// ----- values through the driver's codecs ------------------------------------

/// A schema type as the driver describes it.
fn column_type(text: &str) -> ColumnType<'static> {
    let text = text.trim();
    if let Some(inner) = text
        .strip_prefix("frozen<")
        .and_then(|t| t.strip_suffix('>'))
    {
        return match column_type(inner) {
            ColumnType::Collection { typ, .. } => ColumnType::Collection { frozen: true, typ },
            other => other,
        };
    }
    if let Some(inner) = text.strip_prefix("list<").and_then(|t| t.strip_suffix('>')) {
        return ColumnType::Collection {
            frozen: false,
            typ: CollectionType::List(Box::new(column_type(inner))),
        };
    }
    if let Some(inner) = text
        .strip_prefix("tuple<")
        .and_then(|t| t.strip_suffix('>'))
    {
        return ColumnType::Tuple(
            split_top_level(inner)
                .iter()
                .map(|t| column_type(t))
                .collect(),
        );
    }
    ColumnType::Native(match text {
        "bigint" => NativeType::BigInt,
        "int" => NativeType::Int,
        "text" => NativeType::Text,
        "boolean" => NativeType::Boolean,
        other => panic!("no test mapping for the type {other}"),
    })
}

/// Column specs of `columns` of `table`, typed as the schema says; the bind
/// markers of `USING` are typed as CQL types them.
fn specs(table: &str, columns: &[&str]) -> Vec<ColumnSpec<'static>> {
    let tables = tables();
    let schema = &tables[table];
    columns
        .iter()
        .map(|column| {
            let typ = match *column {
                "[timestamp]" => ColumnType::Native(NativeType::BigInt),
                "[ttl]" => ColumnType::Native(NativeType::Int),
                "[applied]" => ColumnType::Native(NativeType::Boolean),
                name => column_type(&schema.columns[name]),
            };
            ColumnSpec::owned(
                (*column).to_owned(),
                typ,
                TableSpec::owned("chat".into(), table.into()),
            )
        })
        .collect()
}

fn split_columns(list: &str) -> Vec<&str> {
    list.split(", ").collect()
}

/// `values` serialized as the driver sends them for these columns (which
/// type-checks them against the schema).
fn serialize(specs: &[ColumnSpec<'static>], values: &impl SerializeRow) -> Vec<u8> {
    let mut buffer = Vec::new();
    values
        .serialize(
            &RowSerializationContext::from_specs(specs),
            &mut RowWriter::new(&mut buffer),
        )
        .expect("the values fit the schema's column types");
    buffer
}

/// A row deserialized as the driver reads it from a result with these
/// columns (which type-checks the row type against the schema).
fn deserialize<R>(specs: &[ColumnSpec<'static>], bytes: &[u8]) -> R
where
    R: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>,
{
    R::type_check(specs).expect("the row type fits the schema's column types");
    R::deserialize(ColumnIterator::new(specs, FrameSlice::new_borrowed(bytes)))
        .expect("the row deserializes")
}

/// A null cell, as a result carries for a column without a value.
fn null_cell(bytes: &mut Vec<u8>) {
    bytes.extend_from_slice(&(-1i32).to_be_bytes());
}

fn sample_messages() -> Vec<Message> {
    let base = EPOCH_MS + 123 * 24 * 60 * 60 * 1000;
    let plain_id = Id::from_parts(base, 5, 1);
    let full_id = Id::from_parts(base + 10, 5, 2);
    let plain = Message {
        id: plain_id,
        room_id: RoomId::Group(Id(77)),
        sender_id: Id(1),
        content: "plain".into(),
        mentions: Vec::new(),
        attachments: Vec::new(),
        reply_to: None,
        client_id: None,
        created_at: plain_id.unix_ms(),
        edited_at: None,
        deleted: false,
    };
    let full = Message {
        id: full_id,
        room_id: RoomId::dm(Id(3), Id(1)).unwrap(),
        sender_id: Id(3),
        content: "everything, with unicode: ✓ é 😀".into(),
        mentions: vec![Id(1), Id(u64::from(u32::MAX) + 9)],
        attachments: vec![
            File {
                id: Id(900),
                name: "notes.txt".into(),
                size: 1234,
                content_type: "text/plain".into(),
                created_at: Id(900).unix_ms(),
                thumbnail_url: None,
            },
            File {
                id: Id(901),
                name: "big.bin".into(),
                size: 5_000_000_000,
                content_type: "application/octet-stream".into(),
                created_at: Id(901).unix_ms(),
                thumbnail_url: None,
            },
        ],
        reply_to: Some(plain_id),
        client_id: Some("client-1".into()),
        created_at: full_id.unix_ms(),
        edited_at: Some(full_id.unix_ms() + 60_000),
        deleted: false,
    };
    let tombstone = Message {
        id: Id(full_id.0 + 1),
        content: String::new(),
        mentions: Vec::new(),
        attachments: Vec::new(),
        deleted: true,
        ..full.clone()
    };
    vec![plain, full, tombstone]
}

#[test]
fn messages_round_trip_through_the_driver() {
    let columns = split_columns(message_columns!());
    let select = specs("messages", &columns);
    let mut insert_columns = columns.clone();
    insert_columns.push("[timestamp]");
    let insert = specs("messages", &insert_columns);
    let buckets = Buckets::default();
    for message in sample_messages() {
        let values = MessageValues::encode(&message, &buckets);
        // What the INSERT binds fits the statement's markers.
        serialize(&insert, &values.clone().into_insert());
        // And what a SELECT returns of such a row reads back the message.
        let stored = (
            values.room_id,
            values.bucket,
            values.id,
            values.sender_id,
            values.content,
            values.mentions,
            values.attachments,
            values.reply_to,
            values.client_id,
            values.created_at,
            values.edited_at,
            values.deleted,
        );
        let row: MessageRow = deserialize(&select, &serialize(&select, &stored));
        assert_eq!(row.decode().unwrap(), message);
    }
}

#[test]
fn rooms_round_trip_through_the_driver() {
    let columns = split_columns(room_columns!());
    let select = specs("rooms", &columns);
    for (new, count) in [
        (
            NewRoom {
                id: RoomId::Group(Id(42)),
                kind: RoomKind::Group,
                name: "general ✓".into(),
                visibility: Visibility::Private,
                owner_id: Some(Id(7)),
                created_at: EPOCH_MS + 99,
                max_members: None,
            },
            3,
        ),
        (
            NewRoom {
                id: RoomId::dm(Id(8), Id(2)).unwrap(),
                kind: RoomKind::Dm,
                name: String::new(),
                visibility: Visibility::Private,
                owner_id: None,
                created_at: EPOCH_MS + 100,
                max_members: None,
            },
            2,
        ),
    ] {
        // What the INSERT binds fits it (the room's columns, then the token
        // and the bucket window).
        let mut insert_columns = columns.clone();
        insert_columns.push("creation_token");
        insert_columns.push("bucket_window_ms");
        let bytes = serialize(
            &specs("rooms", &insert_columns),
            &room_values(&new, count, 7, &Buckets::default()),
        );
        // A SELECT returns the room's columns, a prefix of the insert's.
        let row: RoomRow = deserialize(&select, &bytes);
        assert_eq!(
            row.decode().unwrap(),
            Some(Room {
                id: new.id,
                kind: new.kind,
                name: new.name.clone(),
                visibility: new.visibility,
                owner_id: new.owner_id,
                member_count: count as u32,
                created_at: new.created_at,
                max_members: None,
            })
        );
    }
}

#[test]
fn users_round_trip_through_the_driver() {
    let user = NewUser {
        id: Id(123_456_789_012),
        username: "Ann_B".into(),
        display_name: "Ann B.".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: EPOCH_MS + 5,
    };
    let insert = specs(
        "users",
        &insert_columns(
            DEFINITIONS
                .iter()
                .find(|s| s.name == "insert_user")
                .unwrap()
                .cql,
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    let select = specs("users", &split_columns(user_columns!()));
    // The stored row: the inserted columns, then no last_seen_at.
    let mut bytes = serialize(&insert, &user_values(&user));
    null_cell(&mut bytes);
    let row: UserRow = deserialize(&select, &bytes);
    assert_eq!(
        row.into_credentials(),
        Some(Credentials {
            user: UserRecord {
                id: user.id,
                username: user.username.clone(),
                display_name: user.display_name.clone(),
                created_at: user.created_at,
                last_seen_at: None,
            },
            password_hash: user.password_hash.clone(),
        })
    );
}

#[test]
fn memberships_round_trip_through_the_driver() {
    let room = RoomId::Group(Id(42));
    // What the inserts bind fits them.
    let add = DEFINITIONS
        .iter()
        .find(|s| s.name == "add_member")
        .unwrap()
        .cql;
    let columns = insert_columns(add);
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let values = membership_values(&room, Id(9), Role::Admin, EPOCH_MS + 1);
    serialize(&specs("room_members", &columns), &values);
    let index = DEFINITIONS
        .iter()
        .find(|s| s.name == "insert_user_room")
        .unwrap()
        .cql;
    let columns = insert_columns(index);
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    serialize(
        &specs("user_rooms", &columns),
        &user_room_values(&room, Id(9), EPOCH_MS + 1),
    );

    // What the selects return reads back.
    let member_specs = specs("room_members", &split_columns(member_columns!()));
    let row: MemberRow = deserialize(
        &member_specs,
        &serialize(&member_specs, &(values.1, values.2.clone(), values.3)),
    );
    assert_eq!(
        row.decode().unwrap(),
        Some((Id(9), Role::Admin, EPOCH_MS + 1))
    );
    let index_specs = specs("user_rooms", &split_columns(user_room_columns!()));
    let row: UserRoomRow = deserialize(
        &index_specs,
        &serialize(
            &index_specs,
            &(room.to_string(), Some(EPOCH_MS as i64), Some(77i64)),
        ),
    );
    assert_eq!(row.decode().unwrap(), (room, true, Some(Id(77))));

    let unread_specs = specs("messages", &split_columns(unread_columns!()));
    let row: UnreadColumns = deserialize(
        &unread_specs,
        &serialize(&unread_specs, &(5i64, 6i64, Some(true))),
    );
    let row = super::paging::UnreadRow::from(row);
    assert_eq!((row.id, row.sender, row.deleted), (Id(5), Id(6), true));
}

#[test]
fn lightweight_transaction_answers_read_through_the_driver() {
    let specs = specs("usernames", &["[applied]", "username_lower", "user_id"]);
    let bytes = serialize(&specs, &(false, "ann", 42i64));
    let row: Row = deserialize(&specs, &bytes);
    assert_eq!(row.columns[2], Some(CqlValue::BigInt(42)));
    let answer = LwtAnswer::parse(
        specs.iter().map(|spec| spec.name().to_owned()).collect(),
        Some(row),
    )
    .unwrap();
    assert!(!answer.applied);
    assert_eq!(answer.bigint("user_id"), Some(42));
}
