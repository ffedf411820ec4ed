//! Connect and disconnect: authentication, rooms, presence, `ready`.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use serde_json::{Value, json};
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
    handler::ConnectHandler,
    operators::BroadcastOperators,
};

use socketioxide_core::adapter::DefinedAdapter;

use super::{Ctx, RequestQueue, notify::Notice, register_events};
use crate::auth::{Handshake, credentials};
use crate::hooks::ChatEvent;
use crate::keys::rooms;
use crate::metrics::Refused;
use crate::protocol::{PresenceInfo, PresenceState, UserId, events, now_ms};

pub(super) fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>) {
    io.ns("/", on_connect::<A>.with(authenticate::<A>));
}

/// What a client's `connect_error` says when the node holds `CHAT_CAPACITY` sockets.
pub(crate) const AT_CAPACITY: &str = "unavailable: node is at capacity";

/// Connect middleware: refuses the connection (a `connect_error`) or records the identity.
async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    State(ctx): State<Arc<Ctx>>,
    TryData(auth): TryData<Value>,
) -> Result<(), String> {
    if ctx.is_draining() {
        ctx.metrics.refused(Refused::Draining);
        return Err("unavailable: server is shutting down".into());
    }
    // A soft cap: handshakes in flight together may pass it by a few. The client asks the
    // registry again, which picks a node below its capacity.
    if ctx.connected.load(Ordering::Relaxed) >= ctx.capacity {
        ctx.metrics.refused(Refused::Capacity);
        return Err(AT_CAPACITY.into());
    }
    let auth = credentials(s.protocol(), auth.ok(), &s.req_parts().uri);
    let handshake = Handshake {
        request: s.req_parts(),
        auth: auth.as_ref(),
    };
    let identity = match ctx.auth.authenticate(&handshake).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::debug!(cause = %e, "connection refused");
            ctx.metrics.refused(Refused::Unauthorized);
            return Err(format!("unauthorized: {e}"));
        }
    };
    match ctx.stores.bans.banned_until(&identity.user, now_ms()).await {
        Ok(None) => {}
        Ok(Some(until)) => {
            ctx.metrics.refused(Refused::Banned);
            return Err(banned(until));
        }
        Err(e) => {
            tracing::warn!(cause = %e, "cannot check bans");
            return Err("unavailable: storage is unavailable; retry later".into());
        }
    }
    s.extensions.insert(identity);
    Ok(())
}

/// What a banned user's `connect_error` says: `banned: until <ms since the epoch>`.
pub(crate) fn banned(until_ms: u64) -> String {
    format!("banned: until {until_ms}")
}

/// Set once a socket's leaving is recorded (presence, subscribers, hooks), so that it is
/// recorded once: by the disconnect handler, or by shutdown for the sockets still connected
/// then, whichever comes first.
#[derive(Debug, Clone, Default)]
pub(crate) struct Left(Arc<AtomicBool>);

impl Left {
    /// Marks the socket gone; whether it already was.
    fn set(&self) -> bool {
        self.0.swap(true, Ordering::SeqCst)
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Not `async`: handlers and the request queue are in place before the socket's first
/// event can be dispatched, and shutdown counts the handler from the start
/// ([`Ctx::socket_tasks`]); the rest runs in the returned future.
fn on_connect<A: Adapter>(
    s: SocketRef<A>,
    State(ctx): State<Arc<Ctx>>,
) -> impl Future<Output = ()> + Send + 'static {
    let task = ctx.socket_tasks.token();
    let identity = s.extensions.get::<crate::auth::Identity>();
    let gone = Left::default();
    if identity.is_some() {
        ctx.connected.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.handshake();
        s.extensions.insert(RequestQueue::default());
        s.extensions.insert(gone.clone());
        register_events(&s);
        s.on_disconnect(on_disconnect::<A>);
    }
    async move {
        let _task = task;
        let Some(identity) = identity else {
            let _ = s.disconnect();
            return;
        };
        let user = identity.user;
        // A room named after the socket: `io.to(sid)` reaches it from any node.
        let mut joined = vec![s.id.to_string(), rooms::user(&user)];
        match ctx.stores.groups.of_user(&user).await {
            Ok(groups) => joined.extend(groups.iter().map(|g| rooms::group(&g.id))),
            Err(e) => tracing::warn!(user = %user, cause = %e, "cannot load groups at connect"),
        }
        ctx.join(&s, joined).await;
        // A ban stored since the middleware's check found no socket in the user's room to
        // disconnect (this one had not joined it yet): look again, now that it has.
        if let Ok(Some(until)) = ctx.stores.bans.banned_until(&user, now_ms()).await {
            tracing::info!(user = %user, sid = %s.id, until, "banned while connecting; disconnected");
            gone.set();
            let _ = s.disconnect();
            return;
        }
        ctx.notify(|| {
            Notice::Event(ChatEvent::Connected {
                user: user.clone(),
                socket: s.id.to_string(),
            })
        });
        match ctx.stores.presence.connect(&user, &s.id.to_string()).await {
            Ok(true) => announce_presence(&ctx, s.broadcast(), &user, true, None).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(user = %user, cause = %e, "cannot record presence"),
        }
        if !s.connected() || gone.is_set() {
            // Gone while we were recording it: the disconnect handler (or shutdown) may have
            // recorded its leaving first, and missed what we just recorded.
            gone.set();
            record_left(s, &ctx).await;
            return;
        }
        if let Some(at) = identity.expires_at {
            ctx.expiries.add(at, s.id);
        }
        tracing::debug!(user = %user, sid = %s.id, transport = ?s.transport_type(), "connected");
        let _ = s.emit(events::READY, &json!({ "user": user, "node": ctx.node_id }));
    }
}

/// Not `async`: shutdown counts the handler from the moment socketioxide calls it
/// ([`Ctx::socket_tasks`]), not from its first poll on a task of its own.
fn on_disconnect<A: Adapter>(
    s: SocketRef<A>,
    State(ctx): State<Arc<Ctx>>,
) -> impl Future<Output = ()> + Send + 'static {
    ctx.connected.fetch_sub(1, Ordering::Relaxed);
    let task = ctx.socket_tasks.token();
    async move {
        let _task = task;
        left(s, &ctx).await;
    }
}

