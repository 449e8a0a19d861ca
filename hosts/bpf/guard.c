// SPDX-License-Identifier: MIT
/* Trusted MPTCP enforcement: a tc (clsact) ingress classifier, direct action.
 *
 * The agent puts the incoming 4-tuples of the subflows in enforcement's scope into the
 * `guarded` map (hosts/extension.py, Scope), each with the MPTCP subtypes allowed there
 * as a bit mask: MP_CAPABLE, MP_JOIN and DSS on a guarded subflow (untrusted, of a
 * connection that has had a trusted one); also ADD_ADDR (marked for the agent) and
 * ADDR_TRUST in a connection's opening; all of them where the agent lifts an opening
 * (a trusted subflow). The program begins an opening itself when an MPTCP SYN or SYN/ACK
 * arrives (the `openings` map), so a subflow is in scope from its handshake on, before
 * the agent has read the copy of it. For every TCP segment this program walks the
 * whole TCP option area the way Linux's tcp_parse_options() does (NOPs skipped, EOL ends
 * it) and, on a subflow in the map, drops the segment when any other MPTCP subtype
 * appears anywhere in it, whatever the
 * TCP flags, IP options or payload, and when the option area does not parse (Linux would
 * have used the options before the bad one). Fail closed: what it cannot read in
 * guarded scope it drops. TCP in IPv4 or IPv6 fragments is dropped while enforcing
 * (Linux reassembles fragments and acts on their options; its own TCP never fragments).
 *
 * Trust is bound to the interface: a packet for one of the host's addresses that arrives
 * on another interface than the one facing that address's network is dropped (the
 * `bound` map), whatever it carries: an attacker on the legacy network cannot deliver
 * "from the peer's protected address to ours" past it.
 *
 * The hot path (every data segment and ACK) costs less than half of what the general
 * one does (`experiments.bench --only classifier_cost`: about 90 ns a data segment
 * against 200-260 before it): headers read straight from the packet, Linux's usual
 * option layouts read without the loop, and the scope maps not read for a segment that
 * carries nothing a scope forbids (tests/unit/test_guard.py holds it to the general
 * path's answers on every option area it generates).
 *
 * Outside guarded scope it only marks segments the agent must judge in NFQUEUE: any
 * ADD_ADDR (for the T flag), and while enforcing, MP_JOIN SYNs (the join policy); and
 * the segments of a subflow behind an ADD_ADDR the agent still holds (`held`).
 * Data stays in the kernel. Counters: see enum counter (hosts/guard.py names them).
 *
 * control_out, for iptables' bpf match, finds the host's own control options to move
 * and the segments of the subflows that must carry them (the `carriers` map).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MPTCP_KIND 30
#define MAX_OPTS 40

enum counter {
	C_TCP_SEEN,        /* TCP segments inspected */
	C_GUARDED_SEEN,    /* ... judged on a guarded subflow (see hot path below) */
	C_DROP_CONTROL,    /* guarded: a forbidden MPTCP subtype */
	C_DROP_MALFORMED,  /* guarded: the option area does not parse */
	C_DROP_FRAGMENT,   /* enforcing: TCP in an IP fragment */
	C_DROP_TRUNCATED,  /* enforcing: a TCP header that cannot be read */
	C_DROP_EXTHDR,     /* enforcing: IPv6 extension headers we do not walk */
	C_MARK_ADD_ADDR,   /* queued to the agent: ADD_ADDR outside guarded scope */
	C_MARK_JOIN,       /* queued to the agent: MP_JOIN SYN */
	C_DROP_WRONG_IFACE, /* for a bound local address, arriving on another interface */
	C_OPENED,          /* an MPTCP SYN or SYN/ACK arrived: its subflow's opening began */
	C_OPENING_SEEN,    /* ... judged by an opening the program began itself */
	C_MARK_HELD,       /* queued to the agent: behind an ADD_ADDR it still holds */
	C_SUBTYPE_BASE,    /* + subtype: drops per MPTCP subtype (16 slots) */
	C_COUNT = C_SUBTYPE_BASE + 16,
};

