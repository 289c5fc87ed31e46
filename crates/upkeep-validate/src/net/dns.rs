//! A small DNS client over UDP (A and AAAA questions, RFC 1035), and a
//! reader for what busybox `nslookup` prints in a probe pod.
//!
//! A resolver crate would bring a whole stack (caches, config files,
//! DNSSEC) to ask one server two questions; what a check needs is the
//! answer of one named server, its rcode, and no surprises from a
//! malformed reply, so the codec is written here and bounds-checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Largest UDP reply read (EDNS is not offered, so 512 is the norm).
const MAX_REPLY: usize = 4096;
/// Compression pointers followed per name before the reply is called malformed.
const MAX_POINTERS: usize = 32;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
#[cfg(test)]
const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;

/// Why a name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{name}: the server answered {rcode}")]
    Rcode { name: String, rcode: Rcode },
    #[error("{name}: the server has no A or AAAA record for it")]
    NoAnswer { name: String },
    #[error("{name}: no answer from {server} within {after:?}")]
    Timeout {
        name: String,
        server: SocketAddr,
        after: Duration,
    },
    #[error("{name}: {server}: {message}")]
    Io {
        name: String,
        server: SocketAddr,
        message: String,
    },
    #[error("{name}: malformed reply: {reason}")]
    Malformed { name: String, reason: String },
    #[error(
        "{0:?} is not a DNS name (letters, digits, '-', '_' and dots; labels up to 63 bytes, 253 in all)"
    )]
    BadName(String),
}

impl DnsError {
    fn malformed(name: &str, reason: impl Into<String>) -> DnsError {
        DnsError::Malformed {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

/// A response code (RFC 1035 4.1.1, RFC 6895).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rcode(pub u8);

impl std::fmt::Display for Rcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            0 => "NOERROR",
            1 => "FORMERR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            4 => "NOTIMP",
            5 => "REFUSED",
            n => return write!(f, "rcode {n}"),
        };
        f.write_str(name)
    }
}

/// Checks that `name` is a host name a query can carry; returns it without a trailing dot.
pub fn validate_name(name: &str) -> Result<String, DnsError> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    let ok = !bare.is_empty()
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(bare.to_ascii_lowercase())
    } else {
        Err(DnsError::BadName(name.to_string()))
    }
}

/// A query for `name` (already validated), recursion desired.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// What a reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    pub rcode: Rcode,
    pub truncated: bool,
    /// A and AAAA records of the answer section (CNAMEs are followed by the server).
    pub addresses: Vec<IpAddr>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Skips a (possibly compressed) name; pointers are checked to stay in the message.
    fn skip_name(&mut self) -> Result<(), String> {
        let mut pos = self.pos;
        let mut jumped = false;
        let mut pointers = 0;
        loop {
            let len = *self.buf.get(pos).ok_or("name runs past the end")? as usize;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    if !jumped {
                        self.pos = pos + 1;
                    }
                    return Ok(());
                }
                0x00 => {
                    pos += 1 + len;
                    if pos > self.buf.len() {
                        return Err("label runs past the end".into());
                    }
                }
                0xC0 => {
                    let low = *self.buf.get(pos + 1).ok_or("pointer runs past the end")? as usize;
                    if !jumped {
                        self.pos = pos + 2;
                        jumped = true;
                    }
                    pointers += 1;
                    if pointers > MAX_POINTERS {
                        return Err("compression pointers loop".into());
                    }
                    pos = ((len & 0x3F) << 8) | low;
                    if pos >= self.buf.len() {
                        return Err("compression pointer points past the end".into());
                    }
                }
                _ => return Err(format!("unknown label type 0x{len:02x}")),
            }
        }
    }
}

/// Parses a reply to a query `id` for `name`; anything malformed is an error, never a panic.
pub fn decode_reply(buf: &[u8], id: u16, name: &str) -> Result<Reply, DnsError> {
    let bad = |r: &str| DnsError::malformed(name, r);
    if buf.len() < 12 {
        return Err(bad(&format!("{} bytes, shorter than a header", buf.len())));
    }
    let got = u16::from_be_bytes([buf[0], buf[1]]);
    if got != id {
        return Err(bad(&format!("id {got} does not match the query's {id}")));
    }
    if buf[2] & 0x80 == 0 {
        return Err(bad("not a response (QR bit clear)"));
    }
    let truncated = buf[2] & 0x02 != 0;
    let rcode = Rcode(buf[3] & 0x0F);
    let count = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]) as usize;
    let (qd, an) = (count(4), count(6));
    let mut r = Reader { buf, pos: 12 };
    for _ in 0..qd {
        r.skip_name().map_err(|e| bad(&format!("question: {e}")))?;
        r.take(4).ok_or_else(|| bad("question runs past the end"))?;
    }
    let mut addresses = Vec::new();
    for i in 0..an {
        r.skip_name()
            .map_err(|e| bad(&format!("answer {}: {e}", i + 1)))?;
        let head = r
            .take(10)
            .ok_or_else(|| bad(&format!("answer {} runs past the end", i + 1)))?;
        let rtype = u16::from_be_bytes([head[0], head[1]]);
        let class = u16::from_be_bytes([head[2], head[3]]);
        let rdlen = u16::from_be_bytes([head[8], head[9]]) as usize;
        let data = r
            .take(rdlen)
            .ok_or_else(|| bad(&format!("answer {} data runs past the end", i + 1)))?;
        if class != CLASS_IN {
            continue;
        }
        match (rtype, rdlen) {
            (TYPE_A, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (TYPE_AAAA, 16) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(data);
                addresses.push(IpAddr::V6(Ipv6Addr::from(o)));
            }
            (TYPE_A | TYPE_AAAA, n) => {
                return Err(bad(&format!(
                    "answer {}: address record of {n} bytes",
                    i + 1
                )));
            }
            // CNAMEs and the rest: the server has followed the chain for us.
            _ => {}
        }
    }
    Ok(Reply {
        id,
        rcode,
        truncated,
        addresses,
    })
}

