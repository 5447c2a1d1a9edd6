//! The three rtnetlink requests the guest's init needs (rtnetlink(7)): bring a link up,
//! give it an IPv4 address, and add a default route. Encoding only; the socket is in
//! `guest.rs`. Why not a netlink crate: three fixed-layout messages are less code to
//! audit than a dependency tree, and this runs as PID 1 in the measured image.
//!
//! Layouts (all native-endian, which is little-endian on x86-64): `struct nlmsghdr`
//! (16 bytes), then `ifinfomsg` (16), `ifaddrmsg` (8) or `rtmsg` (12), then `rtattr`s
//! (4-byte header, 4-byte aligned).

use std::net::Ipv4Addr;

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
/// The kernel's answer to a request with `NLM_F_ACK`: `nlmsgerr`.
const NLMSG_ERROR: u16 = 2;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// One request: the header with its length filled in, then the body.
fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len() as u32;
    let mut m = Vec::with_capacity(len as usize);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills in ours
    m.extend_from_slice(body);
    m
}

fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&(4 + data.len() as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// `RTM_NEWLINK` setting `IFF_UP` on interface `index` (`ip link set DEV up`).
pub fn link_up(seq: u32, index: u32) -> Vec<u8> {
    let mut b = vec![0u8, 0]; // family AF_UNSPEC, padding
    b.extend_from_slice(&0u16.to_ne_bytes()); // device type
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    b.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask: only IFF_UP
    message(RTM_NEWLINK, 0, seq, &b)
}

/// `RTM_NEWADDR` giving interface `index` the address `addr/prefix`
/// (`ip addr add ADDR/PREFIX dev DEV`).
pub fn add_address(seq: u32, index: u32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
    let mut b = vec![AF_INET, prefix, 0, RT_SCOPE_UNIVERSE];
    b.extend_from_slice(&index.to_ne_bytes());
    attr(&mut b, IFA_LOCAL, &addr.octets());
    attr(&mut b, IFA_ADDRESS, &addr.octets());
    message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq, &b)
}

/// `RTM_NEWROUTE` for the default route via `gateway` on interface `index`
/// (`ip route add default via GW dev DEV`).
pub fn default_route(seq: u32, index: u32, gateway: Ipv4Addr) -> Vec<u8> {
    let mut b = vec![
        AF_INET,
        0, // destination prefix length: 0.0.0.0/0
        0,
        0, // tos
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ];
    b.extend_from_slice(&0u32.to_ne_bytes()); // flags
    attr(&mut b, RTA_GATEWAY, &gateway.octets());
    attr(&mut b, RTA_OIF, &index.to_ne_bytes());
    message(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq, &b)
}

/// What the kernel answered to request `seq`.
#[derive(Debug, PartialEq, Eq)]
pub enum Ack {
    /// Done.
    Ok,
    /// Refused with this errno (positive).
    Errno(i32),
}

/// Finds the acknowledgement of request `seq` in a datagram from the kernel. `None`
/// when the datagram holds no well-formed `NLMSG_ERROR` for `seq`.
pub fn parse_ack(datagram: &[u8], seq: u32) -> Option<Ack> {
    let mut at = 0usize;
    while let Some(head) = datagram.get(at..at + 16) {
        let len = u32::from_ne_bytes(head[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(head[4..6].try_into().ok()?);
        let got_seq = u32::from_ne_bytes(head[8..12].try_into().ok()?);
        if len < 16 || at + len > datagram.len() {
            return None;
        }
        if kind == NLMSG_ERROR && got_seq == seq {
            let code = datagram.get(at + 16..at + 20)?;
            let code = i32::from_ne_bytes(code.try_into().ok()?);
            return Some(if code == 0 {
                Ack::Ok
            } else {
                Ack::Errno(code.saturating_neg())
            });
        }
        at += len.next_multiple_of(4);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected bytes written out by hand from the kernel's uapi structs
    // (linux/netlink.h, linux/rtnetlink.h, linux/if_addr.h), little-endian.

    #[test]
    fn link_up_bytes() {
        let m = link_up(7, 2);
        let want: Vec<u8> = [
            &32u32.to_le_bytes()[..],
            &16u16.to_le_bytes(),
            &0x0005u16.to_le_bytes(), // REQUEST | ACK
            &7u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &[0, 0, 0, 0], // family, pad, type
            &2i32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
        ]
        .concat();
        assert_eq!(m, want);
    }

    #[test]
    fn address_bytes() {
        let m = add_address(1, 3, Ipv4Addr::new(10, 0, 2, 15), 24);
        let want: Vec<u8> = [
            &40u32.to_le_bytes()[..],
            &20u16.to_le_bytes(),
            &0x0605u16.to_le_bytes(), // REQUEST | ACK | EXCL | CREATE
            &1u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &[2, 24, 0, 0],
            &3u32.to_le_bytes(),
            &[8, 0, 2, 0, 10, 0, 2, 15], // IFA_LOCAL
            &[8, 0, 1, 0, 10, 0, 2, 15], // IFA_ADDRESS
        ]
        .concat();
        assert_eq!(m, want);
    }

    #[test]
    fn route_bytes() {
        let m = default_route(9, 2, Ipv4Addr::new(10, 0, 2, 2));
        let want: Vec<u8> = [
            &44u32.to_le_bytes()[..],
            &24u16.to_le_bytes(),
            &0x0605u16.to_le_bytes(),
            &9u32.to_le_bytes(),
            &0u32.to_le_bytes(),
            &[2, 0, 0, 0, 254, 3, 0, 1],
            &0u32.to_le_bytes(),
            &[8, 0, 5, 0, 10, 0, 2, 2], // RTA_GATEWAY
            &[8, 0, 4, 0, 2, 0, 0, 0],  // RTA_OIF
        ]
        .concat();
        assert_eq!(m, want);
    }

    fn error_reply(seq: u32, code: i32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&36u32.to_ne_bytes());
        r.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        r.extend_from_slice(&0u16.to_ne_bytes());
        r.extend_from_slice(&seq.to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        r.extend_from_slice(&code.to_ne_bytes());
        r.extend_from_slice(&[0u8; 16]); // the request's header, echoed
        r
    }

    #[test]
    fn acks_and_errors() {
        assert_eq!(parse_ack(&error_reply(4, 0), 4), Some(Ack::Ok));
        assert_eq!(parse_ack(&error_reply(4, -17), 4), Some(Ack::Errno(17)));
        assert_eq!(parse_ack(&error_reply(4, 0), 5), None);
        // Truncated or nonsense datagrams are not acknowledgements.
        assert_eq!(parse_ack(&error_reply(4, 0)[..20], 4), None);
        assert_eq!(parse_ack(&[0u8; 16], 4), None);
        assert_eq!(parse_ack(&[], 4), None);
        let mut two = link_up(4, 1); // a message that is not an ack, then the ack
        two.extend_from_slice(&error_reply(4, -1));
        assert_eq!(parse_ack(&two, 4), Some(Ack::Errno(1)));
    }
}