struct flow_key {
	__u32 family; /* 4 or 6 */
	__u8 saddr[16]; /* IPv4 in the first 4 bytes, the rest zero */
	__u8 daddr[16];
	__u16 sport; /* network order */
	__u16 dport;
};

/* A local address and the one interface it may be reached through. */
struct addr_key {
	__u32 family;
	__u8 addr[16];
};

struct config {
	__u32 enforce;
	__u32 mark; /* skb mark that sends a segment to the agent's NFQUEUE */
	__u32 opening_allowed; /* subtypes allowed in an opening; 0: the program begins none */
	__u32 opening_ms;      /* how long an opening the program began lasts */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct flow_key);
	__type(value, __u32);
} guarded SEC(".maps");

/* Subflows whose MPTCP SYN (or SYN/ACK) arrived, and when (ns): in scope from that very
 * segment, before the agent has read its copy of it (a forgery built from the SYN/ACK
 * can follow within a millisecond). The agent's `guarded` map takes precedence. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct flow_key);
	__type(value, __u64);
} openings SEC(".maps");

/* Subflows (incoming 4-tuples) with an ADD_ADDR in the agent's queue: their next
 * segments are queued behind it until the agent has released it, so none reaches TCP
 * first (data would move the window past the held ACK and TCP would drop it unread,
 * a newer timestamp would fail it on PAWS). The agent deletes the entry once its queue
 * is empty; LRU, so a forgotten one cannot fill the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct flow_key);
	__type(value, __u32);
} held SEC(".maps");

/* The host's own subflows (outgoing 4-tuples) whose next segment must carry options
 * the agent moved there: control_out sends their segments to the agent, which takes the
 * subflow out again once one has taken the options and left. The value says which
 * segments: every one (an option the connection's set-up waits for) or only those
 * without payload (a refresh: the agent's kick makes one, and a sender's data at full
 * rate would otherwise go through userspace until the map update, hundreds of segments). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct flow_key);
	__type(value, __u32);
} carriers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct addr_key);
	__type(value, __u32); /* ifindex */
} bound SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} settings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);

	if (c)
		*c += 1;
}

/* What the walk found in an option area. */
struct walk {
	__u32 subtypes;  /* bit n: an MPTCP option of subtype n */
	__u32 malformed; /* the area does not parse */
};

/* The option walk, one option per step of bpf_loop(): the verifier checks the step
 * once, whatever the number of paths that lead to the walk. */
struct walk_state {
	__u8 b[64]; /* the option area, zero-padded */
	__s32 len;
	__s32 pos;
	struct walk w;
};

static long walk_step(__u32 index, void *data)
{
	struct walk_state *s = data;
	__s32 pos = s->pos;
	__s32 len = s->len;

	if (pos < 0 || pos >= len || pos >= MAX_OPTS)
		return 1; /* the end of the area */
	__u8 kind = s->b[pos & 63];

	if (kind == 0) /* EOL: Linux reads no further */
		return 1;
	if (kind == 1) { /* NOP */
		s->pos = pos + 1;
		return 0;
	}
	if (pos + 1 >= len) {
		s->w.malformed = 1;
		return 1;
	}
	__u8 olen = s->b[(pos + 1) & 63];

	if (olen < 2 || pos + olen > len) {
		s->w.malformed = 1;
		return 1;
	}
	if (kind == MPTCP_KIND) {
		if (olen < 3) { /* no subtype byte: Linux would read the next option's */
			s->w.malformed = 1;
			return 1;
		}
		s->w.subtypes |= 1u << (s->b[(pos + 2) & 63] >> 4);
	}
	s->pos = pos + olen;
	return 0;
}

/* The option areas Linux puts on data segments and ACKs, read without the loop: nothing,
 * or [NOP NOP TIMESTAMP] then at most one MPTCP option followed by at most three bytes
 * of NOP or EOL padding. Returns 1 with `w` filled in exactly as the walk would fill it,
 * 0 for any other area (the walk then reads it). About a third of the walk's cost on
 * every data segment (tests/unit/test_guard.py holds the two to the same answers). */
