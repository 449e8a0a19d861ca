// SPDX-License-Identifier: MIT
/* A work-around for a Linux MPTCP sender bug, on the egress of a testbed's MPTCP
 * endpoints (tc clsact, direct action): take the data ACK out of the receiver's ACKs
 * that would move the sender's data-level window edge past any edge the receiver
 * announced.
 *
 * The bug (tools/mptcp-stall/REPORT.md, docs/line-rate.md): the sender computes its
 * right edge as the data ACK of the segment just received plus the window of the subflow
 * it came on *as TCP last accepted it* (ack_update_msk() in net/mptcp/options.c). TCP
 * takes a window only when the ACK acknowledges new subflow data, carries newer subflow
 * data, or (same numbers) is larger or zero (tcp_may_update_window()). An MPTCP receiver
 * sends data ACKs on idle subflows too; when its buffer fills, such an ACK's smaller
 * window is ignored while its newer data ACK is taken: the sum is an edge the receiver
 * never announced, the sender sends past it, the receiver drops what arrives out of
 * order beyond it and only the data-level retransmission timer recovers (stalls of
 * seconds at 10 Gbit/s through the userspace datapath with TSO).
 *
 * This program keeps, per subflow leaving this host (interface and 4-tuple), what the
 * peer's TCP holds: the largest ACK number sent (snd_una), and the sequence number
 * (snd_wl1) and window of the last segment whose window TCP took, by TCP's own rule.
 * When a segment has no payload, no SYN/FIN/RST, the same ACK and sequence numbers as
 * the last window TCP took and a smaller non-zero window (which TCP will ignore), and its
 * only MPTCP option is a DSS carrying a data ACK (neither a mapping nor a DATA_FIN), the
 * program overwrites that DSS with NOPs and fixes the TCP checksum: TCP still gets
 * everything else the segment says (a duplicate ACK and its SACK blocks for loss
 * recovery, timestamps), MPTCP gets no data ACK to add to the stale window, and the data
 * ACK reaches the sender on the next segment TCP takes. (A first version dropped such
 * segments whole: the stall went, but so would the SACK blocks of the duplicate ACKs
 * among them, and most of the ACKs that teach the stale edge carry SACK blocks.) A DSS
 * at an odd offset (never Linux's layout) is left alone, as the checksum is fixed a
 * 16-bit word at a time. Everything else passes unchanged, including what this program
 * cannot parse: it is a performance work-around, not a guard, and passing is what the
 * kernel does without it. Counters: `counters`.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MPTCP_KIND 30
#define TCPOPT_TIMESTAMP 8
#define MAX_STEPS 12
#define MPTCP_DSS 2
#define DSS_DATA_ACK 0x01
#define DSS_MAPPING 0x04
#define DSS_DATA_FIN 0x10
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

enum counter {
	C_TRACKED,  /* a subflow's first data-ACK-only segment: its state begins */
	C_STRIPPED, /* a data ACK the peer would add to a window TCP did not take: NOPs now */
	C_COUNT,
};

struct flow_key {
	__u32 ifindex;
	__u32 family; /* 4 or 6 */
	__u8 saddr[16]; /* IPv4 in the first 4 bytes, the rest zero */
	__u8 daddr[16];
	__u16 sport; /* network order */
	__u16 dport;
};

