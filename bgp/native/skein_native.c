/*
 * skein's native addon: the few socket calls Node's `net` module cannot make.
 *
 *  - TCP MD5 signatures (RFC 2385) must be configured on a socket before the
 *    SYN is sent or accepted, which needs setsockopt(TCP_MD5SIG) with a struct
 *    argument; Node has no hook for that, and no npm package does it.
 *  - GTSM (RFC 5082) needs IP_TTL / IP_MINTTL (IPV6_UNICAST_HOPS /
 *    IPV6_MINHOPCOUNT) on TCP sockets; Node exposes no generic setsockopt.
 *  - Outgoing connections need those options set between socket() and
 *    connect(), so the addon creates the socket and Node adopts the fd.
 *  - sd_notify needs an AF_UNIX datagram socket, which Node core lacks.
 *  - BFD (RFC 5881 §5) must discard UDP packets whose TTL / hop limit is not
 *    255; node:dgram cannot read a datagram's TTL (no IP_RECVTTL ancillary
 *    data), so a classic BPF socket filter makes the kernel drop them.
 *  - A live-migrated VM's RARP / gratuitous ARP needs an AF_PACKET socket
 *    (announce_watch.c).
 *
 * Plain C against Node-API (ABI-stable), no dependencies. Every argument is
 * checked here: a wrong type or value throws a TypeError (code
 * ERR_INVALID_ARG_TYPE / ERR_INVALID_ARG_VALUE); a failing system call throws
 * an Error whose `code` is the errno name (e.g. 'EINVAL'), with `errno`
 * (negative, as Node does) and `syscall` set. Nothing here aborts the process.
 */
#define NAPI_VERSION 8
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerrorname_np */
#endif
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* Older libc headers may lack these; the values are the kernel's ABI. */
#ifndef IP_MINTTL
#define IP_MINTTL 21
#endif
#ifndef IPV6_MINHOPCOUNT
#define IPV6_MINHOPCOUNT 73
#endif
#ifndef TCP_MD5SIG_EXT
#define TCP_MD5SIG_EXT 32
#endif
#ifndef TCP_MD5SIG_FLAG_PREFIX
#define TCP_MD5SIG_FLAG_PREFIX 1
#endif

/* Longest textual address we accept: an IPv6 address plus "%" and an interface name. */
#define ADDR_TEXT_MAX (INET6_ADDRSTRLEN + 1 + IF_NAMESIZE)

/* ---- errors ------------------------------------------------------------ */

static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#else
  switch (err) {
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case ENOENT: return "ENOENT";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    default: break;
  }
#endif
  return "EUNKNOWN";
}

/* Throws Error(`${what}: ${strerror} (${code})`) with code, errno and syscall set. */
static void throw_errno(napi_env env, const char *syscall, const char *what, int err) {
  char msg[256];
  const char *code = errno_name(err);
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(err), code);
  napi_value code_v, msg_v, error, errno_v, syscall_v;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v) != napi_ok ||
      napi_create_error(env, code_v, msg_v, &error) != napi_ok) {
    napi_throw_error(env, code, msg);
    return;
  }
  if (napi_create_int32(env, -err, &errno_v) == napi_ok) napi_set_named_property(env, error, "errno", errno_v);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_v) == napi_ok)
    napi_set_named_property(env, error, "syscall", syscall_v);
  napi_throw(env, error);
}

static void throw_arg_type(napi_env env, const char *name, const char *expected) {
  char msg[160];
  snprintf(msg, sizeof msg, "The \"%s\" argument must be %s", name, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

static void throw_arg_value(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", msg);
}

/* ---- argument readers: each returns false after throwing ---------------- */

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, size_t *argc) {
  *argc = want;
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "cannot read call arguments");
    return false;
  }
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (size_t i = *argc; i < want; i++) argv[i] = undef;
  return true;
}

static bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_undefined || t == napi_null);
}

