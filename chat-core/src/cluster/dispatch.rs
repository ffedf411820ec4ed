//! What moves between this node and the others: entries sent through the outbox, and what
//! the inbox reader hands over, to a namespace's adapter or to the chat ([`Events`]).

use std::sync::{Arc, Weak};

use socketioxide_core::Uid;
use tokio::sync::mpsc;

use super::{
    Cluster, ClusterError, NamespaceHandler,
    envelope::Envelope,
    read,
    transport::{Incoming, Kind, Outgoing},
    write,
};

/// What the cluster hands the chat on this node, in arrival order.
#[derive(Debug)]
pub(crate) enum ClusterEvent {
    /// A chat entry another node sent this one.
    Chat(Box<Envelope>),
    /// A node's lease ended (announced by one live node): its users are offline.
    NodeLost(Uid),
    /// This node's own lease had lapsed, and it is live again: whatever the other nodes
    /// undid for it (its sockets' presence) must be done again.
    Rejoined,
}

/// The chat entries other nodes send this one and the nodes found dead, for the chat on this
/// node, from [`Cluster::start`]: a bounded queue of
/// [`ClusterConfig::inbound_capacity`](super::ClusterConfig::inbound_capacity) events.
///
/// While it is full, the inbox reader waits: entries stay in this node's inbox stream in
/// Redis (capped at [`ClusterConfig::inbox_max_len`](super::ClusterConfig::inbox_max_len))
/// and adapter requests from other nodes wait behind them, so a chat that falls behind slows
/// its own inbox and loses nothing. Dropped (a cluster without a chat), its events are
/// discarded.
#[derive(Debug)]
pub struct Events(pub(crate) mpsc::Receiver<ClusterEvent>);

impl Cluster {
    /// Sends a chat entry to `targets`, in order with this node's broadcasts.
    pub(crate) async fn send_chat(
        &self,
        targets: &[Uid],
        envelope: &Envelope,
    ) -> Result<(), ClusterError> {
        let data = rmp_serde::to_vec_named(envelope)?;
        self.send(targets, Kind::Chat, "", data, false).await
    }

    /// Sends an encoded message to each target.
    pub(crate) async fn send(
        &self,
        targets: &[Uid],
        kind: Kind,
        ns: &str,
        data: Vec<u8>,
        volatile: bool,
    ) -> Result<(), ClusterError> {
        let data = Arc::new(data);
        for &target in targets {
            let out = Outgoing {
                target,
                kind,
                ns: ns.to_owned(),
                data: data.clone(),
            };
            if volatile {
                self.outbox.try_send(out, &self.stats);
            } else {
                self.outbox.send(out).await?;
            }
        }
        Ok(())
    }

    pub(crate) fn register_namespace(&self, path: &str, handler: Weak<dyn NamespaceHandler>) {
        write(&self.namespaces).insert(path.to_owned(), handler);
    }

    /// Hands an entry read from the inbox to its namespace's adapter or to the chat; waits
    /// while the chat's queue is full.
    pub(super) async fn dispatch(&self, incoming: Incoming) {
        match incoming.kind {
            Kind::Request => {
                if let Some(h) = self.namespace(&incoming) {
                    h.on_request(incoming.data);
                }
            }
            Kind::Response => {
                if let Some(h) = self.namespace(&incoming) {
                    h.on_response(incoming.data);
                }
            }
            Kind::Chat => match rmp_serde::from_slice::<Envelope>(&incoming.data) {
                Ok(envelope) => {
                    tokio::select! {
                        sent = self.events.send(ClusterEvent::Chat(Box::new(envelope))) => {
                            if sent.is_err() {
                                tracing::debug!(origin = %incoming.origin, "chat entry for a node without a chat");
                            }
                        }
                        () = self.stop.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(origin = %incoming.origin, cause = %e, "undecodable chat entry skipped")
                }
            },
        }
    }

    pub(super) fn namespace(&self, incoming: &Incoming) -> Option<Arc<dyn NamespaceHandler>> {
        let handler = read(&self.namespaces)
            .get(&incoming.ns)
            .and_then(Weak::upgrade);
        if handler.is_none() {
            tracing::debug!(ns = %incoming.ns, origin = %incoming.origin, "message for an unknown namespace");
        }
        handler
    }
}
