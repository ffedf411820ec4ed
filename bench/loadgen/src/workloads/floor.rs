//! `floor`: the load generator's own latency floor. A WebSocket echo server on a thread of
//! this process (so on the load generator's CPU), the same client code as the workloads,
//! open-loop sends at `--rate`; reports round-trip times. Whatever a server adds comes on top.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::TcpListener,
    sync::oneshot,
    time::{sleep, sleep_until, timeout},
};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    args::Args,
    client::tcp_connect,
    metrics::{hist, hist_json, now_us, round3},
    ws::ws_config,
};

/// Runs an echo server on its own thread and runtime until `stop` fires (or 10 minutes pass).
fn spawn_echo() -> Result<(SocketAddr, oneshot::Sender<()>), String> {
    let std_listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("echo: bind: {e}"))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let addr = std_listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("echo".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = TcpListener::from_std(std_listener) else {
                    return;
                };
                let accept = async {
                    loop {
                        let Ok((s, _)) = listener.accept().await else {
                            break;
                        };
                        let _ = s.set_nodelay(true);
                        tokio::spawn(async move {
                            let Ok(mut ws) =
                                tokio_tungstenite::accept_async_with_config(s, Some(ws_config()))
                                    .await
                            else {
                                return;
                            };
                            while let Some(Ok(m)) = ws.next().await {
                                if m.is_text() && ws.send(m).await.is_err() {
                                    break;
                                }
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stop_rx => {}
                    _ = sleep(Duration::from_secs(600)) => {}
                }
            });
        })
        .map_err(|e| format!("echo thread: {e}"))?;
    Ok((addr, stop_tx))
}

pub async fn floor(args: &Args, label: &str) -> Result<(Value, bool), String> {
    let conns: usize = args.get("conns", 10)?;
    let rate: f64 = args.get("rate", 1000.0)?;
    let duration = Duration::from_secs_f64(args.get("duration", 3.0)?);
    args.check_unused()?;
    if conns == 0 || conns > 1000 || !(rate > 0.0 && rate <= 1e5) || duration.as_secs_f64() > 60.0 {
        return Err("need 0 < conns <= 1000, 0 < rate <= 1e5, duration <= 60 s".into());
    }
    let (addr, stop) = spawn_echo()?;
    let url = format!("ws://{addr}/");
    let hist = Arc::new(std::sync::Mutex::new(hist()));
    let period = Duration::from_secs_f64(conns as f64 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + duration;
    let mut tasks = Vec::new();
    for i in 0..conns {
        let (url, hist) = (url.clone(), hist.clone());
        let tcp = tcp_connect(addr, None)
            .await
            .map_err(|e| format!("floor: connect: {e}"))?;
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(url.as_str(), tcp, Some(ws_config()))
                .await
                .map_err(|e| format!("floor: websocket: {e}"))?;
        tasks.push(tokio::spawn(async move {
            let mut next = start + period.mul_f64(i as f64 / conns as f64);
            let (mut sent, mut got) = (0u64, 0u64);
            let deadline = end + Duration::from_secs(2);
            loop {
                let sending = next < end;
                if !sending && got >= sent {
                    break;
                }
                tokio::select! {
                    _ = sleep_until(next.into()), if sending => {
                        let t = next.saturating_duration_since(crate::metrics::t0()).as_micros();
                        if ws.send(Message::text(format!("4{t}"))).await.is_err() {
                            break;
                        }
                        sent += 1;
                        next += period;
                    }
                    m = timeout(deadline.saturating_duration_since(Instant::now()), ws.next()) => {
                        let Ok(Some(Ok(Message::Text(t)))) = m else { break };
                        if let Ok(at) = t.as_str()[1..].parse::<u64>() {
                            let _ = hist.lock().unwrap().record(now_us().saturating_sub(at).max(1));
                            got += 1;
                        }
                    }
                }
            }
            let _ = timeout(Duration::from_millis(500), ws.close(None)).await;
            (sent, got)
        }));
    }
    let (mut sent, mut got) = (0, 0);
    for t in tasks {
        if let Ok((s, g)) = t.await {
            sent += s;
            got += g;
        }
    }
    let _ = stop.send(());
    let h = hist.lock().unwrap();
    let v = json!({
        "workload": "floor", "label": label, "conns": conns, "rate": rate,
        "duration_s": round3(duration.as_secs_f64()), "sent": sent, "received": got,
        "rtt_us": hist_json(&h),
    });
    Ok((v, got == sent && sent > 0))
}
