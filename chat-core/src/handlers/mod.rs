//! Socket.IO event handlers, one file per event group, registered in one place.
//!
//! Every acknowledged event is queued behind the socket's earlier ones (`queue`), then goes
//! through a `Call` (`call`): session and token-expiry check, the per-user event rate,
//! payload parsing, then the handler; its `Result` becomes the ack `{ok: true, ...}` or
//! `{ok: false, error: {code, message}}`. Handlers are written once against the store traits
//! and socketioxide's adapter, so they run unchanged on any backend.

mod blocks;
mod call;
mod connection;
mod contacts;
pub(crate) mod delivery;
pub(crate) mod expiry;
pub(crate) mod group_admin;
pub(crate) mod groups;
pub(crate) mod history;
pub(crate) mod messages;
pub(crate) mod notify;
pub(crate) mod order;
mod presence;
mod queue;
mod receipts;
pub(crate) mod search;
mod status;
mod typing;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Event, SocketRef, State, TryData},
};

use crate::{
    auth::Authenticator,
    cluster::Cluster,
    config::Limits,
    error::ChatError,
    hooks::MessageHook,
    metrics::ChatMetrics,
    protocol::now_ms,
    store::{Stores, memory::TokenBuckets},
};
use call::reply;
pub(crate) use call::{Call, rate_limited};
pub(crate) use queue::RequestQueue;
use queue::queue;

/// What every handler shares: stores, limits, identity of the node.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub stores: Stores,
    pub limits: Limits,
    /// Who learns a user's presence.
    pub presence_visibility: crate::config::PresenceVisibility,
    pub node_id: String,
    pub auth: Arc<dyn Authenticator>,
    /// Sees every message before it is stored.
    pub message_hook: Option<Arc<dyn MessageHook>>,
    /// The database of record, when there is one.
    pub archive: Option<crate::archive::Archiver>,
    /// The event hooks' queue, when there are event hooks.
    pub notices: Option<tokio::sync::mpsc::Sender<notify::Notice>>,
    /// How long a `message` emit waits for a device's ack before giving up on `delivered`.
    pub delivery_ack_timeout: Duration,
    /// Devices' acks of `message`, on their way to the senders as receipts.
    pub delivered: tokio::sync::mpsc::Sender<delivery::Delivered>,
    /// The order of live emits, per conversation.
    pub order: Arc<order::Sequencer>,
    /// Sockets to disconnect when their token expires.
    pub expiries: Arc<expiry::Expiries>,
    /// Typing throttle; volatile, so per node is enough.
    pub typing: TokenBuckets,
    /// Set when the node starts shutting down: new connections are refused.
    pub draining: AtomicBool,
    /// The cluster, in cluster mode.
    pub cluster: Option<Arc<Cluster>>,
    /// Sockets this node is meant to hold (`CHAT_CAPACITY`): past it, handshakes are refused.
    pub capacity: usize,
    /// Sockets past the connect middleware and not yet disconnected.
    pub connected: AtomicUsize,
    /// Connect and disconnect handlers in flight: shutdown waits for them ([`leave_all`]),
    /// so that the presence they record is complete before the node leaves.
    pub socket_tasks: tokio_util::task::TaskTracker,
    pub metrics: ChatMetrics,
}

impl Ctx {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Whether receipts are sent in a conversation: unless they are off, DMs (`None`), and
    /// groups of up to `receipt_group_max` members.
    pub fn receipts_for(&self, group_size: Option<usize>) -> bool {
        self.limits.receipts && group_size.is_none_or(|n| n <= self.limits.receipt_group_max)
    }