/* An integer-valued number in [min, max]. */
static bool get_int(napi_env env, napi_value v, const char *name, int64_t min, int64_t max, int64_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number || napi_get_value_double(env, v, &d) != napi_ok) {
    throw_arg_type(env, name, "of type number");
    return false;
  }
  if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max) {
    char msg[160];
    snprintf(msg, sizeof msg, "The \"%s\" argument must be an integer in [%lld, %lld]", name, (long long)min,
             (long long)max);
    throw_arg_value(env, msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

static bool get_fd(napi_env env, napi_value v, int *fd) {
  int64_t n;
  if (!get_int(env, v, "fd", 0, INT32_MAX, &n)) return false;
  *fd = (int)n;
  return true;
}

/* A string of at most cap-1 UTF-8 bytes without NUL bytes, copied into buf. */
static bool get_string(napi_env env, napi_value v, const char *name, char *buf, size_t cap, size_t *len) {
  napi_valuetype t;
  size_t n;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string ||
      napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) {
    throw_arg_type(env, name, "of type string");
    return false;
  }
  if (n >= cap) {
    char msg[160];
    snprintf(msg, sizeof msg, "The \"%s\" argument is too long (%zu bytes, at most %zu)", name, n, cap - 1);
    throw_arg_value(env, msg);
    return false;
  }
  napi_get_value_string_utf8(env, v, buf, cap, &n);
  if (strlen(buf) != n) {
    char msg[160];
    snprintf(msg, sizeof msg, "The \"%s\" argument must not contain NUL characters", name);
    throw_arg_value(env, msg);
    return false;
  }
  if (len != NULL) *len = n;
  return true;
}

/* ---- addresses ---------------------------------------------------------- */

/* The address family of a socket (AF_INET / AF_INET6 / ...), or -1 after throwing. */
static int socket_family(napi_env env, int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
    throw_errno(env, "getsockname", "cannot read the socket's address family", errno);
    return -1;
  }
  return ss.ss_family;
}

/*
 * Parses a numeric IPv4 or IPv6 address (IPv6 may carry "%scope", an interface
 * name or index) into a sockaddr for a socket of family sock_family. On an
 * AF_INET6 socket an IPv4 address becomes the IPv4-mapped IPv6 address
 * ::ffff:a.b.c.d, which is how the kernel sees IPv4 peers of a dual-stack
 * socket. *v4 tells whether the address is IPv4 (mapped or not).
 * Returns false after throwing.
 */
static bool parse_addr(napi_env env, const char *text, int sock_family, uint16_t port, struct sockaddr_storage *ss,
                       socklen_t *sslen, bool *v4) {
  struct in_addr a4;
  memset(ss, 0, sizeof *ss);
  if (inet_pton(AF_INET, text, &a4) == 1) {
    *v4 = true;
    if (sock_family == AF_INET6) {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(port);
      sin6->sin6_addr.s6_addr[10] = 0xff;
      sin6->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&sin6->sin6_addr.s6_addr[12], &a4, 4);
      *sslen = sizeof *sin6;
    } else {
      struct sockaddr_in *sin = (struct sockaddr_in *)ss;
      sin->sin_family = AF_INET;
      sin->sin_port = htons(port);
      sin->sin_addr = a4;
      *sslen = sizeof *sin;
    }
    return true;
  }
  char host[ADDR_TEXT_MAX + 1];
  snprintf(host, sizeof host, "%s", text);
  char *scope = strchr(host, '%');
  if (scope != NULL) *scope++ = '\0';
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
    char msg[160];
    snprintf(msg, sizeof msg, "\"%s\" is not a numeric IPv4 or IPv6 address", text);
    throw_arg_value(env, msg);
    return false;
  }
  if (sock_family == AF_INET) {
    char msg[160];
    snprintf(msg, sizeof msg, "IPv6 address \"%s\" cannot be used on an IPv4 socket", text);
    throw_arg_value(env, msg);
    return false;
  }
  if (scope != NULL) {
    char *end;
    unsigned long idx = strtoul(scope, &end, 10);
    if (*scope == '\0' || *end != '\0') idx = if_nametoindex(scope);
    if (idx == 0 || idx > UINT32_MAX) {
      char msg[160];
      snprintf(msg, sizeof msg, "unknown interface \"%s\" in address \"%s\"", scope, text);
      throw_arg_value(env, msg);
      return false;
    }
    sin6->sin6_scope_id = (uint32_t)idx;
  }
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  *v4 = IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
  *sslen = sizeof *sin6;
  return true;
}