/* What the peer's TCP holds for the subflow, as far as this host sent it. */
struct taken {
	__u32 ack;    /* the largest acknowledgment number sent: the peer's snd_una */
	__u32 seq;    /* the sequence number of the last window taken: snd_wl1 */
	__u32 window; /* that window, raw (one subflow scales all its windows alike) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct flow_key);
	__type(value, struct taken);
} flows SEC(".maps");

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

static __always_inline int after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

static __always_inline __u32 be32_at(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

/* Where the option area's one MPTCP option lies, a DSS with a data ACK and neither a
 * mapping nor a DATA_FIN (other TCP options may stand beside it: timestamps, SACK), and
 * its length in *dss_len; -1 for anything else, an area that does not parse included. */
static __always_inline int bare_data_ack(const __u8 *b, int len, int *dss_len)
{
	int pos = 0, found = -1;

	/* Linux's own layout is NOP NOP TIMESTAMP DSS (four steps; with SACK blocks six).
	 * An area that needs more than MAX_STEPS (NOP padding) is not one we judge; the
	 * bound also keeps the verifier's paths few. */
	for (int i = 0; i < MAX_STEPS; i++) {
		if (pos >= len)
			return found;
		__u8 kind = b[pos & 63];

		if (kind == 0) /* EOL */
			return found;
		if (kind == 1) { /* NOP */
			pos++;
			continue;
		}
		if (pos + 1 >= len)
			return -1;
		__u8 olen = b[(pos + 1) & 63];

		if (olen < 2 || pos + olen > len)
			return -1;
		if (kind == MPTCP_KIND) {
			__u8 flags = b[(pos + 3) & 63];

			if (olen < 4 || found >= 0 || b[(pos + 2) & 63] >> 4 != MPTCP_DSS ||
			    !(flags & DSS_DATA_ACK) || (flags & (DSS_MAPPING | DSS_DATA_FIN)))
				return -1; /* a second MPTCP option, or not a bare data ACK */
			found = pos;
			*dss_len = olen;
		}
		pos += olen;
	}
	return -1;
}

/* Overwrite the DSS of ``len`` bytes at ``off`` (from the frame's start; ``csum_off``
 * the TCP checksum's) with NOPs, a 32-bit word at a time, fixing the checksum for each
 * (the DSS starts on a 16-bit boundary, so each word is two of the checksum's); 0 when
 * done. With checksum offload (CHECKSUM_PARTIAL) the kernel leaves the field alone and
 * the NIC sums the new bytes. */
static __always_inline int strip(struct __sk_buff *skb, __u32 off, __u32 csum_off, int len)
{
	const __u32 nops = 0x01010101;

	for (int i = 0; i < 3; i++) {
		__u32 word;

		if (i * 4 >= len)
			break;
		if (bpf_skb_load_bytes(skb, off + i * 4, &word, 4) < 0 ||
		    bpf_skb_store_bytes(skb, off + i * 4, &nops, 4, 0) < 0 ||
		    bpf_l4_csum_replace(skb, csum_off, word, nops, 4) < 0)
			return -1;
	}
	return 0;
}

SEC("tc")
int stale_window(struct __sk_buff *skb)
{
	struct flow_key key = {.ifindex = skb->ifindex};
	__u8 hdr[40];
	__u32 l4, payload;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, hdr, 20) < 0)
			return TC_ACT_OK;
		__u32 ihl = (hdr[0] & 0xf) * 4;

		if (hdr[9] != IPPROTO_TCP || ihl < 20 || (hdr[6] & 0x3f) || hdr[7])
			return TC_ACT_OK; /* not TCP, or a fragment */
		key.family = 4;
		__builtin_memcpy(key.saddr, hdr + 12, 4);
		__builtin_memcpy(key.daddr, hdr + 16, 4);
		payload = ((__u32)hdr[2] << 8 | hdr[3]) - ihl; /* TCP header and data */
		l4 = ETH_HLEN + ihl;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, hdr, 40) < 0)
			return TC_ACT_OK;
		if (hdr[6] != IPPROTO_TCP) /* extension headers: not ours to judge */
			return TC_ACT_OK;
		key.family = 6;
		__builtin_memcpy(key.saddr, hdr + 8, 16);
		__builtin_memcpy(key.daddr, hdr + 24, 16);
		payload = (__u32)hdr[4] << 8 | hdr[5];
		l4 = ETH_HLEN + 40;
	} else {
		return TC_ACT_OK;
	}
	__u8 tcp[20];

	if (bpf_skb_load_bytes(skb, l4, tcp, 20) < 0)
		return TC_ACT_OK;
	__builtin_memcpy(&key.sport, tcp, 2);
	__builtin_memcpy(&key.dport, tcp + 2, 2);
	__u32 seq = be32_at(tcp + 4);
	__u32 ack = be32_at(tcp + 8);
	__u32 doff = (tcp[12] >> 4) * 4;
	__u8 flags = tcp[13];
	__u32 window = (__u32)tcp[14] << 8 | tcp[15];

	if (flags & (TCP_SYN | TCP_RST | TCP_FIN)) {
		bpf_map_delete_elem(&flows, &key); /* a subflow begins or ends */
		return TC_ACT_OK;
	}
	if (!(flags & TCP_ACK) || doff < 20)
		return TC_ACT_OK;
	struct taken *t = bpf_map_lookup_elem(&flows, &key);
	int dss = -1, dss_len = 0;
	__u32 olen = doff - 20;

	/* A GSO packet's IP length may be 0 or anything: only an exact pure ACK counts. */
	if (payload == doff && olen >= 4 && olen <= 40) {
		__u8 opts[64] = {};

		if (bpf_skb_load_bytes(skb, l4 + 20, opts, olen) == 0)
			dss = bare_data_ack(opts, olen, &dss_len);
	}
	if (!t) {
		if (dss >= 0) { /* an MPTCP subflow: follow it from here */
			struct taken first = {.ack = ack, .seq = seq, .window = window};

			bpf_map_update_elem(&flows, &key, &first, BPF_ANY);
			count(C_TRACKED);
		}
		return TC_ACT_OK;
	}
	if (after(t->ack, ack))
		return TC_ACT_OK; /* an old ACK: TCP ignores it */
	/* tcp_may_update_window(), with t->ack as snd_una and t->seq as snd_wl1 */
	if (after(ack, t->ack) || after(seq, t->seq) ||
	    (seq == t->seq && (window > t->window || window == 0))) {
		t->ack = ack;
		t->seq = seq;
		t->window = window;
		return TC_ACT_OK;
	}
	/* A data ACK is 4 or 8 bytes (the DSS 8 or 12); the offset even, see strip(). */
	if (seq != t->seq || window == t->window || dss < 0 || (dss & 1) ||
	    (dss_len != 8 && dss_len != 12))
		return TC_ACT_OK;
	if (strip(skb, l4 + 20 + dss, l4 + 16, dss_len) < 0)
		return TC_ACT_SHOT; /* half rewritten: lost, rather than sent with a bad checksum */
	count(C_STRIPPED);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