    /// Joins a socket to rooms; in a cluster, records this node as their host first-hand
    /// so other nodes' broadcasts reach the socket.
    pub async fn join<A: Adapter>(&self, s: &SocketRef<A>, rooms: Vec<String>) {
        match &self.cluster {
            Some(c) => {
                if let Err(e) = c.join(s, rooms).await {
                    // The heartbeat records local rooms again; until then this socket may
                    // miss broadcasts from other nodes (sync fills the gap).
                    tracing::warn!(cause = %e, "cannot record rooms in the cluster");
                }
            }
            None => s.join(rooms),
        }
    }
}

/// Installs the connect middleware and handlers on the default namespace.
pub(crate) fn register<A: Adapter + socketioxide_core::adapter::DefinedAdapter>(io: &SocketIo<A>) {
    connection::register(io);
}

/// A node died: its users with no other device go offline for their peers.
pub(crate) async fn node_lost<A: Adapter>(
    ctx: &Ctx,
    io: &SocketIo<A>,
    node: socketioxide_core::Uid,
) {
    match ctx
        .stores
        .presence
        .node_lost(&node.to_string(), now_ms())
        .await
    {
        Ok(gone) => {
            for (user, last_seen) in gone {
                // Inactivity reports of the dead node's devices: the user has none left.
                if let Err(e) = ctx.stores.statuses.forget_devices(&user).await {
                    tracing::warn!(user = %user, cause = %e, "cannot forget idle devices");
                }
                connection::announce_presence(ctx, io.broadcast(), &user, false, Some(last_seen))
                    .await;
            }
        }
        Err(e) => tracing::warn!(%node, cause = %e, "cannot clear a lost node's presence"),
    }
}

/// Sockets whose leaving [`leave_all`] records at once.
const LEAVING_AT_ONCE: usize = 64;

/// Shutdown, before the sockets are closed: records every socket still connected as gone
/// (each user's last device takes the user offline for subscribers and the hooks, as a
/// disconnect would), waits for the connect and disconnect handlers in flight, then clears
/// whatever presence still names this node in a cluster (the cleanup a lost node gets when
/// its lease runs out, which a node that leaves the node table never gets). All while the
/// stores and the cluster still carry the news: once socketioxide closes the sockets, their
/// disconnect handlers run on tasks of their own, which nothing would wait for.
pub(crate) async fn leave_all<A: Adapter>(ctx: &Ctx, io: &SocketIo<A>) {
    use futures_util::StreamExt;
    let sockets = io.of("/").map(|ns| ns.sockets()).unwrap_or_default();
    futures_util::stream::iter(sockets)
        .for_each_concurrent(LEAVING_AT_ONCE, |s| connection::left(s, ctx))
        .await;
    ctx.socket_tasks.close();
    ctx.socket_tasks.wait().await;
    if let Some(c) = &ctx.cluster {
        node_lost(ctx, io, c.uid()).await;
    }
}