/* ---- exported functions ------------------------------------------------ */

/* socket(family: 4 | 6): number — a non-blocking, close-on-exec TCP socket. */
static napi_value Socket(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  size_t argc;
  int64_t fam;
  if (!get_args(env, info, 1, argv, &argc) || !get_int(env, argv[0], "family", 4, 6, &fam)) return NULL;
  if (fam != 4 && fam != 6) {
    throw_arg_value(env, "The \"family\" argument must be 4 or 6");
    return NULL;
  }
  int fd = socket(fam == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    throw_errno(env, "socket", "cannot create a TCP socket", errno);
    return NULL;
  }
  napi_create_int32(env, fd, &result);
  return result;
}

/* close(fd): for sockets never handed to net.Socket (setup failed half-way). */
static napi_value Close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  int fd;
  if (!get_args(env, info, 1, argv, &argc) || !get_fd(env, argv[0], &fd)) return NULL;
  if (close(fd) != 0 && errno != EINTR) throw_errno(env, "close", "cannot close the socket", errno);
  return NULL;
}

/* bind(fd, address, port = 0): the local address of an outgoing connection. */
static napi_value Bind(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc;
  int fd;
  int64_t port = 0;
  char text[ADDR_TEXT_MAX + 1];
  if (!get_args(env, info, 3, argv, &argc) || !get_fd(env, argv[0], &fd) ||
      !get_string(env, argv[1], "address", text, sizeof text, NULL))
    return NULL;
  if (!is_nullish(env, argv[2]) && !get_int(env, argv[2], "port", 0, 65535, &port)) return NULL;
  int fam = socket_family(env, fd);
  if (fam < 0) return NULL;
  struct sockaddr_storage ss;
  socklen_t sslen;
  bool v4;
  if (!parse_addr(env, text, fam, (uint16_t)port, &ss, &sslen, &v4)) return NULL;
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
    char what[ADDR_TEXT_MAX + 64];
    snprintf(what, sizeof what, "cannot bind to %s port %d", text, (int)port);
    throw_errno(env, "bind", what, errno);
  }
  return NULL;
}

/*
 * setMd5Sig(fd, address, key: Uint8Array | null, prefixLen?: number)
 * RFC 2385: installs (or, with a null/empty key, removes) the MD5 key the
 * kernel uses for segments to and from `address`. With prefixLen the key
 * covers a whole prefix (TCP_MD5SIG_EXT, Linux >= 4.13), for listeners that
 * accept peers from a range. On an AF_INET6 socket an IPv4 address is mapped
 * (::ffff:a.b.c.d), and its prefix length counts IPv4 bits (0..32).
 */