/// A socket left, or shutdown takes it: its leaving is recorded unless it already was
/// ([`Left`]).
pub(crate) async fn left<A: Adapter>(s: SocketRef<A>, ctx: &Ctx) {
    if s.extensions.get::<Left>().is_some_and(|l| l.set()) {
        return;
    }
    record_left(s, ctx).await;
}

/// Records a socket's leaving: its token expiry and presence are forgotten and, for its
/// user's last device, subscribers and the hooks are told (again, harmlessly, when
/// `on_connect` finds it gone).
async fn record_left<A: Adapter>(s: SocketRef<A>, ctx: &Ctx) {
    let Some(identity) = s.extensions.get::<crate::auth::Identity>() else {
        return;
    };
    if let Some(at) = identity.expires_at {
        ctx.expiries.remove(at, s.id);
    }
    let user = identity.user;
    let socket = s.id.to_string();
    let reported_idle = s.extensions.get::<super::status::ReportedIdle>();
    super::status::left(ctx, &user, &socket, reported_idle.clone()).await;
    ctx.notify(|| {
        Notice::Event(ChatEvent::Disconnected {
            user: user.clone(),
            socket: s.id.to_string(),
        })
    });
    match ctx
        .stores
        .presence
        .disconnect(&user, &s.id.to_string(), now_ms())
        .await
    {
        Ok(Some(last_seen)) => {
            announce_presence(ctx, s.broadcast(), &user, false, Some(last_seen)).await
        }
        Ok(None) if !reported_idle.is_some_and(|r| r.0) => {
            // A device in use left: the devices left may all be idle.
            super::status::active_device_left(ctx, s.broadcast(), &user).await
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(user = %user, cause = %e, "cannot record disconnect"),
    }
}

/// Tells those who may know ([`super::presence::audience`]) that `user` came or went.
pub(crate) async fn announce_presence<A: Adapter>(
    ctx: &Ctx,
    ops: BroadcastOperators<A>,
    user: &UserId,
    online: bool,
    last_seen: Option<u64>,
) {
    let mut info = PresenceInfo {
        state: PresenceState { online, last_seen },
        status: None,
        text: None,
    };
    if online || last_seen.is_none() {
        match super::status::infos(ctx, std::slice::from_ref(user)).await {
            Ok(mut now) => {
                let now = now.remove(0);
                info.state.last_seen = last_seen.or(now.state.last_seen);
                if online {
                    (info.status, info.text) = (now.status, now.text);
                }
            }
            Err(e) => tracing::warn!(user = %user, cause = %e, "cannot read presence"),
        }
    }
    let last_seen = info.state.last_seen;
    let targets = super::presence::audience(ctx, user).await;
    ctx.notify(|| {
        Notice::Event(match (online, last_seen) {
            (false, Some(last_seen)) => ChatEvent::UserOffline {
                user: user.clone(),
                last_seen,
            },
            (false, None) => ChatEvent::UserOffline {
                user: user.clone(),
                last_seen: now_ms(),
            },
            (true, _) => ChatEvent::UserOnline { user: user.clone() },
        })
    });
    if targets.is_empty() {
        // No room at all would be every socket: nobody is to be told.
        return;
    }
    let mut payload = serde_json::to_value(&info).unwrap_or_default();
    payload["user"] = json!(user);
    if let Err(e) = ops
        .to(targets)
        .except(rooms::user(user))
        .emit(events::PRESENCE, &payload)
        .await
    {
        tracing::warn!(user = %user, cause = %e, "cannot broadcast presence");
    }
}
