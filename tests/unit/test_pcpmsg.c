/* SPDX-License-Identifier: MIT */
/* PCP codec (rawpunch/portmap/pcpmsg.c), SSDP answers (ssdp.c) and the default-route parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "rawpunch/portmap/pcpmsg.h"
#include "rawpunch/portmap/portmap.h"
#include "rawpunch/portmap/ssdp.h"

static uint32_t ip(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static void map_request(struct rp_pcp_request *q, enum rp_pcp_opcode op)
{
	memset(q, 0, sizeof(*q));
	q->opcode = op;
	q->lifetime = 120;
	rp_pcp_v4mapped(ip("10.0.1.2"), q->client_ip);
	for (unsigned i = 0; i < RP_PCP_NONCE_LEN; i++)
		q->nonce[i] = (uint8_t)(0xa0 + i);
	q->protocol = IPPROTO_TCP;
	q->internal_port = 40000;
	q->suggested_port = 40001;
	rp_pcp_v4mapped(0, q->suggested_ip);
	if (op == RP_PCP_OP_PEER) {
		q->peer_port = 7000;
		rp_pcp_v4mapped(ip("198.18.3.2"), q->peer_ip);
	}
}

/* The server's answer to q: success, external 198.18.1.2:eport. */
static int answer(const struct rp_pcp_request *q, uint8_t result, uint16_t eport, uint8_t *buf, size_t cap)
{
	struct rp_pcp_response r = { .version = 2, .opcode = (uint8_t)q->opcode, .result = result, .lifetime = 120,
				     .epoch = 77, .has_data = q->opcode != RP_PCP_OP_ANNOUNCE, .protocol = q->protocol,
				     .internal_port = q->internal_port, .external_port = eport, .peer_port = q->peer_port };
	memcpy(r.nonce, q->nonce, sizeof(r.nonce));
	rp_pcp_v4mapped(ip("198.18.1.2"), r.external_ip);
	memcpy(r.peer_ip, q->peer_ip, 16);
	return rp_pcp_encode_response(&r, buf, cap);
}

static void test_encode_map_bytes(void **state)
{
	(void)state;
	struct rp_pcp_request q;
	uint8_t b[128];
	map_request(&q, RP_PCP_OP_MAP);
	int n = rp_pcp_encode(&q, b, sizeof(b));
	assert_int_equal(n, 60);
	/* header: version 2, R=0 opcode 1, reserved, lifetime 120, client ::ffff:10.0.1.2 */
	static const uint8_t hdr[24] = { 2, 1, 0, 0, 0, 0, 0, 120, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 1, 2 };
	assert_memory_equal(b, hdr, sizeof(hdr));
	assert_int_equal(b[24], 0xa0);                 /* nonce */
	assert_int_equal(b[24 + 12], IPPROTO_TCP);
	assert_int_equal(b[24 + 16] << 8 | b[24 + 17], 40000);
	assert_int_equal(b[24 + 18] << 8 | b[24 + 19], 40001);
	assert_int_equal(b[24 + 30], 0xff);            /* suggested ::ffff:0.0.0.0 */
	assert_int_equal(b[24 + 35], 0);
	/* too small a buffer, bad opcode, port with protocol 0, PEER without protocol */
	assert_int_equal(rp_pcp_encode(&q, b, 59), -ENOSPC);
	q.opcode = (enum rp_pcp_opcode)7;
	assert_int_equal(rp_pcp_encode(&q, b, sizeof(b)), -EINVAL);
	map_request(&q, RP_PCP_OP_MAP);
	q.protocol = 0;
	assert_int_equal(rp_pcp_encode(&q, b, sizeof(b)), -EINVAL);
	map_request(&q, RP_PCP_OP_PEER);
	q.protocol = 0;
	q.internal_port = 0;
	assert_int_equal(rp_pcp_encode(&q, b, sizeof(b)), -EINVAL);
}

