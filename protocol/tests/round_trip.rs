//! Every frame and object survives both codecs unchanged, and the JSON form
//! is exactly what PROTOCOL.md shows.

use std::collections::BTreeMap;

use chat_protocol::frames::{
    ClientAction, ClientFrame, ErrorFrame, ResumedRoom, SendMessage, ServerFrame,
};
use chat_protocol::rest::{CreateRoomRequest, HistoryResponse, PostMessageRequest};
use chat_protocol::*;
use serde_json::json;

fn user() -> User {
    User {
        id: Id(1 << 40),
        username: "alice".into(),
        display_name: "Alice".into(),
        created_at: 1_704_067_200_123,
        online: Some(true),
        last_seen_at: None,
    }
}

fn message() -> Message {
    Message {
        id: Id(u64::MAX - 1),
        room_id: RoomId::dm(Id(7), Id(3)).unwrap(),
        sender_id: Id(3),
        content: "hi @bob ✓".into(),
        mentions: vec![Id(7)],
        attachments: vec![File {
            id: Id(99),
            name: "a.png".into(),
            size: 10,
            content_type: "image/png".into(),
            created_at: 1_704_067_200_000,
            thumbnail_url: Some("/api/v1/files/99/thumbnail".into()),
        }],
        reply_to: Some(Id(5)),
        client_id: Some("c-1".into()),
        created_at: 1_704_067_200_999,
        edited_at: None,
        deleted: false,
    }
}

fn summary() -> RoomSummary {
    RoomSummary {
        room: Room {
            id: RoomId::Group(Id(12)),
            kind: RoomKind::Group,
            name: "general".into(),
            visibility: Visibility::Public,
            owner_id: Some(Id(3)),
            member_count: 2,
            created_at: 1,
            max_members: None,
        },
        unread_count: 4,
        last_message: Some(message()),
        role: Role::Owner,
        mention_count: 1,
    }
}

fn server_frames() -> Vec<ServerFrame> {
    let mut resumed = BTreeMap::new();
    resumed.insert(
        RoomId::Group(Id(12)),
        ResumedRoom {
            replayed: 3,
            complete: true,
        },
    );
    vec![
        ServerFrame::Ready {
            session_id: "s1".into(),
            user: user(),
            rooms: vec![summary()],
            heartbeat_interval_ms: 30_000,
            rooms_truncated: false,
        },
        ServerFrame::Ready {
            session_id: "s2".into(),
            user: user(),
            rooms: vec![summary()],
            heartbeat_interval_ms: 30_000,
            rooms_truncated: true,
        },
        ServerFrame::Message { message: message() },
        ServerFrame::Ack {
            reference: Some("r1".into()),
            client_id: Some("c-1".into()),
            message_id: Id(77),
            created_at: 5,
        },
        ServerFrame::Notification {
            notification: chat_protocol::Notification::of_mention(&message()),
        },
        ServerFrame::Mention {
            room_id: RoomId::Group(Id(12)),
            message_id: Id(77),
            sender_id: Id(3),
            content: "@bob".into(),
        },
        ServerFrame::MessageDeleted {
            room_id: RoomId::Group(Id(12)),
            message_id: Id(77),
        },
        ServerFrame::Presence {
            user_id: Id(3),
            online: false,
            last_seen_at: Some(9),
        },
        ServerFrame::RoomAdded { room: summary() },
        ServerFrame::RoomRemoved {
            room_id: RoomId::Group(Id(12)),
        },
        ServerFrame::History {
            reference: None,
            room_id: RoomId::Group(Id(12)),
            messages: vec![message()],
            has_more: true,
        },
        ServerFrame::Resumed {
            reference: None,
            rooms: resumed,
        },
        ServerFrame::Error(ErrorFrame {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            reference: Some("r".into()),
            client_id: Some("c".into()),
            retry_after_ms: Some(100),
        }),
        ServerFrame::Pong { reference: None },
    ]
}

fn client_frames() -> Vec<ClientFrame> {
    let mut rooms = BTreeMap::new();
    rooms.insert(RoomId::Group(Id(12)), Id(70));
    rooms.insert(RoomId::dm(Id(1), Id(2)).unwrap(), Id(71));
    vec![
        ClientFrame {
            reference: Some("r1".into()),
            action: ClientAction::Send(SendMessage {
                room_id: RoomId::Group(Id(12)),
                content: "hello".into(),
                client_id: Some("c1".into()),
                reply_to: None,
                attachment_ids: vec![],
            }),
        },
        ClientFrame {
            reference: None,
            action: ClientAction::History {
                room_id: RoomId::Group(Id(1)),
                before: Some(Id(9)),
                after: None,
                limit: Some(10),
            },
        },
        ClientFrame {
            reference: None,
            action: ClientAction::Resume { rooms },
        },
        ClientFrame {
            reference: Some("p".into()),
            action: ClientAction::Ping,
        },
    ]
}

