//! Command-line options (`--key value` pairs and a few bare flags) and target URLs.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv6Addr, SocketAddr},
    str::FromStr,
    sync::Mutex,
};

/// Options that take no value.
const BARE_FLAGS: &[&str] = &["assert", "sync"];

pub struct Args {
    pub cmd: String,
    map: HashMap<String, String>,
    flags: HashSet<String>,
    used: Mutex<HashSet<String>>,
}

impl Args {
    pub fn parse() -> Result<Self, String> {
        Self::from_iter(std::env::args().skip(1))
    }

    pub fn from_iter(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut it = args.into_iter();
        let cmd = it.next().ok_or_else(usage)?;
        let mut map = HashMap::new();
        let mut flags = HashSet::new();
        let rest: Vec<String> = it.collect();
        let mut i = 0;
        while i < rest.len() {
            let k = rest[i]
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {}", rest[i]))?
                .to_string();
            if BARE_FLAGS.contains(&k.as_str()) {
                flags.insert(k);
                i += 1;
                continue;
            }
            let v = rest
                .get(i + 1)
                .ok_or_else(|| format!("--{k} needs a value"))?;
            map.insert(k, v.clone());
            i += 2;
        }
        Ok(Self {
            cmd,
            map,
            flags,
            used: Mutex::new(HashSet::new()),
        })
    }

    pub fn get<T: FromStr>(&self, k: &str, default: T) -> Result<T, String> {
        self.used.lock().unwrap().insert(k.to_string());
        match self.map.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("bad value for --{k}: {v}")),
        }
    }

    pub fn str(&self, k: &str, default: &str) -> String {
        self.used.lock().unwrap().insert(k.to_string());
        self.map
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    pub fn flag(&self, k: &str) -> bool {
        self.flags.contains(k)
    }

    pub fn check_unused(&self) -> Result<(), String> {
        let used = self.used.lock().unwrap();
        for k in self.map.keys() {
            if !used.contains(k) {
                return Err(format!("unknown option --{k} for {}", self.cmd));
            }
        }
        Ok(())
    }
}

pub fn usage() -> String {
    "usage: loadgen dm|polling|dm-search|fanout|connect|idle|slow|floor --urls ws://127.0.0.1:PORT[,..] [options]"
        .into()
}

/// One server, reachable over loopback.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `Host` header value, e.g. `127.0.0.1:4001`.
    pub host: String,
    /// The Engine.IO WebSocket URL.
    pub ws_url: String,
}

/// Accepts only loopback targets: `ws://127.x.y.z:port`, `ws://[::1]:port`, `ws://localhost:port`
/// (`http://` is accepted as a synonym of `ws://`). Anything else is refused before any traffic.
pub fn loopback_url(u: &str) -> Result<Endpoint, String> {
    let rest = u
        .strip_prefix("ws://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| format!("{u}: only ws:// (or http://) URLs are supported"))?;
    let hostport = rest.split('/').next().unwrap_or("");
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let (h, p) = h
            .split_once("]:")
            .ok_or_else(|| format!("{u}: needs a port"))?;
        (h.to_string(), p)
    } else {
        let (h, p) = hostport
            .rsplit_once(':')
            .ok_or_else(|| format!("{u}: needs a port"))?;
        (h.to_string(), p)
    };
    let port: u16 = port.parse().map_err(|_| format!("{u}: bad port"))?;
    let ip: IpAddr = if host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        host.parse()
            .map_err(|_| format!("{u}: host must be a loopback IP"))?
    };
    let ok = match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6 == Ipv6Addr::LOCALHOST,
    };
    if !ok {
        return Err(format!("{u}: refusing a non-loopback target"));
    }
    let host = match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    };
    Ok(Endpoint {
        addr: SocketAddr::new(ip, port),
        ws_url: format!("ws://{host}/socket.io/?EIO=4&transport=websocket"),
        host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(loopback_url("ws://127.0.0.1:4000").is_ok());
        assert!(loopback_url("ws://127.0.0.9:4000/").is_ok());
        assert!(loopback_url("ws://localhost:1").is_ok());
        assert!(loopback_url("ws://[::1]:4000").is_ok());
        assert!(loopback_url("http://127.0.0.1:4000").is_ok());
        assert!(loopback_url("ws://10.0.0.1:4000").is_err());
        assert!(loopback_url("ws://example.com:80").is_err());
        assert!(loopback_url("wss://127.0.0.1:4000").is_err());
        assert!(loopback_url("ws://[::2]:4000").is_err());
        let e = loopback_url("ws://localhost:4001").unwrap();
        assert_eq!(e.host, "127.0.0.1:4001");
        assert_eq!(
            e.ws_url,
            "ws://127.0.0.1:4001/socket.io/?EIO=4&transport=websocket"
        );
    }

    #[test]
    fn flags_and_values() {
        let a = Args::from_iter(
            ["dm", "--rate", "5", "--assert", "--pairs", "2"]
                .iter()
                .map(|s| s.to_string()),
        )
        .unwrap();
        assert!(a.flag("assert"));
        assert_eq!(a.get("rate", 0.0).unwrap(), 5.0);
        assert!(a.check_unused().is_err());
        assert_eq!(a.get("pairs", 0usize).unwrap(), 2);
        assert!(a.check_unused().is_ok());
    }
}