static void test_encode_peer_and_announce(void **state)
{
	(void)state;
	struct rp_pcp_request q;
	uint8_t b[128];
	map_request(&q, RP_PCP_OP_PEER);
	assert_int_equal(rp_pcp_encode(&q, b, sizeof(b)), 80);
	assert_int_equal(b[1], RP_PCP_OP_PEER);
	assert_int_equal(b[60] << 8 | b[61], 7000);    /* remote peer port */
	assert_int_equal(b[76], 198);                  /* remote peer ::ffff:198.18.3.2 */
	map_request(&q, RP_PCP_OP_ANNOUNCE);
	assert_int_equal(rp_pcp_encode(&q, b, sizeof(b)), 24);
	assert_int_equal(b[1], 0);
}

static void test_decode_success_and_match(void **state)
{
	(void)state;
	struct rp_pcp_request q;
	struct rp_pcp_response r;
	uint8_t b[128];
	uint32_t ext;
	for (int op = RP_PCP_OP_MAP; op <= RP_PCP_OP_PEER; op++) {
		map_request(&q, (enum rp_pcp_opcode)op);
		int n = answer(&q, RP_PCP_SUCCESS, 20005, b, sizeof(b));
		assert_int_equal(n, op == RP_PCP_OP_MAP ? 60 : 80);
		assert_int_equal(rp_pcp_decode(b, (size_t)n, &r), 0);
		assert_int_equal(r.version, 2);
		assert_int_equal(r.opcode, op);
		assert_int_equal(r.result, RP_PCP_SUCCESS);
		assert_int_equal(r.lifetime, 120);
		assert_int_equal(r.epoch, 77);
		assert_int_equal(r.external_port, 20005);
		assert_true(rp_pcp_v4(r.external_ip, &ext));
		assert_int_equal(ext, ip("198.18.1.2"));
		assert_int_equal(rp_pcp_match(&q, &r), 0);
		assert_int_equal(r.n_options, 0);
	}
}

static void test_wrong_nonce_or_flow_is_not_ours(void **state)
{
	(void)state;
	struct rp_pcp_request q, other;
	struct rp_pcp_response r;
	uint8_t b[128];
	map_request(&q, RP_PCP_OP_PEER);
	other = q;
	other.nonce[5] ^= 1;
	int n = answer(&other, RP_PCP_SUCCESS, 1234, b, sizeof(b));
	assert_int_equal(rp_pcp_decode(b, (size_t)n, &r), 0);
	assert_int_equal(rp_pcp_match(&q, &r), -ESTALE);      /* another nonce */
	other = q;
	other.internal_port++;
	n = answer(&other, RP_PCP_SUCCESS, 1234, b, sizeof(b));
	assert_int_equal(rp_pcp_decode(b, (size_t)n, &r), 0);
	assert_int_equal(rp_pcp_match(&q, &r), -ESTALE);      /* another port */
	other = q;
	other.peer_port++;
	n = answer(&other, RP_PCP_SUCCESS, 1234, b, sizeof(b));
	assert_int_equal(rp_pcp_decode(b, (size_t)n, &r), 0);
	assert_int_equal(rp_pcp_match(&q, &r), -ESTALE);      /* another peer */
	other = q;
	other.opcode = RP_PCP_OP_MAP;
	n = answer(&other, RP_PCP_SUCCESS, 1234, b, sizeof(b));
	assert_int_equal(rp_pcp_decode(b, (size_t)n, &r), 0);
	assert_int_equal(rp_pcp_match(&q, &r), -ESTALE);      /* another opcode */
}

static void test_error_results(void **state)
{
	(void)state;
	struct rp_pcp_request q;
	struct rp_pcp_response r;
	uint8_t b[128];
	map_request(&q, RP_PCP_OP_MAP);
	int n = answer(&q, RP_PCP_NOT_AUTHORIZED, 0, b, sizeof(b));
	assert_int_equal(rp_pcp_decode(b, (size_t)n, &r), 0);
	assert_int_equal(rp_pcp_match(&q, &r), 0);
	assert_int_equal(r.result, RP_PCP_NOT_AUTHORIZED);
	assert_string_equal(rp_pcp_result_name(r.result), "NOT_AUTHORIZED");
	assert_int_equal(rp_pcp_result_errno(r.result), -EACCES);
	assert_int_equal(rp_pcp_result_errno(RP_PCP_SUCCESS), 0);
	assert_int_equal(rp_pcp_result_errno(RP_PCP_NO_RESOURCES), -EAGAIN);
	assert_int_equal(rp_pcp_result_errno(RP_PCP_CANNOT_PROVIDE_EXTERNAL), -EADDRNOTAVAIL);
	assert_string_equal(rp_pcp_result_name(200), "UNKNOWN");
	assert_int_equal(rp_pcp_result_errno(200), -EPROTO);
	assert_non_null(strstr(rp_pcp_result_text(RP_PCP_ADDRESS_MISMATCH), "NAT"));
}