static __always_inline int quick_walk(const __u8 *b, __s32 len, struct walk *w)
{
	__s32 pos = 0;

	w->subtypes = 0;
	w->malformed = 0;
	if (len >= 12 && b[0] == 1 && b[1] == 1 && b[2] == 8 && b[3] == 10)
		pos = 12;
	if (pos == len)
		return 1;
	if (len > MAX_OPTS || pos + 3 > len || b[pos & 63] != MPTCP_KIND)
		return 0;
	__u8 olen = b[(pos + 1) & 63];

	if (olen < 3 || pos + olen > len || len - (pos + olen) > 3)
		return 0;
	__u32 subtype = 1u << (b[(pos + 2) & 63] >> 4);

	/* The padding: NOPs, or an EOL after which Linux reads nothing. */
	for (__s32 i = 0; i < 3; i++) {
		__s32 at = pos + olen + i;

		if (at >= len || b[at & 63] == 0)
			break;
		if (b[at & 63] != 1)
			return 0;
	}
	w->subtypes = subtype;
	return 1;
}

/* The option area in `ws->b`, `olen` bytes: the quick walk where it applies, else the loop. */
static __always_inline void walk_area(struct walk_state *ws, __s32 olen, struct walk *w)
{
	ws->len = olen;
	if (!quick_walk(ws->b, olen, w)) {
		bpf_loop(MAX_OPTS, walk_step, ws, 0);
		*w = ws->w;
	}
}

#define ALLOWED_ON_GUARDED ((1u << 0) | (1u << 1) | (1u << 2)) /* MP_CAPABLE, MP_JOIN, DSS */
#define SUBTYPE_ADD_ADDR 3
#define SUBTYPE_MP_JOIN 1
#define SUBTYPE_MP_CAPABLE 0
#define TCP_SYN 0x02
#define TCP_ACK 0x10

static __always_inline int drop(__u32 why)
{
	count(why);
	return TC_ACT_SHOT;
}

/* Where the IP header starts: tc programs see the Ethernet header, socket filters run
 * by iptables' bpf match start at the IP header. */
struct segment {
	struct flow_key key;
	__u8 flags;     /* TCP flags */
	__u32 payload_off; /* where the TCP payload begins, counted from the IP header */
	int verdict;    /* < 0: no TCP segment to judge; else 0 */
	struct walk w;
};

/* Read the IP and TCP headers at `base` into `seg`. Returns a drop counter when the
 * segment must be dropped while enforcing whatever its subflow, -1 to pass it unjudged
 * (not TCP), 0 when `seg` is filled in. */
static __always_inline int read_segment(struct __sk_buff *skb, __u32 base, struct segment *seg)
{
	__u8 hdr[40];
	__u32 l4;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, base, hdr, 20) < 0)
			return -1; /* not a whole IPv4 header: the kernel drops it */
		seg->key.family = 4;
		__builtin_memcpy(seg->key.saddr, &hdr[12], 4);
		__builtin_memcpy(seg->key.daddr, &hdr[16], 4);
		if (hdr[9] != IPPROTO_TCP)
			return -1;
		__u32 ihl = (hdr[0] & 0x0f) * 4;

		if (ihl < 20)
			return -1; /* the kernel drops it */
		if ((hdr[6] << 8 | hdr[7]) & 0x3fff) /* MF or an offset */
			return C_DROP_FRAGMENT;
		l4 = base + ihl;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, base, hdr, 40) < 0)
			return -1;
		__u8 next = hdr[6];

		seg->key.family = 6;
		__builtin_memcpy(seg->key.saddr, &hdr[8], 16);
		__builtin_memcpy(seg->key.daddr, &hdr[24], 16);
		l4 = base + 40;
		/* Hop-by-hop, routing and destination options headers (at most 4). */
		for (int i = 0; i < 4; i++) {
			if (next != 0 && next != 43 && next != 60)
				break;
			__u8 ext[2];

			if (bpf_skb_load_bytes(skb, l4, ext, 2) < 0)
				return C_DROP_EXTHDR;
			next = ext[0];
			l4 += (ext[1] + 1) * 8;
		}
		if (next == 44) /* a fragment header: what it carries is unknown until reassembly */
			return C_DROP_FRAGMENT;
		if (next == 0 || next == 43 || next == 60)
			return C_DROP_EXTHDR;
		if (next != IPPROTO_TCP)
			return -1;
	} else {
		return -1;
	}

	__u8 tcp[20];

	if (bpf_skb_load_bytes(skb, l4, tcp, 20) < 0)
		return C_DROP_TRUNCATED;
	__builtin_memcpy(&seg->key.sport, &tcp[0], 2);
	__builtin_memcpy(&seg->key.dport, &tcp[2], 2);
	seg->flags = tcp[13];
	seg->payload_off = l4 - base + (tcp[12] >> 4) * 4;
	int olen = (tcp[12] >> 4) * 4 - 20;
	struct walk_state ws = {};

	seg->w.subtypes = 0;
	seg->w.malformed = 0;
	if (olen < 0) {
		seg->w.malformed = 1;
	} else if (olen > 0) {
		if (olen > MAX_OPTS)
			olen = MAX_OPTS; /* cannot happen: a 4-bit offset */
		if (bpf_skb_load_bytes(skb, l4 + 20, ws.b, olen) < 0) {
			seg->w.malformed = 1; /* the options run past the packet */
		} else {
			walk_area(&ws, olen, &seg->w);
		}
	}
	return 0;
}