#[test]
fn every_frame_round_trips_in_both_codecs() {
    for codec in Codec::ALL {
        for frame in server_frames() {
            let bytes = codec.encode(&frame).unwrap();
            assert_eq!(
                codec.decode::<ServerFrame>(&bytes).unwrap(),
                frame,
                "{codec:?}"
            );
        }
        for frame in client_frames() {
            let bytes = codec.encode(&frame).unwrap();
            assert_eq!(
                codec.decode::<ClientFrame>(&bytes).unwrap(),
                frame,
                "{codec:?}"
            );
        }
    }
}

#[test]
fn json_shapes_match_the_protocol() {
    let frame = ServerFrame::Ack {
        reference: Some("r1".into()),
        client_id: Some("c-1".into()),
        message_id: Id(77),
        created_at: 5,
    };
    assert_eq!(
        serde_json::to_value(&frame).unwrap(),
        json!({"type":"ack","ref":"r1","client_id":"c-1","message_id":"77","created_at":5})
    );
    let ready = serde_json::to_value(&server_frames()[0]).unwrap();
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["user"]["id"], json!((1u64 << 40).to_string()));
    // RoomSummary is a Room with extra fields, not a nested object.
    assert_eq!(ready["rooms"][0]["id"], "12");
    assert_eq!(ready["rooms"][0]["unread_count"], 4);
    assert_eq!(ready["rooms"][0]["role"], "owner");
    assert_eq!(ready["rooms"][0]["last_message"]["room_id"], "dm:3:7");
    let msg = serde_json::to_value(message()).unwrap();
    assert!(
        msg.get("deleted").is_none(),
        "deleted is only present when true"
    );
    assert!(msg.get("edited_at").is_none());
}

#[test]
fn msgpack_frames_are_maps_with_integer_ids() {
    let bytes = Codec::MsgPack
        .encode(&ServerFrame::Message { message: message() })
        .unwrap();
    let value: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
    let map = value.as_map().expect("a map");
    let get = |m: &Vec<(rmpv::Value, rmpv::Value)>, k: &str| {
        m.iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get(map, "type").unwrap().as_str(), Some("message"));
    let inner = get(map, "message").unwrap();
    let inner = inner.as_map().unwrap();
    assert_eq!(get(inner, "id").unwrap().as_u64(), Some(u64::MAX - 1));
    assert_eq!(get(inner, "room_id").unwrap().as_str(), Some("dm:3:7"));
}

#[test]
fn client_frames_from_hand_written_json() {
    let frame: ClientFrame = serde_json::from_str(
        r#"{"type":"send","ref":"a","room_id":"12","content":"x","client_id":"k","future_field":1}"#,
    )
    .unwrap();
    assert_eq!(frame.reference.as_deref(), Some("a"));
    assert!(
        matches!(frame.action, ClientAction::Send(SendMessage { ref client_id, .. }) if client_id.as_deref() == Some("k"))
    );
    // Ids as integers are accepted too.
    let frame: ClientFrame =
        serde_json::from_str(r#"{"type":"read","room_id":"12","message_id":5}"#).unwrap();
    assert_eq!(
        frame.action,
        ClientAction::Read {
            room_id: RoomId::Group(Id(12)),
            message_id: Id(5)
        }
    );
    for bad in [
        r#"{"type":"nope"}"#,
        r#"{"room_id":"1"}"#,
        r#"{"type":"typing","room_id":"1","typing":"yes"}"#,
        r#"{"type":"send","room_id":"dm:2:1","content":"x"}"#,
        r#"[1,2]"#,
    ] {
        assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
    }
}

#[test]
fn rest_bodies_reject_unknown_fields() {
    assert!(
        serde_json::from_str::<CreateRoomRequest>(r#"{"name":"a","visiblity":"private"}"#).is_err()
    );
    let req: CreateRoomRequest = serde_json::from_str(r#"{"name":"a"}"#).unwrap();
    assert_eq!(req.visibility, Visibility::Public);
    assert!(serde_json::from_str::<PostMessageRequest>(r#"{"content":1}"#).is_err());
    let page = HistoryResponse {
        messages: vec![message()],
        has_more: false,
    };
    let back: HistoryResponse =
        serde_json::from_value(serde_json::to_value(&page).unwrap()).unwrap();
    assert_eq!(back, page);
}

#[test]
fn kinds_match_the_wire_type() {
    for frame in server_frames() {
        let value = serde_json::to_value(&frame).unwrap();
        assert_eq!(value["type"], frame.kind());
    }
    for frame in client_frames() {
        let value = serde_json::to_value(&frame).unwrap();
        assert_eq!(value["type"], frame.action.kind());
    }
}