static void test_truncated_and_garbage(void **state)
{
	(void)state;
	struct rp_pcp_request q;
	struct rp_pcp_response r;
	uint8_t b[1200];
	map_request(&q, RP_PCP_OP_PEER);
	int n = answer(&q, RP_PCP_SUCCESS, 20005, b, sizeof(b));
	/* every truncation fails, with a reason, and reads nothing past the end (ASan) */
	for (int len = 0; len < n; len++) {
		assert_int_equal(rp_pcp_decode(b, (size_t)len, &r), -EBADMSG);
		assert_non_null(r.why);
	}
	/* a request is not a response */
	b[1] &= 0x7f;
	assert_int_equal(rp_pcp_decode(b, (size_t)n, &r), -EBADMSG);
	b[1] |= 0x80;
	/* unknown opcode */
	b[1] = 0x80 | 9;
	assert_int_equal(rp_pcp_decode(b, 24, &r), -EBADMSG);
	b[1] = 0x80 | RP_PCP_OP_PEER;
	/* an option whose length runs past the end */
	memset(b + n, 0, 8);
	b[n] = 1;                 /* THIRD_PARTY */
	b[n + 3] = 16;            /* claims 16 bytes, only 4 follow */
	assert_int_equal(rp_pcp_decode(b, (size_t)n + 8, &r), -EBADMSG);
	b[n + 3] = 4;             /* now it fits */
	assert_int_equal(rp_pcp_decode(b, (size_t)n + 8, &r), 0);
	assert_int_equal(r.n_options, 1);
	/* lengths: not a multiple of 4, over 1100 */
	assert_int_equal(rp_pcp_decode(b, (size_t)n + 2, &r), -EBADMSG);
	memset(b, 0, sizeof(b));
	b[0] = 2;
	b[1] = 0x80;
	assert_int_equal(rp_pcp_decode(b, 24, &r), 0);            /* a bare ANNOUNCE answer */
	assert_int_equal(rp_pcp_decode(b, 1104, &r), -EBADMSG);  /* 1104 > 1100 */
}

static void test_natpmp_server_answer(void **state)
{
	(void)state;
	struct rp_pcp_response r;
	/* a NAT-PMP-only server answering a PCP request: version 0, opcode|128, result 1 (unsupported version) */
	static const uint8_t b[8] = { 0, 0x81, 0, 1, 0, 0, 0, 5 };
	assert_int_equal(rp_pcp_decode(b, sizeof(b), &r), -EPROTONOSUPPORT);
	assert_int_equal(r.version, 0);
	assert_int_equal(r.result, 1);
	static const uint8_t v1[24] = { 1, 0x81 };
	assert_int_equal(rp_pcp_decode(v1, sizeof(v1), &r), -EPROTONOSUPPORT);
}

static void test_v4mapped(void **state)
{
	(void)state;
	uint8_t a[16];
	uint32_t v;
	rp_pcp_v4mapped(ip("1.2.3.4"), a);
	assert_true(rp_pcp_v4(a, &v));
	assert_int_equal(v, ip("1.2.3.4"));
	a[9] = 1;
	assert_false(rp_pcp_v4(a, &v));
}