/* read_segment() for the common case, straight from the packet's linear data: an IPv4
 * header without options and not a fragment, or an IPv6 header with TCP next, then the
 * TCP header and its options, all in the linear part (every data segment here). Returns
 * 1 with `seg` filled in as read_segment() would fill it, 0 when read_segment() must read
 * it: the helper calls it makes cost as much as the rest of the program's hot path. */
static __always_inline int read_linear(struct __sk_buff *skb, struct segment *seg)
{
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *end = (__u8 *)(long)skb->data_end;
	__u8 *ip = data + ETH_HLEN;
	__u8 *tcp;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (ip + 20 > end || ip[0] != 0x45 || ip[9] != IPPROTO_TCP ||
		    ((ip[6] << 8 | ip[7]) & 0x3fff))
			return 0;
		seg->key.family = 4;
		__builtin_memcpy(seg->key.saddr, ip + 12, 4);
		__builtin_memcpy(seg->key.daddr, ip + 16, 4);
		tcp = ip + 20;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (ip + 40 > end || ip[6] != IPPROTO_TCP)
			return 0;
		seg->key.family = 6;
		__builtin_memcpy(seg->key.saddr, ip + 8, 16);
		__builtin_memcpy(seg->key.daddr, ip + 24, 16);
		tcp = ip + 40;
	} else {
		return 0;
	}
	if (tcp + 20 > end)
		return 0;
	int olen = (tcp[12] >> 4) * 4 - 20;

	if (olen < 0)
		return 0;
	__builtin_memcpy(&seg->key.sport, tcp, 2);
	__builtin_memcpy(&seg->key.dport, tcp + 2, 2);
	seg->flags = tcp[13];
	seg->payload_off = (tcp - ip) + (tcp[12] >> 4) * 4;
	seg->w.subtypes = 0;
	seg->w.malformed = 0;
	if (olen == 0)
		return 1;
	struct walk_state ws = {};

	if (olen > MAX_OPTS)
		return 0; /* cannot happen: a 4-bit offset */
	if (tcp + 20 + MAX_OPTS <= end) {
		__builtin_memcpy(ws.b, tcp + 20, MAX_OPTS); /* the bytes past olen are not read */
	} else if (bpf_skb_load_bytes(skb, tcp + 20 - data, ws.b, olen) < 0) {
		/* A short segment (a pure ACK) ends within the largest area: read its own. */
		seg->w.malformed = 1; /* the options run past the packet */
		return 1;
	}
	walk_area(&ws, olen, &seg->w);
	return 1;
}