/// This node's lease had lapsed and it is live again (see [`ClusterEvent::Rejoined`]): its
/// sockets' presence is recorded again, and users that had gone offline for their peers come
/// back online. Sockets connecting meanwhile record themselves; recording twice is harmless.
///
/// [`ClusterEvent::Rejoined`]: crate::cluster::ClusterEvent::Rejoined
pub(crate) async fn rejoined<A: Adapter>(ctx: &Ctx, io: &SocketIo<A>) {
    let Some(ns) = io.of("/") else { return };
    let mut back = 0usize;
    for s in ns.sockets() {
        let Some(identity) = s.extensions.get::<crate::auth::Identity>() else {
            continue;
        };
        let user = identity.user;
        match ctx.stores.presence.connect(&user, &s.id.to_string()).await {
            Ok(true) => {
                back += 1;
                connection::announce_presence(ctx, io.broadcast(), &user, true, None).await;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(user = %user, cause = %e, "cannot record presence again"),
        }
    }
    tracing::info!(
        online_again = back,
        "presence recorded again after a lapsed lease"
    );
}

/// Registers the event handler on a freshly connected socket: one handler that dispatches
/// on the event name, rather than one per event, which every socket would keep in a map of
/// boxed handlers of its own.
fn register_events<A: Adapter>(s: &SocketRef<A>) {
    s.on_fallback(
        |s: SocketRef<A>,
         State(ctx): State<Arc<Ctx>>,
         Event(event): Event,
         TryData(data): TryData<Value>,
         ack: AckSender<A>| {
            // Not an `async` closure: its body runs in socketioxide's receive loop, in packet
            // order, and only queues the request.
            let data = data.ok();
            match event.as_str() {
                "message:send" => queue(s, ctx, "message:send", data, ack, messages::send::<A>),
                "group:create" => queue(s, ctx, "group:create", data, ack, groups::create::<A>),
                "group:join" => queue(s, ctx, "group:join", data, ack, groups::join::<A>),
                "group:leave" => queue(s, ctx, "group:leave", data, ack, groups::leave::<A>),
                "group:members" => queue(s, ctx, "group:members", data, ack, groups::members::<A>),
                "group:update" => {
                    queue(s, ctx, "group:update", data, ack, group_admin::update::<A>)
                }
                "group:kick" => queue(s, ctx, "group:kick", data, ack, group_admin::kick::<A>),
                "group:invite" => {
                    queue(s, ctx, "group:invite", data, ack, group_admin::invite::<A>)
                }
                "group:find" => queue(s, ctx, "group:find", data, ack, group_admin::find::<A>),
                "group:promote" => queue(
                    s,
                    ctx,
                    "group:promote",
                    data,
                    ack,
                    group_admin::promote::<A>,
                ),
                "group:demote" => {
                    queue(s, ctx, "group:demote", data, ack, group_admin::demote::<A>)
                }
                "group:delete" => {
                    queue(s, ctx, "group:delete", data, ack, group_admin::delete::<A>)
                }
                "history" => queue(s, ctx, "history", data, ack, history::history::<A>),
                "sync" => queue(s, ctx, "sync", data, ack, history::sync::<A>),
                "conversations" => queue(
                    s,
                    ctx,
                    "conversations",
                    data,
                    ack,
                    history::conversations::<A>,
                ),
                "read" => queue(s, ctx, "read", data, ack, receipts::read::<A>),
                "presence:subscribe" => queue(
                    s,
                    ctx,
                    "presence:subscribe",
                    data,
                    ack,
                    presence::subscribe::<A>,
                ),
                "presence:status" => queue(s, ctx, "presence:status", data, ack, status::set::<A>),
                "presence:idle" => queue(s, ctx, "presence:idle", data, ack, status::idle::<A>),
                "search" => queue(s, ctx, "search", data, ack, search::search::<A>),
                "block" => queue(s, ctx, "block", data, ack, blocks::block::<A>),
                "blocks" => queue(s, ctx, "blocks", data, ack, blocks::list::<A>),
                "unblock" => queue(s, ctx, "unblock", data, ack, blocks::unblock::<A>),
                "contacts" => queue(s, ctx, "contacts", data, ack, contacts::list::<A>),
                "contacts:request" => queue(
                    s,
                    ctx,
                    "contacts:request",
                    data,
                    ack,
                    contacts::request::<A>,
                ),
                "contacts:accept" => {
                    queue(s, ctx, "contacts:accept", data, ack, contacts::accept::<A>)
                }
                "contacts:decline" => queue(
                    s,
                    ctx,
                    "contacts:decline",
                    data,
                    ack,
                    contacts::decline::<A>,
                ),
                "contacts:remove" => {
                    queue(s, ctx, "contacts:remove", data, ack, contacts::remove::<A>)
                }
                "typing" => {
                    tokio::spawn(typing::handle(s, ctx, data));
                }
                _ => {
                    let e = ChatError::bad_request("unknown event");
                    ctx.metrics.event("unknown", Some(e.code));
                    let _ = ack.send(&reply::<()>(Err(e)));
                }
            }
            std::future::ready(())
        },
    );
}