static void test_ssdp(void **state)
{
	(void)state;
	char loc[64], st[96], big[80], m[512];
	const char *why;
	static const char ok[] = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
				 "st: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\n"
				 "Location:  http://10.0.1.1:2869/rootDesc.xml \r\nLOCATION: http://evil/\r\n\r\n";
	assert_int_equal(rp_ssdp_parse(ok, strlen(ok), loc, sizeof(loc), st, sizeof(st), &why), 0);
	assert_string_equal(loc, "http://10.0.1.1:2869/rootDesc.xml");
	assert_string_equal(st, "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
	for (size_t len = 0; len < strlen(ok) - 2; len++)   /* cut anywhere before the final CRLF */
		assert_int_not_equal(rp_ssdp_parse(ok, len, loc, sizeof(loc), st, sizeof(st), &why), 0);
	assert_int_equal(rp_ssdp_parse(ok, strlen(ok), loc, 20, st, sizeof(st), &why), -ENOSPC);
	static const char *const bad[] = {
		"HTTP/1.1 404 Not Found\r\nLOCATION: http://a/\r\n\r\n",
		"HTTP/1.1 200 OK\r\nST: x\r\n\r\n",                            /* no LOCATION */
		"HTTP/1.1 200 OK\r\nLOCATION: ftp://a/\r\n\r\n",
		"HTTP/1.1 200 OK\r\nLOCATION: http://a b/\r\n\r\n",
		"HTTP/1.1 200 OK\r\nLOCATION http://a/\r\n\r\n",               /* no colon */
		"HTTP/1.1 200 OK\r\nLOCATION: http://a/\x01\r\n\r\n",
		"HTTP/1.1 200 OK\r\nLOCATION: http://a/\r\n",                  /* no empty line */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_int_equal(rp_ssdp_parse(bad[i], strlen(bad[i]), loc, sizeof(loc), st, sizeof(st), &why), -EBADMSG);
		assert_non_null(why);
	}
	int n = rp_ssdp_msearch(m, sizeof(m), RP_SSDP_ST_IGD, 1);
	assert_true(n > 0);
	assert_non_null(strstr(m, "MX: 1\r\n"));
	assert_non_null(strstr(m, "ST: " RP_SSDP_ST_IGD "\r\n\r\n"));
	assert_int_equal(rp_ssdp_msearch(m, sizeof(m), RP_SSDP_ST_IGD, 0), -EINVAL);   /* MX 0: never */
	assert_int_equal(rp_ssdp_msearch(m, sizeof(m), "a\r\nb", 1), -EINVAL);
	assert_int_equal(rp_ssdp_msearch(big, sizeof(big), RP_SSDP_ST_IGD, 1), -ENOSPC);
}

static void test_route_and_protocols(void **state)
{
	(void)state;
	uint32_t gw = 0;
	unsigned mask;
	static const char route[] =
		"Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
		"eth1\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
		"eth0\t00000000\t0101000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
		"eth0\t0001000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
	assert_int_equal(rp_pm_parse_route(route, &gw), 0);
	assert_int_equal(gw, ip("10.0.1.1"));          /* the lower metric wins */
	assert_int_equal(rp_pm_parse_route("Iface\tDestination\n", &gw), -ENOENT);
	assert_int_equal(rp_pm_parse_protocols("upnp,pcp", &mask), 0);
	assert_int_equal(mask, RP_PM_F(RP_PM_PCP) | RP_PM_F(RP_PM_UPNP));
	assert_int_equal(rp_pm_parse_protocols("all", &mask), 0);
	assert_int_equal(mask, RP_PM_ALL);
	assert_int_equal(rp_pm_parse_protocols("pcp,stun", &mask), -EINVAL);
	assert_int_equal(rp_pm_parse_protocols(",", &mask), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_map_bytes),
		cmocka_unit_test(test_encode_peer_and_announce),
		cmocka_unit_test(test_decode_success_and_match),
		cmocka_unit_test(test_wrong_nonce_or_flow_is_not_ours),
		cmocka_unit_test(test_error_results),
		cmocka_unit_test(test_truncated_and_garbage),
		cmocka_unit_test(test_natpmp_server_answer),
		cmocka_unit_test(test_v4mapped),
		cmocka_unit_test(test_ssdp),
		cmocka_unit_test(test_route_and_protocols),
	};
	return cmocka_run_group_tests_name("pcpmsg", tests, NULL, NULL);
}
