// Numbers from the kernel's uapi headers that fib/ speaks. Each group names
// the header it comes from; the values are part of the kernel ABI and never
// change. Netlink integers are in host byte order; every writer and reader in
// fib/ uses little-endian and Programmer refuses to start on a big-endian host.

/** linux/socket.h */
export const AF_INET = 2;
export const AF_INET6 = 10;

/** linux/netlink.h: protocol number of the rtnetlink family */
export const NETLINK_ROUTE = 0;

/** linux/netlink.h: struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid } */
export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

/** linux/netlink.h: nlmsg_flags */
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
/** modifiers of GET requests */
export const NLM_F_DUMP = 0x300; // NLM_F_ROOT | NLM_F_MATCH
/** modifiers of NEW requests */
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

/** linux/rtnetlink.h: message types */
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
/** nexthop objects (Linux 5.3, net/ipv4/nexthop.c) */
export const RTM_NEWNEXTHOP = 104;
export const RTM_DELNEXTHOP = 105;
export const RTM_GETNEXTHOP = 106;

/**
 * linux/nexthop.h: struct nhmsg (8 bytes): u8 nh_family, u8 nh_scope, u8 nh_protocol, u8 resvd, u32 nh_flags;
 * attributes NHA_*; a group is an array of struct nexthop_grp { u32 id; u8 weight (weight - 1); u8; u16 }.
 */
export const NHMSG_LEN = 8;
export const NHA_ID = 1;
export const NHA_GROUP = 2;
export const NHA_OIF = 5;
export const NHA_GATEWAY = 6;
/** linux/rtnetlink.h: a route's nexthop object id */
export const RTA_NH_ID = 30;

/**
 * linux/rtnetlink.h: struct rtmsg (12 bytes), follows the nlmsghdr:
 *   u8 rtm_family, u8 rtm_dst_len, u8 rtm_src_len, u8 rtm_tos,
 *   u8 rtm_table, u8 rtm_protocol, u8 rtm_scope, u8 rtm_type, u32 rtm_flags
 */
export const RTMSG_LEN = 12;

/** linux/rtnetlink.h: enum rtattr_type_t */
export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_MULTIPATH = 9;
export const RTA_TABLE = 15;
/** a gateway of another family (struct rtvia: u16 family, then the address; RFC 5549 routes) */
export const RTA_VIA = 18;

/** linux/rtnetlink.h: rtm_type */
export const RTN_UNSPEC = 0;
export const RTN_UNICAST = 1;
export const RTN_BLACKHOLE = 6;
export const RTN_UNREACHABLE = 7;
export const RTN_PROHIBIT = 8;

/** linux/rtnetlink.h: enum rt_scope_t */
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
/** on delete: match any scope */
export const RT_SCOPE_NOWHERE = 255;

/** linux/rtnetlink.h: reserved table ids. Tables above 255 travel in RTA_TABLE with rtm_table = RT_TABLE_COMPAT. */
export const RT_TABLE_COMPAT = 252;
export const RT_TABLE_MAIN = 254;

/** linux/rtnetlink.h: rtm_flags; RTM_F_CLONED marks cache entries, never configured routes */
export const RTM_F_CLONED = 0x200;

/**
 * linux/rtnetlink.h: struct rtnexthop (8 bytes) inside RTA_MULTIPATH, followed by its own rtattrs:
 *   u16 rtnh_len, u8 rtnh_flags, u8 rtnh_hops (weight - 1), s32 rtnh_ifindex
 */
export const RTNH_LEN = 8;
export const RTNH_F_DEAD = 0x1;
export const RTNH_F_ONLINK = 0x4;
export const RTNH_F_LINKDOWN = 0x10;

/** linux/rtnetlink.h: enum rtnetlink_groups (bit numbers for NETLINK_ADD_MEMBERSHIP) */
export const RTNLGRP_LINK = 1;
export const RTNLGRP_IPV4_ROUTE = 7;
export const RTNLGRP_IPV6_ROUTE = 11;
/** nexthop object notifications (Linux 5.3) */
export const RTNLGRP_NEXTHOP = 32;

/**
 * linux/rtnetlink.h: struct ifinfomsg (16 bytes):
 *   u8 ifi_family, u8 pad, u16 ifi_type, s32 ifi_index, u32 ifi_flags, u32 ifi_change
 */
export const IFINFOMSG_LEN = 16;
/** linux/if_link.h */
export const IFLA_IFNAME = 3;
/** linux/if.h: ifi_flags */
export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;

/** linux/rtnetlink.h: RTM_GETADDR; struct ifaddrmsg (8 bytes): u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index */
export const RTM_GETADDR = 22;
export const IFADDRMSG_LEN = 8;
/** linux/if_addr.h: IFA_ADDRESS (the peer's on a point-to-point link), IFA_LOCAL (this host's) */
export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
/** linux/netlink.h: setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK): dump requests' headers filter (Linux 4.20) */
export const SOL_NETLINK = 270;
export const NETLINK_GET_STRICT_CHK = 12;
export const RT_TABLE_LOCAL = 255;

/**
 * The routing protocol number skein tags its routes with (rtm_protocol).
 * Numbers in use elsewhere: the kernel's RTPROT_* (linux/rtnetlink.h: 0-4, 8-18, 42 babel,
 * 99 openr, 186-189, 192), iproute2's rt_protos (the same names), BIRD 12, zebra/FRR 11 and
 * 186-198 (FRR zebra/rt_netlink.h, numbering upwards), and Calico's Felix: 80 for its
 * blackhole, VXLAN and IPIP routes (felix/dataplane/linux/dataplanedefs/dataplane_defs.go
 * DefaultRouteProto) plus 3 (boot, its DeviceRouteProtocol default); Felix deletes every
 * proto-80 route of the main table it did not write
 * (felix/routetable/ownershippol/main_route_table_policy.go). 171 is in none of these lists
 * and away from the ranges that grow; fib/skein.conf maps it to the name "skein" for
 * /etc/iproute2/rt_protos.d/. config/ uses the same default.
 */
export const RTPROT_SKEIN = 171;
/** linux/rtnetlink.h: routes the kernel made itself (connected subnets) */
export const RTPROT_KERNEL = 2;
