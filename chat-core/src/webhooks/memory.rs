//! Embedded mode: webhooks wait in a bounded in-process queue (the hook's channel) and are
//! delivered by up to `concurrency` tasks at once. What is queued when the process stops is
//! lost, as everything else of an embedded chat.

use std::sync::Arc;

use tokio::{
    sync::{Semaphore, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use super::{Queued, send::Sender};

/// Takes events off `rx` as delivery slots free up, until `stop`.
pub(crate) async fn run(
    mut rx: mpsc::Receiver<Queued>,
    sender: Sender,
    concurrency: usize,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut deliveries = JoinSet::new();
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            () = stop.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let event = tokio::select! {
            e = rx.recv() => e,
            () = stop.cancelled() => break,
        };
        let Some(event) = event else { break };
        sender.metrics().backlog.set(rx.len() as f64);
        let (sender, stop) = (sender.clone(), stop.clone());
        deliveries.spawn(async move {
            sender.deliver(&event, &stop).await;
            drop(slot);
        });
        // Reap the finished ones as we go: the set holds at most `concurrency`.
        while deliveries.try_join_next().is_some() {}
    }
    while deliveries.join_next().await.is_some() {}
}
