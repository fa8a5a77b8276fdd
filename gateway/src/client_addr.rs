//! The client's address, for the audit log: the socket peer, or what a
//! trusted proxy says in `X-Forwarded-For`.
//!
//! `X-Forwarded-For` is believed only when the peer is in the configured
//! `trusted_proxies`; otherwise any client could write any address there.
//! The header is read from the right (each proxy appends the address it
//! saw), skipping trusted proxies: the first address that is not one is the
//! client.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use chat_router::Client;
use ipnet::IpNet;

use crate::{ApiError, AppState};

const FORWARDED_FOR: &str = "x-forwarded-for";

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.1`) and networks (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        entries
            .iter()
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("trusted_proxies: {entry:?} is not an address or network"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address, given the socket peer and the headers.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|part| part.trim().parse().ok())
            .collect();
        Some(
            forwarded
                .iter()
                .rev()
                .copied()
                .find(|ip| !self.trusts(*ip))
                .or_else(|| forwarded.first().copied())
                .unwrap_or(peer),
        )
    }
}

/// The requesting client's address as an audit record wants it.
#[derive(Clone, Debug)]
pub struct ClientAddr(pub Client);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let ip = state.proxies.client_ip(peer, &parts.headers);
        Ok(ClientAddr(Client {
            ip: ip.map(|ip| ip.to_string()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED_FOR, value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.1".into()]).unwrap();
        let headers = forwarded("203.0.113.9, 10.1.2.3");
        let untrusted: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            proxies.client_ip(Some(untrusted), &headers),
            Some(untrusted)
        );
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            proxies.client_ip(Some(proxy), &headers),
            Some("203.0.113.9".parse().unwrap())
        );
        let single: IpAddr = "192.168.1.1".parse().unwrap();
        assert_eq!(
            proxies.client_ip(Some(single), &HeaderMap::new()),
            Some(single),
            "no header: the peer"
        );
        assert!(TrustedProxies::parse(&["not-an-ip".into()]).is_err());
    }
}
