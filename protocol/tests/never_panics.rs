//! Decoding a client frame never panics, whatever a client sends.
//!
//! Every byte of a WebSocket frame is client-controlled, so both codecs are
//! fed arbitrary bytes and, to get past the first byte, structurally
//! plausible input: JSON objects and MessagePack maps with a known or random
//! `type` and known or random fields holding values of every shape. Each
//! input must decode to a frame that survives its codec unchanged, or give a
//! decode error (the gateway answers `bad_request` with its message); never a
//! panic, never an encoding error.

use chat_protocol::frames::ClientFrame;
use chat_protocol::{Codec, CodecError};
use proptest::prelude::*;
use rmpv::Value as Mp;
use serde_json::Value as Js;

/// Enough cases to reach the deeper fields, few enough to keep the suite fast.
fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// The frame types of the protocol, plus near misses.
const TYPES: &[&str] = &[
    "send", "edit", "delete", "typing", "read", "history", "resume", "join", "leave", "ping",
    "Send", "pong", "", "send ",
];

/// The fields of client frames, plus a stranger.
const FIELDS: &[&str] = &[
    "ref",
    "type",
    "room_id",
    "message_id",
    "content",
    "client_id",
    "reply_to",
    "attachment_ids",
    "typing",
    "before",
    "after",
    "limit",
    "rooms",
    "unknown",
];

/// Strings that are, or are almost, ids and room ids.
fn id_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("dm:{a}:{b}")),
        Just("dm:".to_owned()),
        Just("dm:1:".to_owned()),
        Just("+1".to_owned()),
        Just("007".to_owned()),
        Just("18446744073709551616".to_owned()),
        "\\PC{0,24}",
    ]
}

/// A JSON scalar of any kind, biased towards the edges of the id types.
fn json_scalar() -> impl Strategy<Value = Js> {
    prop_oneof![
        Just(Js::Null),
        any::<bool>().prop_map(Js::Bool),
        any::<u64>().prop_map(Js::from),
        any::<i64>().prop_map(Js::from),
        any::<f64>().prop_map(Js::from),
        id_like().prop_map(Js::String),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Js> {
    json_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Js::Array),
            prop::collection::vec((id_like(), inner), 0..4)
                .prop_map(|entries| Js::Object(entries.into_iter().collect())),
        ]
    })
}

/// A field name: a known one mostly, sometimes anything.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

/// The JSON shape of one field of a client frame.
#[derive(Clone, Copy, Debug)]
enum Shape {
    RoomId,
    Id,
    Text,
    Flag,
    Count,
    Ids,
    Rooms,
}

/// A field of a frame: its name, its shape and whether it is required.
type Field = (&'static str, Shape, bool);

/// Each frame type with its fields.
const SCHEMAS: &[(&str, &[Field])] = &[
    (
        "send",
        &[
            ("room_id", Shape::RoomId, true),
            ("content", Shape::Text, true),
            ("client_id", Shape::Text, false),
            ("reply_to", Shape::Id, false),
            ("attachment_ids", Shape::Ids, false),
        ],
    ),
    (
        "edit",
        &[
            ("room_id", Shape::RoomId, true),
            ("message_id", Shape::Id, true),
            ("content", Shape::Text, true),
        ],
    ),
    (
        "delete",
        &[
            ("room_id", Shape::RoomId, true),
            ("message_id", Shape::Id, true),
        ],
    ),
    (
        "typing",
        &[
            ("room_id", Shape::RoomId, true),
            ("typing", Shape::Flag, true),
        ],
    ),
    (
        "read",
        &[
            ("room_id", Shape::RoomId, true),
            ("message_id", Shape::Id, true),
        ],
    ),
    (
        "history",
        &[
            ("room_id", Shape::RoomId, true),
            ("before", Shape::Id, false),
            ("after", Shape::Id, false),
            ("limit", Shape::Count, false),
        ],
    ),
    ("resume", &[("rooms", Shape::Rooms, true)]),
    ("join", &[("room_id", Shape::RoomId, true)]),
    ("leave", &[("room_id", Shape::RoomId, true)]),
    ("ping", &[]),
];

/// A room id in its canonical spelling (a DM of one user with itself is not).
fn room_id() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("dm:{}:{}", a.min(b), a.max(b))),
    ]
}

