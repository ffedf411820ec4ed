//! The Socket.IO adapter: rooms, broadcasts and acks across nodes.
//!
//! [`ChatAdapter`] implements socketioxide-core's adapter trait. Without a [`Cluster`]
//! (embedded mode) it is the local adapter. With one, every operation also reaches the
//! other live nodes that need it, through the cluster transport, using socketioxide-core's
//! remote-adapter request and response types:
//! - broadcasts to rooms chat-core routes (`user:`, `group:`, `presence:`) go only to the
//!   nodes recorded as hosting one of the rooms, once per node; other broadcasts go to every
//!   live node;
//! - `broadcast_with_ack`, `fetch_sockets` and `rooms` wait for exactly the nodes they asked,
//!   at most the request timeout; a node that died is no longer asked once its lease ends;
//! - `add_sockets` (remote `join`) records the rooms for the nodes that host the matched
//!   sockets before it returns, so the next broadcast to those rooms finds them.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{StreamExt, future, future::Either};
use serde::de::DeserializeOwned;
use socketioxide_core::{
    Sid, Uid,
    adapter::{
        BroadcastFlags, BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter,
        RemoteSocketData, Room, RoomParam, SocketEmitter,
        errors::{AdapterError, BroadcastError},
        remote_packet::{RequestIn, RequestOut, RequestTypeOut, Response, ResponseTypeId},
        request::RemoteRequestHandler,
        stream::{
            AckStream, ChanStream, ResponseHandlers, insert_response_handler, wait_responses,
        },
    },
    packet::Packet,
};

use crate::cluster::{Cluster, ClusterError, NamespaceHandler, transport::Kind};

/// Acks that may wait, per request, before more are dropped.
const ACK_BUFFER: usize = 1024;

/// The adapter's shared state: the cluster, or none in embedded mode.
#[derive(Debug, Clone, Default)]
pub struct AdapterState(pub Option<Arc<Cluster>>);

/// A Socket.IO adapter spanning every node of the cluster.
pub struct ChatAdapter<E> {
    local: CoreLocalAdapter<E>,
    cluster: Option<Arc<Cluster>>,
    responses: Arc<Mutex<ResponseHandlers<Vec<u8>>>>,
}

impl<E> std::fmt::Debug for ChatAdapter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatAdapter")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// Errors of the adapter.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AdapterFailure(#[from] ClusterError);

impl From<AdapterFailure> for AdapterError {
    fn from(e: AdapterFailure) -> Self {
        AdapterError(Box::new(e))
    }
}

fn broadcast_error(e: ClusterError) -> BroadcastError {
    BroadcastError::Adapter(AdapterFailure(e).into())
}

type RemoteAckStream<E> = AckStream<E, ChanStream<Vec<u8>>, Vec<u8>>;

impl<E: SocketEmitter> DefinedAdapter for ChatAdapter<E> {}

impl<E: SocketEmitter> ChatAdapter<E> {
    /// The cluster, if this operation must reach other nodes.
    fn remote(&self, opts: &BroadcastOptions) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref().filter(|c| !opts.is_local(c.uid()))
    }

    fn path(&self) -> &str {
        self.local.path()
    }

    async fn request(
        &self,
        cluster: &Cluster,
        targets: &[Uid],
        req: &RequestOut<'_>,
        volatile: bool,
    ) -> Result<(), ClusterError> {
        let data = rmp_serde::to_vec(req)?;
        cluster
            .send(targets, Kind::Request, self.path(), data, volatile)
            .await
    }

    /// Sends a request to `targets` and collects one response of `kind` from each.
    async fn gather<D: DeserializeOwned + std::fmt::Debug>(
        &self,
        cluster: &Cluster,
        targets: &[Uid],
        req: RequestOut<'_>,
        kind: ResponseTypeId,
    ) -> Result<impl futures_util::Stream<Item = Response<D>>, ClusterError> {
        let rx = insert_response_handler(&self.responses, req.id, targets.len());
        let stream = ChanStream::new(rx).filter_map(|item: Vec<u8>| {
            future::ready(match rmp_serde::from_slice::<(Sid, Response<D>)>(&item) {
                Ok((_, res)) => Some(res),
                Err(e) => {
                    tracing::warn!(cause = %e, "cluster: undecodable response");
                    None
                }
            })
        });
        let stream = wait_responses(
            stream,
            self.responses.clone(),
            req.id,
            kind,
            targets.len(),
            cluster.request_timeout(),
        );
        self.request(cluster, targets, &req, false).await?;
        Ok(stream)
    }
}

fn decode_ack<A: DeserializeOwned>(
    item: Vec<u8>,
) -> Result<Response<A>, Box<dyn std::error::Error + Send>> {
    rmp_serde::from_slice::<(Sid, Response<A>)>(&item)
        .map(|(_, res)| res)
        .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send>)
}

impl<E: SocketEmitter> CoreAdapter<E> for ChatAdapter<E> {
    type Error = AdapterFailure;
    type State = AdapterState;
    type AckStream = Either<E::AckStream, RemoteAckStream<E>>;
    type InitRes = ();