static napi_value SetMd5Sig(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc;
  int fd;
  char text[ADDR_TEXT_MAX + 1];
  if (!get_args(env, info, 4, argv, &argc) || !get_fd(env, argv[0], &fd) ||
      !get_string(env, argv[1], "address", text, sizeof text, NULL))
    return NULL;

  const uint8_t *key = NULL;
  size_t keylen = 0;
  if (!is_nullish(env, argv[2])) {
    bool is_ta = false;
    napi_typedarray_type tat;
    void *data;
    if (napi_is_typedarray(env, argv[2], &is_ta) != napi_ok || !is_ta ||
        napi_get_typedarray_info(env, argv[2], &tat, &keylen, &data, NULL, NULL) != napi_ok ||
        tat != napi_uint8_array) {
      throw_arg_type(env, "key", "a Buffer, a Uint8Array or null");
      return NULL;
    }
    if (keylen > TCP_MD5SIG_MAXKEYLEN) {
      char msg[160];
      snprintf(msg, sizeof msg, "The \"key\" argument is %zu bytes long; TCP MD5 keys are at most %d bytes", keylen,
               TCP_MD5SIG_MAXKEYLEN);
      throw_arg_value(env, msg);
      return NULL;
    }
    key = data;
  }

  int fam = socket_family(env, fd);
  if (fam < 0) return NULL;
  if (fam != AF_INET && fam != AF_INET6) {
    throw_errno(env, "setsockopt", "TCP MD5 signatures need an IPv4 or IPv6 socket", EAFNOSUPPORT);
    return NULL;
  }
  struct tcp_md5sig sig;
  memset(&sig, 0, sizeof sig);
  socklen_t sslen;
  bool v4;
  if (!parse_addr(env, text, fam, 0, &sig.tcpm_addr, &sslen, &v4)) return NULL;

  int opt = TCP_MD5SIG;
  if (!is_nullish(env, argv[3])) {
    int64_t prefix;
    if (!get_int(env, argv[3], "prefixLen", 0, v4 ? 32 : 128, &prefix)) return NULL;
    sig.tcpm_flags = TCP_MD5SIG_FLAG_PREFIX;
    sig.tcpm_prefixlen = (uint8_t)prefix;
    opt = TCP_MD5SIG_EXT;
  }
  sig.tcpm_keylen = (uint16_t)keylen;
  if (keylen > 0) memcpy(sig.tcpm_key, key, keylen);

  int rc = setsockopt(fd, IPPROTO_TCP, opt, &sig, sizeof sig);
  int err = errno;
  memset(&sig, 0, sizeof sig); /* don't leave the key on the stack */
  if (rc != 0) {
    char what[ADDR_TEXT_MAX + 64];
    snprintf(what, sizeof what, "cannot %s the TCP MD5 key for %s", keylen ? "set" : "delete", text);
    throw_errno(env, "setsockopt", what, err);
  }
  return NULL;
}

/* setIntOpt(fd, level, name, value): setsockopt with an int argument. */
static napi_value SetIntOpt(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc;
  int fd;
  int64_t level, name, value;
  if (!get_args(env, info, 4, argv, &argc) || !get_fd(env, argv[0], &fd) ||
      !get_int(env, argv[1], "level", 0, INT32_MAX, &level) || !get_int(env, argv[2], "name", 0, INT32_MAX, &name) ||
      !get_int(env, argv[3], "value", INT32_MIN, INT32_MAX, &value))
    return NULL;
  int v = (int)value;
  if (setsockopt(fd, (int)level, (int)name, &v, sizeof v) != 0) {
    char what[96];
    snprintf(what, sizeof what, "cannot set socket option %d/%d to %d", (int)level, (int)name, v);
    throw_errno(env, "setsockopt", what, errno);
  }
  return NULL;
}

/* getIntOpt(fd, level, name): number — getsockopt with an int result. */
static napi_value GetIntOpt(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  size_t argc;
  int fd;
  int64_t level, name;
  if (!get_args(env, info, 3, argv, &argc) || !get_fd(env, argv[0], &fd) ||
      !get_int(env, argv[1], "level", 0, INT32_MAX, &level) || !get_int(env, argv[2], "name", 0, INT32_MAX, &name))
    return NULL;
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, (int)level, (int)name, &v, &len) != 0) {
    char what[96];
    snprintf(what, sizeof what, "cannot read socket option %d/%d", (int)level, (int)name);
    throw_errno(env, "getsockopt", what, errno);
    return NULL;
  }
  napi_create_int32(env, v, &result);
  return result;
}

/* socketFamily(fd): 4, 6, or 0 for any other family. */
static napi_value SocketFamily(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  size_t argc;
  int fd;
  if (!get_args(env, info, 1, argv, &argc) || !get_fd(env, argv[0], &fd)) return NULL;
  int fam = socket_family(env, fd);
  if (fam < 0) return NULL;
  napi_create_int32(env, fam == AF_INET ? 4 : fam == AF_INET6 ? 6 : 0, &result);
  return result;
}

/*
 * sdNotify(socketPath, state): sends one datagram to systemd's notification
 * socket. A path starting with '@' names a Linux abstract socket: the '@'
 * becomes a leading NUL and the address length excludes any terminator.
 */
