//! The legacy tc filters on an interface's clsact hook, listed with one
//! rtnetlink dump (RTM_GETTFILTER): libbpf's bpf_tc_query only looks at
//! one handle and priority, and `attach` must see every other filter.
use std::io;
use std::time::Duration;

use nix::sys::socket::{
    recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use nix::sys::time::TimeVal;
use std::os::fd::AsRawFd;

use super::Direction;

// rtnetlink and tc UAPI numbers (linux/netlink.h, linux/rtnetlink.h,
// linux/pkt_sched.h, linux/pkt_cls.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / TC_H_MIN_EGRESS).
const CLSACT_INGRESS: u32 = 0xffff_fff2;
const CLSACT_EGRESS: u32 = 0xffff_fff3;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_ID: u16 = 11;
/// nla_type bits that are flags, not the type (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const TCMSG_LEN: usize = 20;

/// One filter on a clsact hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcFilter {
    /// The classifier: "bpf", "u32", "flower", ...
    pub kind: String,
    pub priority: u16,
    pub handle: u32,
    /// bpf only: the program's id and name.
    pub prog_id: Option<u32>,
    pub prog_name: Option<String>,
}

/// Every filter on `ifindex`'s clsact hook `dir` in this namespace; none
/// when the interface has no clsact qdisc.
pub fn tc_filters(ifindex: u32, dir: Direction) -> io::Result<Vec<TcFilter>> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    setsockopt(
        &sock,
        sockopt::ReceiveTimeout,
        &TimeVal::from(libc_timeval(Duration::from_secs(2))),
    )?;
    let parent = match dir {
        Direction::Ingress => CLSACT_INGRESS,
        Direction::Egress => CLSACT_EGRESS,
    };
    sendto(
        sock.as_raw_fd(),
        &dump_request(ifindex, parent),
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut filters = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        match parse_messages(&buf[..n], &mut filters) {
            Parsed::More => continue,
            Parsed::Done => return Ok(filters),
            Parsed::Error(0) => return Err(io::Error::other("malformed rtnetlink answer")),
            // No clsact qdisc (or no such hook): nothing is filtering.
            Parsed::Error(errno) if no_hook(-errno) => return Ok(Vec::new()),
            Parsed::Error(errno) => return Err(io::Error::from_raw_os_error(-errno)),
        }
    }
}

fn no_hook(errno: i32) -> bool {
    errno == nix::libc::ENOENT || errno == nix::libc::EINVAL
}

fn libc_timeval(d: Duration) -> nix::libc::timeval {
    nix::libc::timeval {
        tv_sec: d.as_secs() as _,
        tv_usec: d.subsec_micros() as _,
    }
}

/// nlmsghdr + tcmsg asking for a dump of the filters under `parent`.
fn dump_request(ifindex: u32, parent: u32) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + TCMSG_LEN) as u32;
    let mut msg = Vec::with_capacity(len as usize);
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&RTM_GETTFILTER.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    msg.extend_from_slice(&[0u8; 4]); // family AF_UNSPEC, padding
    msg.extend_from_slice(&ifindex.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // handle
    msg.extend_from_slice(&parent.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // info: every priority and protocol
    msg
}

enum Parsed {
    More,
    Done,
    /// The kernel's negative errno; 0: the answer did not parse.
    Error(i32),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parses one datagram of the dump's answer into `filters`.
fn parse_messages(mut data: &[u8], filters: &mut Vec<TcFilter>) -> Parsed {
    while data.len() >= NLMSG_HDRLEN {
        let (Some(len), Some(kind)) = (u32_at(data, 0), u16_at(data, 4)) else {
            return Parsed::Error(0);
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Parsed::Error(0);
        }
        let msg = &data[..len];
        match kind {
            NLMSG_DONE => return Parsed::Done,
            NLMSG_ERROR => {
                let errno = u32_at(msg, NLMSG_HDRLEN).map_or(0, |e| e as i32);
                return if errno == 0 {
                    Parsed::Done
                } else {
                    Parsed::Error(errno)
                };
            }
            RTM_NEWTFILTER => {
                if let Some(filter) = parse_filter(&msg[NLMSG_HDRLEN..]) {
                    filters.push(filter);
                }
            }
            _ => {}
        }
        data = &data[align4(len).min(data.len())..];
    }
    Parsed::More
}

/// tcmsg and its attributes; None for a chain's head (no options).
fn parse_filter(body: &[u8]) -> Option<TcFilter> {
    let handle = u32_at(body, 8)?;
    let info = u32_at(body, 16)?;
    let mut filter = TcFilter {
        kind: String::new(),
        priority: (info >> 16) as u16,
        handle,
        prog_id: None,
        prog_name: None,
    };
    let mut options = None;
    for (kind, payload) in attributes(body.get(TCMSG_LEN..)?) {
        match kind {
            TCA_KIND => filter.kind = c_string(payload),
            TCA_OPTIONS => options = Some(payload),
            _ => {}
        }
    }
    // Option numbers mean something else for each classifier.
    if filter.kind == "bpf" {
        for (kind, payload) in attributes(options?) {
            match kind {
                TCA_BPF_ID => filter.prog_id = u32_at(payload, 0),
                TCA_BPF_NAME => filter.prog_name = Some(c_string(payload)),
                _ => {}
            }
        }
    }
    options.map(|_| filter)
}

/// (type, payload) of each netlink attribute in `data`.
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut found = Vec::new();
    while data.len() >= 4 {
        let (Some(len), Some(kind)) = (u16_at(data, 0), u16_at(data, 2)) else {
            break;
        };
        let len = len as usize;
        if len < 4 || len > data.len() {
            break;
        }
        found.push((kind & NLA_TYPE_MASK, &data[4..len]));
        data = &data[align4(len).min(data.len())..];
    }
    found
}

fn c_string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align4(a.len()), 0);
        a
    }

    #[test]
    fn a_bpf_filter_message_parses_and_a_chain_head_is_skipped() {
        let mut tcmsg = vec![0u8; TCMSG_LEN];
        tcmsg[8..12].copy_from_slice(&0x5e6fu32.to_ne_bytes());
        tcmsg[16..20].copy_from_slice(&((49152u32 << 16) | 0x0003).to_ne_bytes());
        let mut options = attr(TCA_BPF_ID, &77u32.to_ne_bytes());
        options.extend(attr(TCA_BPF_NAME, b"prog:[foo]\0"));
        let mut body = tcmsg.clone();
        body.extend(attr(TCA_KIND, b"bpf\0"));
        body.extend(attr(TCA_OPTIONS | 0x8000, &options));
        let filter = parse_filter(&body).expect("a filter");
        assert_eq!(filter.kind, "bpf");
        assert_eq!((filter.priority, filter.handle), (49152, 0x5e6f));
        assert_eq!(filter.prog_id, Some(77));
        assert_eq!(filter.prog_name.as_deref(), Some("prog:[foo]"));
        let mut head = tcmsg.clone();
        head.extend(attr(TCA_KIND, b"bpf\0"));
        assert_eq!(parse_filter(&head), None, "a chain head has no options");
        let mut u32_filter = tcmsg;
        u32_filter.extend(attr(TCA_KIND, b"u32\0"));
        u32_filter.extend(attr(TCA_OPTIONS | 0x8000, &options));
        let filter = parse_filter(&u32_filter).expect("a u32 filter");
        assert_eq!(filter.prog_id, None, "option 11 of u32 is no program id");
    }
}