    fn new(state: &AdapterState, local: CoreLocalAdapter<E>) -> Self {
        Self {
            local,
            cluster: state.0.clone(),
            responses: Arc::default(),
        }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) {
        if let Some(cluster) = &self.cluster {
            let path = self.path().to_owned();
            let weak = Arc::downgrade(&self);
            cluster.register_namespace(&path, weak);
        }
        on_success();
    }

    async fn server_count(&self) -> Result<u16, AdapterFailure> {
        Ok(match &self.cluster {
            Some(c) => c.live_nodes().len().clamp(1, u16::MAX as usize) as u16,
            None => 1,
        })
    }

    async fn broadcast(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> Result<(), BroadcastError> {
        if let Some(c) = self.remote(&opts) {
            let targets = c.targets(&opts, false).await;
            if targets.is_empty() {
                c.count_broadcast(false);
            } else {
                c.count_broadcast(true);
                let req = RequestOut::new(c.uid(), RequestTypeOut::Broadcast(&packet), &opts);
                let volatile = opts.has_flag(BroadcastFlags::Volatile);
                self.request(c, &targets, &req, volatile)
                    .await
                    .map_err(broadcast_error)?;
            }
        }
        self.local.broadcast(packet, opts)?;
        Ok(())
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, AdapterFailure> {
        let targets = match self.remote(&opts) {
            Some(c) => c.targets(&opts, true).await,
            None => Vec::new(),
        };
        let Some(c) = self.cluster.as_ref().filter(|_| !targets.is_empty()) else {
            let (local, _) = self.local.broadcast_with_ack(packet, opts, timeout);
            return Ok(Either::Left(local));
        };
        let req = RequestOut::new(c.uid(), RequestTypeOut::BroadcastWithAck(&packet), &opts)
            .with_ack_timeout(timeout);
        let req_id = req.id;
        let (tx, rx) = tokio::sync::mpsc::channel(ACK_BUFFER + targets.len());
        self.responses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(req_id, tx);
        self.request(c, &targets, &req, false).await?;
        let (local, _) = self.local.broadcast_with_ack(packet, opts, timeout);
        let wait = c
            .request_timeout()
            .saturating_add(timeout.unwrap_or(self.local.ack_timeout()));
        Ok(Either::Right(AckStream::new(
            local,
            ChanStream::new(rx),
            decode_ack,
            wait,
            targets.len() as u16,
            req_id,
            self.responses.clone(),
        )))
    }

    async fn add_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), AdapterFailure> {
        let rooms: Vec<Room> = rooms.into_room_iter().collect();
        if let Some(c) = self.remote(&opts) {
            let targets = c.targets(&opts, false).await;
            let mut hosts = targets.clone();
            if !self.local.sockets(opts.clone()).is_empty() {
                hosts.push(c.uid());
            }
            // Before the join is acknowledged: the next broadcast must find these nodes.
            c.record_rooms(&rooms, &hosts).await?;
            if !targets.is_empty() {
                let req = RequestOut::new(c.uid(), RequestTypeOut::AddSockets(&rooms), &opts);
                self.request(c, &targets, &req, false).await?;
            }
        } else if let Some(c) = &self.cluster {
            c.record_rooms(&rooms, &[c.uid()]).await?;
        }
        self.local.add_sockets(opts, rooms);
        Ok(())
    }

    async fn del_sockets(
        &self,
        opts: BroadcastOptions,
        rooms: impl RoomParam,
    ) -> Result<(), AdapterFailure> {
        let rooms: Vec<Room> = rooms.into_room_iter().collect();
        if let Some(c) = self.remote(&opts) {
            let targets = c.targets(&opts, false).await;
            if !targets.is_empty() {
                let req = RequestOut::new(c.uid(), RequestTypeOut::DelSockets(&rooms), &opts);
                self.request(c, &targets, &req, false).await?;
            }
        }
        // Routing entries are removed lazily, by the heartbeat.
        self.local.del_sockets(opts, rooms);
        Ok(())
    }

    async fn disconnect_socket(&self, opts: BroadcastOptions) -> Result<(), BroadcastError> {
        if let Some(c) = self.remote(&opts) {
            let targets = c.targets(&opts, false).await;
            if !targets.is_empty() {
                let req = RequestOut::new(c.uid(), RequestTypeOut::DisconnectSockets, &opts);
                self.request(c, &targets, &req, false)
                    .await
                    .map_err(broadcast_error)?;
            }
        }
        self.local
            .disconnect_socket(opts)
            .map_err(BroadcastError::Socket)
    }

    async fn rooms(&self, opts: BroadcastOptions) -> Result<Vec<Room>, AdapterFailure> {
        let mut rooms = self.local.rooms(opts.clone());
        if let Some(c) = self.remote(&opts) {
            let targets = c.targets(&opts, true).await;
            if !targets.is_empty() {
                let req = RequestOut::new(c.uid(), RequestTypeOut::AllRooms, &opts);
                let stream = self
                    .gather::<()>(c, &targets, req, ResponseTypeId::AllRooms)
                    .await?;
                futures_util::pin_mut!(stream);
                while let Some(res) = stream.next().await {
                    rooms.extend(res.into_rooms().unwrap_or_default());
                }
            }
        }
        Ok(rooms.into_iter().collect())
    }

    async fn fetch_sockets(
        &self,
        opts: BroadcastOptions,
    ) -> Result<Vec<RemoteSocketData>, AdapterFailure> {
        let mut sockets = self.local.fetch_sockets(opts.clone());
        if let Some(c) = self.remote(&opts) {
            let targets = c.targets(&opts, true).await;
            if !targets.is_empty() {
                let req = RequestOut::new(c.uid(), RequestTypeOut::FetchSockets, &opts);
                let stream = self
                    .gather::<RemoteSocketData>(c, &targets, req, ResponseTypeId::FetchSockets)
                    .await?;
                futures_util::pin_mut!(stream);
                while let Some(res) = stream.next().await {
                    sockets.extend(res.into_fetch_sockets().unwrap_or_default());
                }
            }
        }
        Ok(sockets)
    }

    fn get_local(&self) -> &CoreLocalAdapter<E> {
        &self.local
    }
}

impl<E: SocketEmitter> RemoteRequestHandler<E> for ChatAdapter<E> {
    type Error = AdapterFailure;

