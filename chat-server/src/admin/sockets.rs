//! The sockets the Admin UI lists, in its `SerializedSocket` shape, and what changed between
//! two looks at this node's sockets (the UI's `socket_connected`, `socket_disconnected`,
//! `room_joined` and `room_left`).

use std::{
    collections::{BTreeSet, HashMap},
    time::SystemTime,
};

use chat_core::server::Io;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::NAMESPACES;

/// Remote sockets whose rooms `all_sockets` asks their node for (one request each, 16 at a
/// time); past this, a remote socket is listed with its own room only.
const MAX_REMOTE_ROOMS: usize = 1000;

/// One socket of this node as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LocalSocket {
    pub(super) id: String,
    pub(super) nsp: &'static str,
    transport: &'static str,
    pub(super) rooms: BTreeSet<String>,
    url: String,
    /// When this node first saw it (at most one tick late).
    since: SystemTime,
}

/// The UI's `SerializedSocket`. Handshake headers and the client's address are not kept by
/// the node (chat-core drops them after the handshake), so they are empty.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Serialized {
    id: String,
    client_id: String,
    transport: &'static str,
    nsp: String,
    data: Value,
    handshake: Value,
    rooms: Vec<String>,
}

/// Changes between two snapshots of this node's sockets.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub(super) connected: Vec<LocalSocket>,
    pub(super) disconnected: Vec<LocalSocket>,
    /// `(nsp, room, socket id)`.
    pub(super) joined: Vec<(&'static str, String, String)>,
    pub(super) left: Vec<(&'static str, String, String)>,
}

/// This node's sockets of the chat's and the admin namespace, keeping `since` from `before`.
pub(super) fn local(
    io: &Io,
    before: &HashMap<String, LocalSocket>,
) -> HashMap<String, LocalSocket> {
    let now = SystemTime::now();
    let mut out = HashMap::new();
    for nsp in NAMESPACES {
        let Some(ns) = io.of(nsp) else { continue };
        for s in ns.sockets() {
            let id = s.id.to_string();
            let transport = match s.transport_type() {
                socketioxide::TransportType::Websocket => "websocket",
                socketioxide::TransportType::Polling => "polling",
            };
            let since = before.get(&id).map_or(now, |b| b.since);
            let socket = LocalSocket {
                rooms: s.rooms().iter().map(|r| r.to_string()).collect(),
                url: s.req_parts().uri.to_string(),
                id: id.clone(),
                nsp,
                transport,
                since,
            };
            out.insert(id, socket);
        }
    }
    out
}

/// What changed from `before` to `after`.
pub(super) fn diff(
    before: &HashMap<String, LocalSocket>,
    after: &HashMap<String, LocalSocket>,
) -> Changes {
    let mut c = Changes::default();
    for (id, s) in after {
        let Some(old) = before.get(id) else {
            c.connected.push(s.clone());
            continue;
        };
        for room in s.rooms.difference(&old.rooms) {
            c.joined.push((s.nsp, room.clone(), id.clone()));
        }
        for room in old.rooms.difference(&s.rooms) {
            c.left.push((s.nsp, room.clone(), id.clone()));
        }
    }
    c.disconnected = before
        .iter()
        .filter(|(id, _)| !after.contains_key(*id))
        .map(|(_, s)| s.clone())
        .collect();
    c
}

/// The chat user of a socket, from its `user:` room.
fn user(rooms: &BTreeSet<String>) -> Option<&str> {
    rooms.iter().find_map(|r| r.strip_prefix("user:"))
}

impl LocalSocket {
    pub(super) fn serialize(&self, node: &str) -> Serialized {
        let millis = self
            .since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let query: Map<String, Value> = self
            .url
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default()
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
            .collect();
        Serialized {
            id: self.id.clone(),
            client_id: self.id.clone(),
            transport: self.transport,
            nsp: self.nsp.to_owned(),
            data: json!({ "node": node, "user": user(&self.rooms) }),
            handshake: json!({
                "address": "",
                "headers": {},
                "query": query,
                "issued": millis,
                "secure": false,
                "time": humantime::format_rfc3339_millis(self.since).to_string(),
                "url": self.url,
                "xdomain": false,
            }),
            rooms: self.rooms.iter().cloned().collect(),
        }
    }
}

/// Every socket of the cluster for `all_sockets`: this node's in full, the others' with their
/// rooms (asked of their node) and their node's uid; a node that does not answer within the
/// cluster's request timeout is left out.
pub(super) async fn all(
    io: &Io,
    node: &str,
    mine: &HashMap<String, LocalSocket>,
) -> Vec<Serialized> {
    let mut out: Vec<Serialized> = mine.values().map(|s| s.serialize(node)).collect();
    for nsp in NAMESPACES {
        let Some(ns) = io.of(nsp) else { continue };
        let remote = match ns.fetch_sockets().await {
            Ok(sockets) => sockets,
            Err(e) => {
                tracing::warn!(cause = %e, nsp, "admin ui: cannot list the cluster's sockets");
                continue;
            }
        };
        let remote: Vec<_> = remote
            .into_iter()
            .filter(|s| !mine.contains_key(&s.data().id.to_string()))
            .collect();
        let described = stream::iter(remote.into_iter().enumerate())
            .map(|(i, s)| async move {
                let id = s.data().id.to_string();
                let rooms: BTreeSet<String> = if i < MAX_REMOTE_ROOMS {
                    s.rooms().await.map_or_else(
                        |_| [id.clone()].into(),
                        |r| r.iter().map(|r| r.to_string()).collect(),
                    )
                } else {
                    [id.clone()].into()
                };
                Serialized {
                    client_id: id.clone(),
                    transport: "unknown",
                    nsp: nsp.to_owned(),
                    data: json!({ "server": s.data().server_id.to_string(), "user": user(&rooms) }),
                    handshake: json!({ "address": "", "headers": {}, "query": {} }),
                    rooms: rooms.into_iter().collect(),
                    id,
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        out.extend(described);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(id: &str, rooms: &[&str]) -> LocalSocket {
        LocalSocket {
            id: id.into(),
            nsp: "/",
            transport: "polling",
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            url: "/socket.io/?EIO=4&transport=polling".into(),
            since: SystemTime::UNIX_EPOCH,
        }
    }

    /// A new socket, a gone one and a room change each become the UI's event, once.
    #[test]
    fn diff_finds_connects_disconnects_and_rooms() {
        let before: HashMap<_, _> = [
            ("a".to_owned(), socket("a", &["a", "user:alice"])),
            ("b".to_owned(), socket("b", &["b"])),
        ]
        .into();
        let after: HashMap<_, _> = [
            ("a".to_owned(), socket("a", &["a", "group:g"])),
            ("c".to_owned(), socket("c", &["c"])),
        ]
        .into();
        let c = diff(&before, &after);
        assert_eq!(
            c.connected
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
        assert_eq!(
            c.disconnected
                .iter()
                .map(|s| s.id.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(c.joined, [("/", "group:g".to_owned(), "a".to_owned())]);
        assert_eq!(c.left, [("/", "user:alice".to_owned(), "a".to_owned())]);
        assert!(diff(&after, &after).connected.is_empty());
    }

    /// The serialized socket names its user (from its `user:` room) and its handshake query.
    #[test]
    fn serialized_socket_shows_user_and_query() {
        let s = serde_json::to_value(socket("a", &["a", "user:alice"]).serialize("n1")).unwrap();
        assert_eq!(s["data"]["user"], "alice");
        assert_eq!(s["data"]["node"], "n1");
        assert_eq!(s["clientId"], "a");
        assert_eq!(s["handshake"]["query"]["transport"], "polling");
        assert_eq!(s["rooms"], json!(["a", "user:alice"]));
    }
}
