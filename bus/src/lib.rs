//! The bus: pub/sub on named channels and durable work streams (issue: real-time).