    fn local(&self) -> &CoreLocalAdapter<E> {
        &self.local
    }

    fn send_res<T: serde::Serialize + std::fmt::Debug + Send + 'static>(
        &self,
        req_id: Sid,
        req_origin: Uid,
        res: Response<T>,
    ) -> impl Future<Output = Result<(), AdapterFailure>> + Send + 'static {
        let cluster = self.cluster.clone();
        let path = self.path().to_owned();
        let data = rmp_serde::to_vec(&(req_id, res));
        async move {
            let Some(cluster) = cluster else {
                return Ok(());
            };
            let data = data.map_err(ClusterError::from)?;
            cluster
                .send(&[req_origin], Kind::Response, &path, data, false)
                .await?;
            Ok(())
        }
    }
}

impl<E: SocketEmitter> NamespaceHandler for ChatAdapter<E> {
    fn on_request(self: Arc<Self>, data: Vec<u8>) {
        match rmp_serde::from_slice::<RequestIn>(&data) {
            Ok(req) => self.recv_req(req),
            Err(e) => tracing::warn!(cause = %e, "cluster: undecodable request"),
        }
    }

    fn on_response(&self, data: Vec<u8>) {
        let Ok((req_id, _)) = rmp_serde::from_slice::<(Sid, serde::de::IgnoredAny)>(&data) else {
            tracing::warn!("cluster: response without a request id");
            return;
        };
        let handlers = self.responses.lock().unwrap_or_else(|p| p.into_inner());
        match handlers.get(&req_id) {
            Some(tx) => {
                if tx.try_send(data).is_err() {
                    tracing::warn!(%req_id, "cluster: response dropped, its reader is full or gone");
                }
            }
            // Late answers to a request that already timed out.
            None => tracing::debug!(%req_id, "cluster: response for no pending request"),
        }
    }

    fn local_rooms(&self) -> std::collections::HashSet<Room> {
        // Without rooms, only the broadcast flag selects every socket.
        let mut opts = BroadcastOptions::default();
        opts.add_flag(BroadcastFlags::Local);
        opts.add_flag(BroadcastFlags::Broadcast);
        self.local.rooms(opts)
    }

    fn local_sockets(&self) -> usize {
        let mut opts = BroadcastOptions::default();
        opts.add_flag(BroadcastFlags::Broadcast);
        self.local.sockets(opts).len()
    }
}

#[cfg(test)]
mod tests {
    use socketioxide_core::{Str, Value, packet::Packet};

    use super::*;

    /// Binary attachments travel as msgpack `bin`, not as arrays of numbers.
    #[test]
    fn binary_payloads_are_msgpack_bin() {
        let payload = vec![0xde_u8, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04];
        let data = Value::Str(
            Str::from("[\"file\",{\"_placeholder\":true,\"num\":0}]".to_owned()),
            Some([tokio_util::bytes::Bytes::copy_from_slice(&payload)].into()),
        );
        let packet = Packet::event("/", data);
        let opts = BroadcastOptions::default();
        let req = RequestOut::new(Uid::new(), RequestTypeOut::Broadcast(&packet), &opts);
        let encoded = rmp_serde::to_vec(&req).unwrap();
        let mut bin = vec![0xc4, payload.len() as u8];
        bin.extend(&payload);
        assert!(
            encoded.windows(bin.len()).any(|w| w == bin.as_slice()),
            "no bin8 with the payload in {encoded:x?}"
        );
        let back: RequestIn = rmp_serde::from_slice(&encoded).unwrap();
        assert!(matches!(
            back.r#type,
            socketioxide_core::adapter::remote_packet::RequestTypeIn::Broadcast(_)
        ));
    }
}