static napi_value SdNotify(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  size_t argc;
  struct sockaddr_un sun;
  char path[sizeof sun.sun_path + 1];
  size_t plen, slen;
  if (!get_args(env, info, 2, argv, &argc) || !get_string(env, argv[0], "socketPath", path, sizeof path, &plen))
    return NULL;
  if (plen < 2 || (path[0] != '/' && path[0] != '@')) {
    throw_arg_value(env, "The \"socketPath\" argument must be an absolute path or an '@abstract' name");
    return NULL;
  }
  /* The state goes out as is; sd_notify states are short "KEY=value" lines. */
  napi_valuetype t;
  if (napi_typeof(env, argv[1], &t) != napi_ok || t != napi_string ||
      napi_get_value_string_utf8(env, argv[1], NULL, 0, &slen) != napi_ok) {
    throw_arg_type(env, "state", "of type string");
    return NULL;
  }
  if (slen == 0 || slen > 4096) {
    throw_arg_value(env, "The \"state\" argument must be 1 to 4096 bytes long");
    return NULL;
  }
  char *state = malloc(slen + 1);
  if (state == NULL) {
    throw_errno(env, "malloc", "cannot allocate the notification", ENOMEM);
    return NULL;
  }
  napi_get_value_string_utf8(env, argv[1], state, slen + 1, &slen);

  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path, plen);
  socklen_t alen;
  if (path[0] == '@') {
    sun.sun_path[0] = '\0';
    alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
  } else {
    alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
    if (plen >= sizeof sun.sun_path) alen = sizeof sun;
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    free(state);
    throw_errno(env, "socket", "cannot create the notification socket", err);
    return NULL;
  }
  ssize_t sent = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *)&sun, alen);
  int err = errno;
  close(fd);
  free(state);
  if (sent < 0) {
    char what[sizeof path + 48];
    snprintf(what, sizeof what, "cannot notify %s", path);
    throw_errno(env, "sendto", what, err);
    return NULL;
  }
  if ((size_t)sent != slen) {
    throw_errno(env, "sendto", "the notification was truncated", EMSGSIZE);
    return NULL;
  }
  napi_get_boolean(env, true, &result);
  return result;
}

/*
 * attachMinTtlFilter(fd, minTtl): a classic BPF socket filter that drops every
 * datagram whose IPv4 TTL / IPv6 hop limit is below minTtl (255: exactly 255,
 * RFC 5881 §5 GTSM). It reads the IP header through SKF_NET_OFF, so it works
 * on IPv4, IPv6 and dual-stack (IPv4-mapped) sockets alike: the version nibble
 * picks the field (TTL at byte 8 of IPv4, hop limit at byte 7 of IPv6).
 */
static napi_value AttachMinTtlFilter(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc;
  int fd;
  int64_t min_ttl;
  if (!get_args(env, info, 2, argv, &argc) || !get_fd(env, argv[0], &fd) ||
      !get_int(env, argv[1], "minTtl", 1, 255, &min_ttl))
    return NULL;
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)(SKF_NET_OFF + 0)), /* version / IHL byte */
      BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 4, 0, 2),                  /* IPv4? else IPv6 */
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)(SKF_NET_OFF + 8)), /* IPv4 TTL */
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)min_ttl, 2, 3),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, (uint32_t)(SKF_NET_OFF + 7)), /* IPv6 hop limit */
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)min_ttl, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffffu), /* keep the whole datagram */
      BPF_STMT(BPF_RET | BPF_K, 0),           /* drop */
  };
  struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) {
    throw_errno(env, "setsockopt", "cannot attach the TTL filter", errno);
  }
  return NULL;
}

/* ---- memory -------------------------------------------------------------- */

/*
 * mallocTrim(): give the C allocator's free memory back to the kernel (glibc's malloc_trim(0)). A burst of
 * short-lived native allocations (the etcd list's gRPC messages and Buffers at 100k WorkloadEndpoints: ~45 MiB)
 * stays in glibc's heaps once freed, counted in RSS for the life of the process; V8 returns its own pages, glibc
 * only trims the top of the main heap. Returns true when memory was released; false where there is no glibc.
 */
static napi_value MallocTrim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
#ifdef __GLIBC__
  bool released = malloc_trim(0) != 0;
#else
  bool released = false;
#endif
  if (napi_get_boolean(env, released, &result) != napi_ok) return NULL;
  return result;
}

