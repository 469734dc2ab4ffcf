/* SPDX-License-Identifier: MIT */
/* Packets we made, into a pcap file (see pcapout.h). */
#include "capture/pcapout.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>

#define PCAPOUT_SNAPLEN 65535

struct rp_pcapout {
	pcap_t *dead;
	pcap_dumper_t *d;
};

int rp_pcapout_open(FILE *f, struct rp_pcapout **out)
{
	struct rp_pcapout *w = calloc(1, sizeof(*w));
	if (!w) {
		fclose(f);
		return -ENOMEM;
	}
	w->dead = pcap_open_dead_with_tstamp_precision(DLT_RAW, PCAPOUT_SNAPLEN, PCAP_TSTAMP_PRECISION_NANO);
	w->d = w->dead ? pcap_dump_fopen(w->dead, f) : NULL;
	if (!w->d) {
		int err = w->dead ? -EIO : -ENOMEM;
		if (w->dead)
			pcap_close(w->dead);
		free(w);
		fclose(f);
		return err;
	}
	*out = w;
	return 0;
}

int rp_pcapout_write(struct rp_pcapout *w, const uint8_t *pkt, size_t len, uint64_t ts_ns)
{
	if (!len || len > PCAPOUT_SNAPLEN)
		return -EINVAL;
	struct pcap_pkthdr h = { .caplen = (bpf_u_int32)len, .len = (bpf_u_int32)len };
	h.ts.tv_sec = (time_t)(ts_ns / 1000000000ull);
	h.ts.tv_usec = (suseconds_t)(ts_ns % 1000000000ull);   /* nanoseconds: the file says so */
	pcap_dump((u_char *)w->d, &h, pkt);
	return 0;
}

int rp_pcapout_close(struct rp_pcapout *w)
{
	if (!w)
		return 0;
	int bad = pcap_dump_flush(w->d);
	FILE *f = pcap_dump_file(w->d);
	bad |= f && ferror(f);
	pcap_dump_close(w->d);
	pcap_close(w->dead);
	free(w);
	return bad ? -EIO : 0;
}