/// An id as a client may spell it: a decimal string or an integer.
fn id() -> impl Strategy<Value = Js> {
    prop_oneof![
        any::<u64>().prop_map(|n| Js::String(n.to_string())),
        any::<u64>().prop_map(Js::from),
    ]
}

/// A well-typed value of `shape`.
fn well_typed(shape: Shape) -> BoxedStrategy<Js> {
    match shape {
        Shape::RoomId => room_id().prop_map(Js::String).boxed(),
        Shape::Id => id().boxed(),
        Shape::Text => "\\PC{0,40}".prop_map(Js::String).boxed(),
        Shape::Flag => any::<bool>().prop_map(Js::Bool).boxed(),
        Shape::Count => any::<u32>().prop_map(Js::from).boxed(),
        Shape::Ids => prop::collection::vec(id(), 0..4)
            .prop_map(Js::Array)
            .boxed(),
        Shape::Rooms => prop::collection::vec((room_id(), id()), 0..4)
            .prop_map(|rooms| Js::Object(rooms.into_iter().collect()))
            .boxed(),
    }
}

/// A client frame of a known type whose fields are mostly well typed: each
/// may be left out, or hold any value instead; `ref` and strangers may be
/// added. Many of these decode, so the checks go past the first bad field.
fn near_valid_json_frame() -> impl Strategy<Value = Js> {
    prop::sample::select(SCHEMAS).prop_flat_map(|(kind, fields)| {
        let fields: Vec<_> = fields
            .iter()
            .map(|&(name, shape, required)| {
                let present = if required { 0.95 } else { 0.5 };
                prop::option::weighted(
                    present,
                    prop_oneof![6 => well_typed(shape), 1 => json_value()],
                )
                .prop_map(move |value| (name, value))
            })
            .collect();
        (
            fields,
            prop::option::of(prop_oneof![
                3 => "\\PC{0,40}".prop_map(Js::String),
                1 => json_value(),
            ]),
            prop::collection::vec((field_name(), json_value()), 0..2),
        )
            .prop_map(move |(fields, reference, strangers)| {
                let mut object = serde_json::Map::new();
                // Strangers first: a known field written after them wins.
                for (name, value) in strangers {
                    object.insert(name, value);
                }
                object.insert("type".to_owned(), Js::from(kind));
                for (name, value) in fields {
                    if let Some(value) = value {
                        object.insert(name.to_owned(), value);
                    }
                }
                if let Some(reference) = reference {
                    object.insert("ref".to_owned(), reference);
                }
                Js::Object(object)
            })
    })
}

/// A JSON object shaped like a client frame: near valid, or a random `type`
/// with random fields.
fn plausible_json_frame() -> impl Strategy<Value = Js> {
    prop_oneof![near_valid_json_frame(), loose_json_frame()]
}

/// A JSON object with a known or random `type` and random fields.
fn loose_json_frame() -> impl Strategy<Value = Js> {
    (
        prop::option::of(prop_oneof![
            prop::sample::select(TYPES).prop_map(Js::from),
            json_scalar(),
        ]),
        prop::collection::vec((field_name(), json_value()), 0..7),
    )
        .prop_map(|(kind, fields)| {
            let mut object = serde_json::Map::new();
            if let Some(kind) = kind {
                object.insert("type".to_owned(), kind);
            }
            for (name, value) in fields {
                object.insert(name, value);
            }
            Js::Object(object)
        })
}

/// The MessagePack form of a JSON value.
fn to_msgpack(value: &Js) -> Mp {
    match value {
        Js::Null => Mp::Nil,
        Js::Bool(b) => Mp::Boolean(*b),
        Js::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Mp::from(u),
            (_, Some(i), _) => Mp::from(i),
            (_, _, Some(f)) => Mp::F64(f),
            _ => Mp::Nil,
        },
        Js::String(s) => Mp::from(s.as_str()),
        Js::Array(items) => Mp::Array(items.iter().map(to_msgpack).collect()),
        Js::Object(entries) => Mp::Map(
            entries
                .iter()
                .map(|(k, v)| (Mp::from(k.as_str()), to_msgpack(v)))
                .collect(),
        ),
    }
}