/// Asks `server` for the A, then (when there is none) the AAAA records of `name`.
/// NXDOMAIN, SERVFAIL, REFUSED, no address and no answer in time are errors.
pub async fn resolve(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<IpAddr>, DnsError> {
    let name = validate_name(name)?;
    let mut found = Vec::new();
    for qtype in [TYPE_A, TYPE_AAAA] {
        let reply = ask(server, &name, qtype, timeout).await?;
        if reply.rcode.0 != 0 {
            return Err(DnsError::Rcode {
                name,
                rcode: reply.rcode,
            });
        }
        found.extend(reply.addresses);
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Err(DnsError::NoAnswer { name })
}

async fn ask(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> Result<Reply, DnsError> {
    let io = |e: std::io::Error| DnsError::Io {
        name: name.to_string(),
        server,
        message: e.to_string(),
    };
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
    // connect() makes the kernel drop datagrams from any other address.
    socket.connect(server).await.map_err(io)?;
    let id: u16 = rand::random();
    socket
        .send(&encode_query(id, name, qtype))
        .await
        .map_err(io)?;
    let mut buf = vec![0u8; MAX_REPLY];
    let work = async {
        loop {
            let n = socket.recv(&mut buf).await.map_err(io)?;
            // A stray or spoofed datagram with another id is ignored, not believed.
            match decode_reply(&buf[..n], id, name) {
                Err(DnsError::Malformed { reason, .. }) if reason.starts_with("id ") => continue,
                other => return other,
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => {
            let reply = r?;
            if reply.truncated && reply.addresses.is_empty() {
                return Err(DnsError::malformed(
                    name,
                    "the reply was truncated (TC) with no address in it",
                ));
            }
            Ok(reply)
        }
        Err(_) => Err(DnsError::Timeout {
            name: name.to_string(),
            server,
            after: timeout,
        }),
    }
}

/// What one `nslookup` printed about one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Resolved(Vec<String>),
    Failed(String),
}

/// Reads the output of `nslookup NAME` from busybox: the modern one
/// (`Name:\tX` / `Address: IP`, `** server can't find X: NXDOMAIN`) and the
/// old one (`Name:      X` / `Address 1: IP host`, `nslookup: can't resolve 'X'`).
/// The server header's own `Address:` line comes before any `Name:` line and
/// is not an answer.
pub fn parse_nslookup(output: &str) -> Lookup {
    let mut after_name = false;
    let mut addresses = Vec::new();
    let mut error = None;
    for line in output.lines() {
        let line = line.trim();
        if line.starts_with("Name:") {
            after_name = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("Address") {
            if !after_name {
                continue;
            }
            // "Address: IP", "Address 1: IP name", "Address:\tIP#53"
            let value = rest.split_once(':').map(|(_, v)| v.trim()).unwrap_or("");
            let ip = value.split_whitespace().next().unwrap_or("");
            if ip.parse::<IpAddr>().is_ok() {
                addresses.push(ip.to_string());
            }
            continue;
        }
        if error.is_none()
            && (line.starts_with("** server can't find")
                || line.starts_with("*** Can't find")
                || line.starts_with("nslookup:")
                || line.starts_with(";; connection timed out")
                || line.contains("no servers could be reached"))
        {
            error = Some(line.to_string());
        }
    }
    if addresses.is_empty() {
        Lookup::Failed(error.unwrap_or_else(|| "no address in the answer".to_string()))
    } else {
        Lookup::Resolved(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply to `query` with the given rcode and answers (each a compressed
    /// pointer to the question's name).
    fn reply(query: &[u8], rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut r = query.to_vec();
        r[2] = 0x81;
        r[3] = 0x80 | rcode;
        r[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (t, data) in answers {
            r.extend_from_slice(&[0xC0, 12]);
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&CLASS_IN.to_be_bytes());
            r.extend_from_slice(&300u32.to_be_bytes());
            r.extend_from_slice(&(data.len() as u16).to_be_bytes());
            r.extend_from_slice(data);
        }
        r
    }

    #[test]
    fn a_query_is_encoded_as_rfc_1035_says() {
        let q = encode_query(0xBEEF, "a.example", TYPE_A);
        assert_eq!(
            q,
            [
                0xBE, 0xEF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 7, b'e', b'x', b'a', b'm', b'p',
                b'l', b'e', 0, 0, 1, 0, 1
            ]
        );
    }

    #[test]
    fn answers_are_read_with_compression_and_cnames_skipped() {
        let q = encode_query(7, "web.lan", TYPE_A);
        let r = reply(
            &q,
            0,
            &[(TYPE_CNAME, &[0xC0, 12]), (TYPE_A, &[192, 168, 1, 20])],
        );
        let got = decode_reply(&r, 7, "web.lan").unwrap();
        assert_eq!(got.rcode, Rcode(0));
        assert_eq!(
            got.addresses,
            vec!["192.168.1.20".parse::<IpAddr>().unwrap()]
        );
        let six = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let r = reply(
            &encode_query(8, "web.lan", TYPE_AAAA),
            0,
            &[(TYPE_AAAA, &six)],
        );
        assert_eq!(
            decode_reply(&r, 8, "web.lan").unwrap().addresses,
            vec!["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn rcodes_are_named() {
        let q = encode_query(9, "nope.lan", TYPE_A);
        let got = decode_reply(&reply(&q, 3, &[]), 9, "nope.lan").unwrap();
        assert_eq!(got.rcode.to_string(), "NXDOMAIN");
        assert_eq!(Rcode(2).to_string(), "SERVFAIL");
        assert_eq!(Rcode(5).to_string(), "REFUSED");
        assert_eq!(Rcode(11).to_string(), "rcode 11");
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let q = encode_query(1, "x.lan", TYPE_A);
        let good = reply(&q, 0, &[(TYPE_A, &[10, 0, 0, 1])]);
        // Every truncation of a good reply fails cleanly.
        for n in 0..good.len() {
            assert!(decode_reply(&good[..n], 1, "x.lan").is_err(), "cut at {n}");
        }
        assert!(decode_reply(&good, 1, "x.lan").is_ok());
        // Wrong id, a query instead of a reply.
        assert!(decode_reply(&good, 2, "x.lan").is_err());
        assert!(decode_reply(&q, 1, "x.lan").is_err());
        // A pointer loop in the answer name.
        let mut looped = good.clone();
        let at = q.len();
        looped[at] = 0xC0;
        looped[at + 1] = at as u8;
        let e = decode_reply(&looped, 1, "x.lan").unwrap_err();
        assert!(e.to_string().contains("loop"), "{e}");
        // A pointer past the end, an unknown label type, an A record of 3 bytes.
        let mut past = good.clone();
        past[at + 1] = 0xFF;
        assert!(decode_reply(&past, 1, "x.lan").is_err());
        let mut odd = good.clone();
        odd[at] = 0x80;
        assert!(decode_reply(&odd, 1, "x.lan").is_err());
        let short = reply(&q, 0, &[(TYPE_A, &[10, 0, 0])]);
        assert!(decode_reply(&short, 1, "x.lan").is_err());
        // Counts that promise more records than there are.
        let mut lying = good.clone();
        lying[7] = 9;
        assert!(decode_reply(&lying, 1, "x.lan").is_err());
    }

    #[test]
    fn names_are_checked_before_they_are_sent() {
        assert_eq!(validate_name("Web.Lan.").unwrap(), "web.lan");
        assert!(validate_name("").is_err());
        assert!(validate_name("a..b").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("x;rm -rf /").is_err());
        assert!(validate_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn busybox_nslookup_output_is_read() {
        // busybox 1.36/1.37 (musl-style nslookup): an A answer, no AAAA record.
        let modern = "Server:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\nName:\tkubernetes.default.svc.cluster.local\nAddress: 10.43.0.1\n\n";
        assert_eq!(
            parse_nslookup(modern),
            Lookup::Resolved(vec!["10.43.0.1".into()])
        );
        let nx = "Server:\t\t10.43.0.10\nAddress:\t10.43.0.10:53\n\n** server can't find nope.example.com: NXDOMAIN\n\n** server can't find nope.example.com: NXDOMAIN\n\n";
        assert_eq!(
            parse_nslookup(nx),
            Lookup::Failed("** server can't find nope.example.com: NXDOMAIN".into())
        );
        // busybox 1.28 (libc resolver): numbered addresses with names.
        let old = "Server:    10.43.0.10\nAddress 1: 10.43.0.10 kube-dns.kube-system.svc.cluster.local\n\nName:      kubernetes.default\nAddress 1: 10.43.0.1 kubernetes.default.svc.cluster.local\n";
        assert_eq!(
            parse_nslookup(old),
            Lookup::Resolved(vec!["10.43.0.1".into()])
        );
        let old_fail =
            "Server:    10.43.0.10\nAddress 1: 10.43.0.10\n\nnslookup: can't resolve 'nope'\n";
        assert_eq!(
            parse_nslookup(old_fail),
            Lookup::Failed("nslookup: can't resolve 'nope'".into())
        );
        let timeout = ";; connection timed out; no servers could be reached\n";
        assert!(matches!(parse_nslookup(timeout), Lookup::Failed(m) if m.contains("timed out")));
        assert!(matches!(parse_nslookup(""), Lookup::Failed(_)));
    }
}