/*
 * startIncrementalGc(bytes): have V8 start an incremental mark-compact now, and return the external memory it
 * counts afterwards. Issue 15: after a burst of control dumps the heap held hundreds of MiB of garbage that an idle
 * daemon never collects; V8's gc() (--expose-gc), even as gc({execution: 'async'}), runs one atomic mark-compact in
 * a later task, a pause of hundreds of ms at 1M routes and seconds under load (--trace-gc: reason "testing"). No
 * public interface starts incremental marking; napi_adjust_external_memory reaches V8's
 * Isolate::AdjustAmountOfExternalAllocatedMemory, and an increase that takes the external memory past its soft limit
 * (64 MiB above what it was at the last mark-compact) makes V8 start incremental marking, reason "external memory
 * pressure" (Heap::ReportExternalMemoryPressure); the marking then runs in V8's tasks and concurrent threads, the
 * pause only its finalization. The increase is taken back at once, so no limit stays lowered. Past the hard limit
 * (half the maximum old generation above that baseline) V8 would collect atomically instead: the caller keeps
 * `bytes` well under it. Isolate::MemoryPressureNotification(kModerate) does the same more directly, but it is
 * V8's C++ interface, not Node-API: an addon using it is bound to one V8 build.
 */
static napi_value StartIncrementalGc(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  size_t argc;
  int64_t bytes, total;
  if (!get_args(env, info, 1, argv, &argc) || !get_int(env, argv[0], "bytes", 1, (int64_t)1 << 40, &bytes)) return NULL;
  if (napi_adjust_external_memory(env, bytes, &total) != napi_ok) return NULL;
  if (napi_adjust_external_memory(env, -bytes, &total) != napi_ok) return NULL;
  if (napi_create_double(env, (double)total, &result) != napi_ok) return NULL;
  return result;
}

/* ---- module ------------------------------------------------------------ */

static void set_const(napi_env env, napi_value obj, const char *name, int value) {
  napi_value v;
  if (napi_create_int32(env, value, &v) == napi_ok) napi_set_named_property(env, obj, name, v);
}

/* announce_watch.c: AF_PACKET watch for a migrated VM's RARP / gratuitous ARP */
void skein_register_announce_watch(napi_env env, napi_value exports);

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"socket", NULL, Socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bind", NULL, Bind, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setMd5Sig", NULL, SetMd5Sig, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setIntOpt", NULL, SetIntOpt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getIntOpt", NULL, GetIntOpt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketFamily", NULL, SocketFamily, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sdNotify", NULL, SdNotify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attachMinTtlFilter", NULL, AttachMinTtlFilter, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mallocTrim", NULL, MallocTrim, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startIncrementalGc", NULL, StartIncrementalGc, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns) != napi_ok) return NULL;
  skein_register_announce_watch(env, exports);

  /* The kernel's numbers, straight from the headers this was compiled with. */
  napi_value c;
  if (napi_create_object(env, &c) != napi_ok) return NULL;
  set_const(env, c, "SOL_SOCKET", SOL_SOCKET);
  set_const(env, c, "SO_REUSEADDR", SO_REUSEADDR);
  set_const(env, c, "IPPROTO_IP", IPPROTO_IP);
  set_const(env, c, "IPPROTO_IPV6", IPPROTO_IPV6);
  set_const(env, c, "IPPROTO_TCP", IPPROTO_TCP);
  set_const(env, c, "IP_TTL", IP_TTL);
  set_const(env, c, "IP_MINTTL", IP_MINTTL);
  set_const(env, c, "IPV6_UNICAST_HOPS", IPV6_UNICAST_HOPS);
  set_const(env, c, "IPV6_MINHOPCOUNT", IPV6_MINHOPCOUNT);
  set_const(env, c, "IPV6_V6ONLY", IPV6_V6ONLY);
  set_const(env, c, "TCP_NODELAY", TCP_NODELAY);
  set_const(env, c, "TCP_MD5SIG_MAXKEYLEN", TCP_MD5SIG_MAXKEYLEN);
  napi_set_named_property(env, exports, "constants", c);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
