/*
 * The announcement a live-migrated VM makes when it resumes on its new host: QEMU sends RARP frames, other
 * hypervisors a gratuitous ARP (an ARP whose sender and target protocol addresses are equal). Calico's Felix watches
 * the target endpoint's interface for either (felix/dataplane/linux/live_migration.go detectGARP) and moves the
 * workload's routes at that moment; skein does the same here. Node cannot open an AF_PACKET socket, so:
 *
 *   announceWatch(ifname, callback(kind: 'rarp' | 'garp' | 'gone')): handle
 *     a non-blocking AF_PACKET socket bound to the interface, with a classic BPF filter that lets only those two
 *     kinds of frame through (everything else is dropped in the kernel, so a busy VM costs nothing here), polled by
 *     libuv on Node's own loop; received frames (not ones this host sent) call back on the main thread, once per
 *     wake-up. 'gone': the interface was deleted (the socket is unbound for good): the caller opens a new watch.
 *     'down': the interface went down (the watch goes on and sees frames once it is up again).
 *   announceWatchState(handle): 'up' | 'down' | 'gone', asked after 'down' (see on_readable).
 *   announceWatchClose(handle): stops and closes; idempotent.
 *   announceWatchPoll(handle): drains the socket now and says what it held (tests use it to check nothing was left).
 *
 * Errors throw as the rest of the addon does (errno name in `code`); ENODEV when the interface does not exist.
 *
 * Why the poll is restarted on an error: a packet socket bound to an interface that is down, or whose interface goes
 * down while bound, gets sk_err = ENETDOWN (net/packet/af_packet.c packet_do_bind, packet_notifier), which polls as
 * POLLERR; libuv answers POLLERR on a uv_poll_t by stopping the handle and calling back with UV_EBADF
 * (src/unix/poll.c uv__poll_io). The frames the socket receives once the interface is up were then never polled
 * (seen as a missed RARP when the tap of an incoming VM came up just after the watch opened). Reading the socket
 * clears sk_err, so on_readable drains it and starts the poll again.
 */
#define NAPI_VERSION 8
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define ETH_P_RARP_ 0x8035

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int fd;
  /* the interface the socket was bound to */
  int ifindex;
  bool closed;
} watch_t;

static void throw_sys(napi_env env, const char *syscall, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code, no, sc;
  const char *name = strerrorname_np(err);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &code);
  napi_set_named_property(env, e, "code", code);
  napi_create_int32(env, -err, &no);
  napi_set_named_property(env, e, "errno", no);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, e, "syscall", sc);
  napi_throw(env, e);
}

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

static void stop(watch_t *w) {
  if (w->closed) return;
  w->closed = true;
  uv_poll_stop(&w->poll);
  close(w->fd);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->async);
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

/* What a frame is: "rarp", "garp" (an ARP whose sender and target protocol addresses are equal), or NULL. */
static const char *classify(const unsigned char *b, ssize_t n) {
  if (n < 14) return NULL;
  unsigned type = (b[12] << 8) | b[13];
  if (type == ETH_P_RARP_) return "rarp";
  if (type == ETH_P_ARP && n >= 42 && memcmp(b + 28, b + 38, 4) == 0) return "garp";
  return NULL;
}

/*
 * Drain what is queued (at most 64 frames: uv_poll is level-triggered, so more wake it again); returns the kind of
 * the last announcement among it, or NULL. A pending socket error (ENETDOWN) is consumed by recvfrom on the way.
 */
static const char *drain(watch_t *w) {
  const char *kind = NULL;
  unsigned char buf[64];
  for (int i = 0; i < 64; i++) {
    struct sockaddr_ll from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(w->fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from, &flen);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      continue; /* the error (ENETDOWN) is cleared by reading it: frames may still be queued behind it */
    }
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    /* The filter lets only announcements in; checked again here, it costs nothing and guards the filter. */
    const char *k = classify(buf, n < (ssize_t)sizeof buf ? n : (ssize_t)sizeof buf);
    if (k != NULL) kind = k;
  }
  return kind;
}

/* Is the socket still bound to its interface? After the interface is deleted the kernel unbinds it (ifindex -1). */
static bool still_bound(watch_t *w) {
  struct sockaddr_ll sll;
  socklen_t len = sizeof sll;
  if (getsockname(w->fd, (struct sockaddr *)&sll, &len) != 0) return false;
  return sll.sll_ifindex == w->ifindex;
}