SEC("tc")
int guard_ingress(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&settings, &zero);
	__u32 enforce = cfg ? cfg->enforce : 0;
	struct segment seg = {};
	int r = read_linear(skb, &seg) ? 0 : read_segment(skb, ETH_HLEN, &seg);

	if (seg.key.family) { /* the addresses were read: is the destination bound elsewhere? */
		struct addr_key ak = { .family = seg.key.family };

		__builtin_memcpy(ak.addr, seg.key.daddr, 16);
		__u32 *ifindex = bpf_map_lookup_elem(&bound, &ak);

		if (ifindex && *ifindex != skb->ifindex)
			return drop(C_DROP_WRONG_IFACE);
	}
	if (r < 0)
		return TC_ACT_OK;
	if (r > 0) /* unreadable in any scope: drop it only while enforcing */
		return enforce ? drop(r) : TC_ACT_OK;
	count(C_TCP_SEEN);
	/* The hot path: a well-formed segment with no MPTCP option but DSS, MP_CAPABLE or
	 * MP_JOIN, not a SYN (every data segment and ACK). No scope drops it and none begins
	 * with it, so the scope maps are not read; only `held` may still claim it. */
	if (!(seg.flags & TCP_SYN) && !seg.w.malformed && !(seg.w.subtypes & ~ALLOWED_ON_GUARDED))
		goto mark;
	__u32 *in_map = bpf_map_lookup_elem(&guarded, &seg.key);
	__u32 allowed = in_map ? *in_map : 0;

	if (!in_map && cfg && cfg->enforce && cfg->opening_allowed) {
		__u64 now = bpf_ktime_get_ns();

		if ((seg.flags & TCP_SYN) &&
		    (seg.w.subtypes & ((1u << SUBTYPE_MP_CAPABLE) | (1u << SUBTYPE_MP_JOIN)))) {
			bpf_map_update_elem(&openings, &seg.key, &now, BPF_ANY);
			count(C_OPENED);
			allowed = cfg->opening_allowed;
		} else {
			__u64 *since = bpf_map_lookup_elem(&openings, &seg.key);

			if (since && now - *since < (__u64)cfg->opening_ms * 1000000) {
				count(C_OPENING_SEEN);
				allowed = cfg->opening_allowed;
			}
		}
	}
	if (allowed) {
		count(C_GUARDED_SEEN);
		if (seg.w.malformed)
			return drop(C_DROP_MALFORMED);
		__u32 bad = seg.w.subtypes & ~(allowed | ALLOWED_ON_GUARDED);

		if (bad) {
			count(C_DROP_CONTROL);
			for (int s = 0; s < 16; s++)
				if (bad & (1u << s))
					count(C_SUBTYPE_BASE + s);
			return TC_ACT_SHOT;
		}
	}
mark:
	if (!cfg || !cfg->mark)
		return TC_ACT_OK;
	if (seg.w.subtypes & (1u << SUBTYPE_ADD_ADDR)) {
		__u32 one = 1;

		count(C_MARK_ADD_ADDR);
		bpf_map_update_elem(&held, &seg.key, &one, BPF_ANY);
		skb->mark = cfg->mark;
	} else if (enforce && (seg.flags & (TCP_SYN | TCP_ACK)) == TCP_SYN &&
		   (seg.w.subtypes & (1u << SUBTYPE_MP_JOIN))) {
		count(C_MARK_JOIN);
		skb->mark = cfg->mark;
	} else if (bpf_map_lookup_elem(&held, &seg.key)) {
		count(C_MARK_HELD);
		skb->mark = cfg->mark;
	}
	return TC_ACT_OK;
}

/* For iptables' bpf match on the host's own output: 1 for a segment the agent must see,
 * that is one of a subflow in `carriers` (only one without payload where its value says
 * CARRY_EMPTY), or one that carries a connection-level control option (ADD_ADDR, RM_ADDR,
 * MP_PRIO) anywhere among its options, so the agent can move it to a trusted subflow
 * (never a SYN's). */
#define OWN_CONTROL ((1u << 3) | (1u << 4) | (1u << 5))
#define CARRY_EMPTY 2 /* hosts/guard.py CarryMode.EMPTY; any other value: every segment */

SEC("socket")
int control_out(struct __sk_buff *skb)
{
	struct segment seg = {};

	if (read_segment(skb, 0, &seg) != 0)
		return 0;
	__u32 *mode = bpf_map_lookup_elem(&carriers, &seg.key);

	if (mode && (*mode != CARRY_EMPTY || skb->len <= seg.payload_off))
		return 1;
	return (!(seg.flags & TCP_SYN) && (seg.w.subtypes & OWN_CONTROL)) ? 1 : 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