/// MessagePack values JSON cannot express: binary, extension types, 32-bit
/// floats and non-string map keys.
fn msgpack_only() -> impl Strategy<Value = Mp> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Mp::Binary),
        (any::<i8>(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(t, d)| Mp::Ext(t, d)),
        any::<f32>().prop_map(Mp::F32),
        (any::<i64>(), json_scalar())
            .prop_map(|(k, v)| Mp::Map(vec![(Mp::from(k), to_msgpack(&v))])),
    ]
}

/// A MessagePack map shaped like a client frame, possibly with
/// MessagePack-only values and a non-string key.
fn plausible_msgpack_frame() -> impl Strategy<Value = Mp> {
    (
        plausible_json_frame(),
        prop::collection::vec((field_name(), msgpack_only()), 0..3),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(frame, extra, odd_key)| {
            let Mp::Map(mut entries) = to_msgpack(&frame) else {
                unreachable!("a JSON object becomes a MessagePack map");
            };
            entries.extend(extra.into_iter().map(|(k, v)| (Mp::from(k), v)));
            if let Some(key) = odd_key {
                entries.push((Mp::from(key), Mp::Nil));
            }
            Mp::Map(entries)
        })
}

fn write_msgpack(value: &Mp) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value).expect("writing to a Vec cannot fail");
    bytes
}

/// Decodes `bytes` as a client frame; a frame must survive its codec, an
/// error must be a decode error with a message.
fn check(codec: Codec, bytes: &[u8]) -> Result<(), TestCaseError> {
    match codec.decode::<ClientFrame>(bytes) {
        Ok(frame) => {
            let again = codec
                .encode(&frame)
                .map_err(|e| TestCaseError::fail(format!("re-encoding {frame:?}: {e}")))?;
            let back: ClientFrame = codec
                .decode(&again)
                .map_err(|e| TestCaseError::fail(format!("decoding re-encoded {frame:?}: {e}")))?;
            prop_assert_eq!(back, frame);
        }
        Err(error) => {
            prop_assert!(
                matches!(
                    (&error, codec),
                    (CodecError::Json(_), Codec::Json)
                        | (CodecError::MsgPackDecode(_), Codec::MsgPack)
                ),
                "{codec:?} decode gave {error:?}"
            );
            prop_assert!(!error.to_string().is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for codec in Codec::ALL {
            check(codec, &bytes)?;
        }
    }

    #[test]
    fn arbitrary_text_never_panics_as_json(text in "\\PC{0,128}") {
        check(Codec::Json, text.as_bytes())?;
    }

    #[test]
    fn plausible_json_frames_never_panic(frame in plausible_json_frame()) {
        let bytes = serde_json::to_vec(&frame).expect("a JSON value serializes");
        check(Codec::Json, &bytes)?;
    }

    #[test]
    fn truncated_json_frames_never_panic(frame in plausible_json_frame(), cut in any::<prop::sample::Index>()) {
        let bytes = serde_json::to_vec(&frame).expect("a JSON value serializes");
        check(Codec::Json, &bytes[..cut.index(bytes.len() + 1)])?;
    }

    #[test]
    fn plausible_msgpack_frames_never_panic(frame in plausible_msgpack_frame()) {
        check(Codec::MsgPack, &write_msgpack(&frame))?;
    }

    #[test]
    fn truncated_or_flipped_msgpack_frames_never_panic(
        frame in plausible_msgpack_frame(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let mut bytes = write_msgpack(&frame);
        if !bytes.is_empty() {
            let at = flip.0.index(bytes.len());
            bytes[at] ^= flip.1;
        }
        check(Codec::MsgPack, &bytes[..cut.index(bytes.len() + 1)])?;
    }
}