static void on_readable(uv_poll_t *p, int status, int events) {
  watch_t *w = p->data;
  if (w->closed) return;
  /* One callback per wake-up is enough (the state machine needs one sighting). */
  const char *kind = drain(w);
  if (status < 0) {
    /*
     * POLLERR: libuv stopped the handle (see the header). Start it again, unless the interface is gone. 'down' when
     * nothing else was read: the kernel tells a socket nothing more if its interface is deleted while down, so the
     * caller checks announceWatchState until the interface is up again.
     */
    if (!still_bound(w) || uv_poll_start(&w->poll, UV_READABLE, on_readable) != 0) kind = "gone";
    else if (kind == NULL) kind = "down";
  }
  if (kind == NULL) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL) {
    napi_get_global(env, &recv); /* MakeCallback wants an object receiver */
    napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &arg);
    if (napi_make_callback(env, w->async, recv, cb, 1, &arg, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void finalize(napi_env env, void *data, void *hint) {
  /* The JS handle was collected without announceWatchClose: stop polling so the loop is not kept alive. */
  watch_t *w = data;
  if (w && !w->closed) stop(w);
}

static napi_value AnnounceWatch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  char ifname[IF_NAMESIZE + 1];
  size_t len = 0;
  napi_valuetype t0, t1;
  napi_typeof(env, argv[0], &t0);
  napi_typeof(env, argv[1], &t1);
  if (argc < 2 || t0 != napi_string || t1 != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "announceWatch(ifname: string, callback: function)");
    return NULL;
  }
  if (napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &len) != napi_ok || len == 0 || len >= IF_NAMESIZE) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "the interface name must be 1 to 15 characters");
    return NULL;
  }
  unsigned idx = if_nametoindex(ifname);
  if (idx == 0) {
    throw_sys(env, "if_nametoindex", "no such interface", errno ? errno : ENODEV);
    return NULL;
  }
  /*
   * Protocol 0: a packet socket created with a protocol starts receiving from every interface at once, before the
   * filter below is attached; with 0 it receives nothing until bind() names the protocol and the interface.
   */
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_sys(env, "socket", "cannot open a packet socket", errno);
    return NULL;
  }
  /*
   * Attached before bind, so no unfiltered frame is ever queued. Offsets into the Ethernet frame: EtherType at 12;
   * for ARP (RFC 826) the sender protocol address at 14+14 = 28 and the target protocol address at 14+24 = 38.
   */
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_RARP_, 5, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_ARP, 0, 5),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 28),
      BPF_STMT(BPF_MISC | BPF_TAX, 0),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 38),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_X, 0, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 64),
      BPF_STMT(BPF_RET | BPF_K, 0),
  };
  struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) {
    int e = errno;
    close(fd);
    throw_sys(env, "setsockopt", "cannot attach the announcement filter", e);
    return NULL;
  }
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)idx;
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) != 0) {
    int e = errno;
    close(fd);
    throw_sys(env, "bind", "cannot bind the packet socket to the interface", e);
    return NULL;
  }
  uv_loop_t *loop;
  watch_t *w = calloc(1, sizeof *w);
  if (w == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &w->poll, fd) != 0) {
    free(w);
    close(fd);
    throw_sys(env, "uv_poll_init", "cannot poll the packet socket", ENOMEM);
    return NULL;
  }
  w->poll.data = w;
  w->env = env;
  w->fd = fd;
  w->ifindex = (int)idx;
  napi_value name, handle;
  napi_create_string_utf8(env, "skein:announceWatch", NAPI_AUTO_LENGTH, &name);
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_async_init(env, NULL, name, &w->async);
  int rc = uv_poll_start(&w->poll, UV_READABLE, on_readable);
  if (rc != 0) {
    stop(w);
    throw_sys(env, "uv_poll_start", "cannot poll the packet socket", -rc);
    return NULL;
  }
  napi_create_object(env, &handle);
  napi_wrap(env, handle, w, finalize, NULL, NULL);
  return handle;
}

/* announceWatchPoll(handle): 'rarp' | 'garp' | null — drains the socket now, without waiting for the loop's poll. */
static napi_value AnnounceWatchPoll(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  napi_get_null(env, &out);
  if (argc < 1 || napi_unwrap(env, argv[0], &data) != napi_ok || data == NULL || ((watch_t *)data)->closed) return out;
  const char *kind = drain((watch_t *)data);
  if (kind != NULL) napi_create_string_utf8(env, kind, NAPI_AUTO_LENGTH, &out);
  return out;
}

/* announceWatchState(handle): 'up' | 'down' | 'gone' — the watched interface now ('gone': deleted, watch anew). */
static napi_value AnnounceWatchState(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  const char *state = "gone";
  watch_t *w = NULL;
  if (argc >= 1 && napi_unwrap(env, argv[0], &data) == napi_ok && data != NULL && !((watch_t *)data)->closed) w = data;
  char name[IF_NAMESIZE];
  if (w != NULL && still_bound(w) && if_indextoname((unsigned)w->ifindex, name) != NULL) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, name, sizeof name);
    state = ioctl(w->fd, SIOCGIFFLAGS, &ifr) != 0 ? "gone" : (ifr.ifr_flags & IFF_UP) ? "up" : "down";
  }
  napi_create_string_utf8(env, state, NAPI_AUTO_LENGTH, &out);
  return out;
}

static napi_value AnnounceWatchClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_remove_wrap(env, argv[0], &data) != napi_ok || data == NULL) return NULL; /* closed already */
  stop((watch_t *)data);
  return NULL;
}

void skein_register_announce_watch(napi_env env, napi_value exports) {
  napi_property_descriptor fns[] = {
      {"announceWatch", NULL, AnnounceWatch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"announceWatchClose", NULL, AnnounceWatchClose, NULL, NULL, NULL, napi_enumerable, NULL},
      {"announceWatchPoll", NULL, AnnounceWatchPoll, NULL, NULL, NULL, napi_enumerable, NULL},
      {"announceWatchState", NULL, AnnounceWatchState, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
