//! The PROXY protocol (v1 text, v2 binary) that load balancers put in front of a connection to pass on
//! the client's real address. Sans-IO and bounded like the other decoders.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest v1 line the spec allows, CRLF included.
pub const V1_MAX: usize = 107;
/// Bound on a v2 header's address + TLV section.
pub const V2_MAX_BODY: usize = 512;
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client as the proxy saw it; `None` for LOCAL/UNKNOWN (health checks from the proxy itself).
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("PROXY v1 line longer than {V1_MAX} bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 line: {0}")]
    V1Malformed(&'static str),
    #[error("unsupported PROXY v2 version/command byte {0:#04x}")]
    V2Command(u8),
    #[error("PROXY v2 header of {0} bytes is over the limit")]
    V2TooLong(usize),
    #[error("PROXY v2 address block too short for its family")]
    V2Short,
}

/// Decodes a header at the start of `buf`: `Ok(None)` means more bytes are needed.
pub fn decode(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let n = buf.len().min(V2_SIG.len());
    if buf[..n] == V2_SIG[..n] {
        return if buf.len() < V2_SIG.len() { Ok(None) } else { decode_v2(buf) };
    }
    let n = buf.len().min(6);
    if buf[..n] == b"PROXY "[..n] {
        return if buf.len() < 6 { Ok(None) } else { decode_v1(buf) };
    }
    Err(ProxyError::NotProxy)
}

fn decode_v1(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX { Err(ProxyError::V1TooLong) } else { Ok(None) };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ProxyError::V1Malformed("not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let header = match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => ProxyHeader { source: None, destination: None },
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let ip = |s: &str| s.parse::<IpAddr>().map_err(|_| ProxyError::V1Malformed("bad address"));
            let port = |s: &str| s.parse::<u16>().map_err(|_| ProxyError::V1Malformed("bad port"));
            let (src, dst) = (ip(src)?, ip(dst)?);
            if (*family == "TCP4") != (src.is_ipv4() && dst.is_ipv4()) {
                return Err(ProxyError::V1Malformed("address family mismatch"));
            }
            ProxyHeader {
                source: Some(SocketAddr::new(src, port(sport)?)),
                destination: Some(SocketAddr::new(dst, port(dport)?)),
            }
        }
        _ => return Err(ProxyError::V1Malformed("expected PROXY TCP4|TCP6|UNKNOWN ...")),
    };
    Ok(Some((header, end + 2)))
}

fn decode_v2(buf: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let (ver_cmd, fam, len) = (buf[12], buf[13], u16::from_be_bytes([buf[14], buf[15]]) as usize);
    if len > V2_MAX_BODY {
        return Err(ProxyError::V2TooLong(len));
    }
    let Some(body) = buf.get(16..16 + len) else { return Ok(None) };
    let local = match ver_cmd {
        0x20 => true,
        0x21 => false,
        other => return Err(ProxyError::V2Command(other)),
    };
    let addrs = match (local, fam >> 4) {
        (true, _) | (false, 0) => None,
        (false, 1) => {
            let b = body.get(..12).ok_or(ProxyError::V2Short)?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]));
            Some((
                SocketAddr::new(ip(0), u16::from_be_bytes([b[8], b[9]])),
                SocketAddr::new(ip(4), u16::from_be_bytes([b[10], b[11]])),
            ))
        }
        (false, 2) => {
            let b = body.get(..36).ok_or(ProxyError::V2Short)?;
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            Some((
                SocketAddr::new(ip(0), u16::from_be_bytes([b[32], b[33]])),
                SocketAddr::new(ip(16), u16::from_be_bytes([b[34], b[35]])),
            ))
        }
        // Unix sockets and unknown families: the connection is accepted without an address.
        (false, _) => None,
    };
    let header = match addrs {
        Some((s, d)) => ProxyHeader { source: Some(s), destination: Some(d) },
        None => ProxyHeader { source: None, destination: None },
    };
    Ok(Some((header, 16 + len)))
}

/// Encodes a v1 line (what tests and the load tool send).
pub fn encode_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!("PROXY {family} {} {} {} {}\r\n", source.ip(), destination.ip(), source.port(), destination.port())
        .into_bytes()
}

/// Encodes a v2 PROXY header with no TLVs.
pub fn encode_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = V2_SIG.to_vec();
    out.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(s).octets());
            out.extend_from_slice(&v6(d).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), p)),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), p)),
        ]
    }

    #[test]
    fn known_headers() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 5100\r\nrest";
        let (h, used) = decode(v1).unwrap().unwrap();
        assert_eq!(h.source, Some("203.0.113.7:56324".parse().unwrap()));
        assert_eq!(&v1[used..], b"rest");
        assert_eq!(decode(b"PROXY UNKNOWN\r\n").unwrap().unwrap().0.source, None);
        assert_eq!(decode(b"PROXY TCP4 1.2.3.4").unwrap(), None, "incomplete line waits");
        assert_eq!(decode(b"GET / HTTP/1.1\r\n"), Err(ProxyError::NotProxy));
        assert_eq!(decode(&[b'P'; 200]), Err(ProxyError::NotProxy));
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(decode(&long), Err(ProxyError::V1TooLong));
        assert!(matches!(decode(b"PROXY TCP4 ::1 ::1 1 2\r\n"), Err(ProxyError::V1Malformed(_))));
        let mut v2 = V2_SIG.to_vec();
        v2.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(decode(&v2), Err(ProxyError::V2TooLong(0xffff)));
        let mut local = V2_SIG.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(decode(&local).unwrap().unwrap(), (ProxyHeader { source: None, destination: None }, 16));
    }

    proptest! {
        #[test]
        fn v1_and_v2_round_trip(s in addr(), d in addr(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
            let d = if s.is_ipv4() == d.is_ipv4() { d } else { s };
            for mut bytes in [encode_v1(s, d), encode_v2(s, d)] {
                let len = bytes.len();
                bytes.extend_from_slice(&tail);
                let (h, used) = decode(&bytes).unwrap().unwrap();
                prop_assert_eq!(used, len);
                let norm = |a: SocketAddr| match a.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, |v4| SocketAddr::new(IpAddr::V4(v4), a.port())),
                    _ => a,
                };
                prop_assert_eq!(h.source.map(norm), Some(norm(s)));
                prop_assert_eq!(h.destination.map(norm), Some(norm(d)));
                for cut in 0..len {
                    prop_assert_eq!(decode(&bytes[..cut]), Ok(None));
                }
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((_, used))) = decode(&data) {
                prop_assert!(used <= data.len());
            }
        }
    }
}
