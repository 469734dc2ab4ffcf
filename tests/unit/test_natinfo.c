/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "rawpunch/probe/natinfo.h"

static void test_enum_names_roundtrip(void **state)
{
	(void)state;
	enum rp_mapping m;
	enum rp_alloc a;
	enum rp_filter f;
	assert_int_equal(rp_mapping_parse("address-and-port-dependent", &m), 0);
	assert_int_equal(m, RP_MAP_APD);
	assert_string_equal(rp_mapping_str(RP_MAP_EI), "endpoint-independent");
	assert_int_equal(rp_alloc_parse("sequential", &a), 0);
	assert_int_equal(a, RP_ALLOC_SEQUENTIAL);
	assert_int_equal(rp_filter_parse("icmp", &f), 0);
	assert_int_equal(f, RP_FILTER_ICMP);
	assert_int_equal(rp_filter_parse("ICMP", &f), -EINVAL);
	assert_int_equal(rp_alloc_parse(NULL, &a), -EINVAL);
	assert_string_equal(rp_filter_str((enum rp_filter)99), "unknown");
}

static void test_json_roundtrip(void **state)
{
	(void)state;
	struct rp_natinfo in = { 0 }, out;
	inet_pton(AF_INET, "10.0.1.2", &in.local_addr);
	inet_pton(AF_INET, "198.18.1.2", &in.mapped_addr);
	in.local_port = 40000;
	in.mapped_port = 20007;
	in.behind_nat = true;
	in.mapping = RP_MAP_APD;
	in.alloc = RP_ALLOC_SEQUENTIAL;
	in.has_delta = true;
	in.delta = 1;
	in.jitter = 0.5;
	in.predicted[0] = 20008;
	in.predicted[1] = 20009;
	in.n_predicted = 2;
	in.confidence = 0.9;
	in.filtering = RP_FILTER_DROP;
	in.nat_ttl = 2;
	struct json_object *o = rp_natinfo_to_json(&in);
	assert_non_null(o);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "mapped")), "198.18.1.2:20007");
	const char *txt = json_object_to_json_string(o);
	struct json_object *back = json_tokener_parse(txt);
	assert_int_equal(rp_natinfo_from_json(back, &out), 0);
	assert_int_equal(out.mapped_addr, in.mapped_addr);
	assert_int_equal(out.mapped_port, 20007);
	assert_int_equal(out.local_port, 40000);
	assert_int_equal(out.mapping, RP_MAP_APD);
	assert_int_equal(out.alloc, RP_ALLOC_SEQUENTIAL);
	assert_true(out.has_delta);
	assert_int_equal(out.delta, 1);
	assert_int_equal(out.n_predicted, 2);
	assert_int_equal(out.predicted[1], 20009);
	assert_int_equal(out.filtering, RP_FILTER_DROP);
	assert_int_equal(out.nat_ttl, 2);
	/* null nat_ttl (people's JSON: not measured) reads as 0, the wire's "unknown"; a string does not */
	json_object_object_add(back, "nat_ttl", NULL);
	assert_int_equal(rp_natinfo_from_json(back, &out), 0);
	assert_int_equal(out.nat_ttl, 0);
	json_object_object_add(back, "nat_ttl", json_object_new_string("unknown"));
	assert_int_equal(rp_natinfo_from_json(back, &out), -EINVAL);
	json_object_put(o);
	json_object_put(back);
}

static void test_json_rejects_bad_fields(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"[]",
		"{\"local\":\"1.2.3.4:1\",\"mapped\":\"1.2.3.4:99999\",\"mapping\":\"endpoint-independent\","
		"\"allocation\":\"random\",\"filtering\":\"rst\",\"delta\":null,\"jitter\":0,\"confidence\":0,"
		"\"nat_ttl\":2,\"predicted\":[]}",
		"{\"local\":\"1.2.3.4:1\",\"mapped\":\"1.2.3.4:9\",\"mapping\":\"bogus\","
		"\"allocation\":\"random\",\"filtering\":\"rst\",\"delta\":null,\"jitter\":0,\"confidence\":0,"
		"\"nat_ttl\":2,\"predicted\":[]}",
		"{\"local\":\"1.2.3.4:1\",\"mapped\":\"1.2.3.4:9\",\"mapping\":\"endpoint-independent\","
		"\"allocation\":\"random\",\"filtering\":\"rst\",\"delta\":null,\"jitter\":0,\"confidence\":1.5,"
		"\"nat_ttl\":2,\"predicted\":[]}",
		"{\"local\":\"1.2.3.4:1\",\"mapped\":\"1.2.3.4:9\",\"mapping\":\"endpoint-independent\","
		"\"allocation\":\"random\",\"filtering\":\"rst\",\"delta\":null,\"jitter\":0,\"confidence\":0,"
		"\"nat_ttl\":300,\"predicted\":[]}",
		"{\"local\":\"1.2.3.4:1\",\"mapped\":\"1.2.3.4:9\",\"mapping\":\"endpoint-independent\","
		"\"allocation\":\"random\",\"filtering\":\"rst\",\"delta\":null,\"jitter\":0,\"confidence\":0,"
		"\"nat_ttl\":2,\"predicted\":[0]}",
		"{\"local\":\"1.2.3.4:1\",\"mapped\":\"1.2.3.4:9\",\"mapping\":\"endpoint-independent\","
		"\"allocation\":\"random\",\"filtering\":\"rst\",\"jitter\":0,\"confidence\":0,"
		"\"nat_ttl\":2,\"predicted\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rp_natinfo ni;
		struct json_object *o = json_tokener_parse(bad[i]);
		assert_non_null(o);
		assert_int_equal(rp_natinfo_from_json(o, &ni), -EINVAL);
		json_object_put(o);
	}
}

#define OLD_NATINFO "{\"local\":\"10.0.1.2:40000\",\"mapped\":\"198.18.1.2:20007\",\"behind_nat\":true," \
	"\"mapping\":\"address-and-port-dependent\",\"allocation\":\"random\",\"delta\":null,\"jitter\":0," \
	"\"predicted\":[],\"confidence\":0,\"filtering\":\"rst\",\"nat_ttl\":2"

/* The fields added with issue 11: round trip; an older peer's natinfo without them parses (unknown, 0,
 * no range); present but wrong, they are refused. */
static void test_json_issue11_fields(void **state)
{
	(void)state;
	struct rp_natinfo in = { 0 }, out;
	enum rp_ttl_method m;
	inet_pton(AF_INET, "10.0.1.2", &in.local_addr);
	inet_pton(AF_INET, "198.18.1.2", &in.mapped_addr);
	in.local_port = 40000;
	in.mapped_port = 43300;
	in.behind_nat = true;
	in.mapping = RP_MAP_APD;
	in.alloc = RP_ALLOC_RANDOM;
	in.nat_ttl = 3;
	in.nat_ttl_method = RP_TTL_CONFIRMED;
	in.server_hops = 5;
	in.has_range = true;
	in.range_lo = 43264;
	in.range_hi = 43519;
	in.range_confidence = 0.99;
	struct json_object *o = rp_natinfo_to_json(&in);
	assert_non_null(o);
	assert_string_equal(json_object_get_string(json_object_object_get(o, "nat_ttl_method")), "confirmed");
	struct json_object *back = json_tokener_parse(json_object_to_json_string(o));
	assert_int_equal(rp_natinfo_from_json(back, &out), 0);
	assert_int_equal(out.nat_ttl, 3);
	assert_int_equal(out.nat_ttl_method, RP_TTL_CONFIRMED);
	assert_int_equal(out.server_hops, 5);
	assert_true(out.has_range);
	assert_int_equal(out.range_lo, 43264);
	assert_int_equal(out.range_hi, 43519);
	assert_true(fabs(out.range_confidence - 0.99) < 1e-9);
	json_object_put(o);
	json_object_put(back);
	/* no range: null, and back */
	in.has_range = false;
	in.nat_ttl_method = RP_TTL_FALLBACK;
	o = rp_natinfo_to_json(&in);
	assert_true(json_object_object_get_ex(o, "range", &back) && back == NULL);
	back = json_tokener_parse(json_object_to_json_string(o));
	assert_int_equal(rp_natinfo_from_json(back, &out), 0);
	assert_false(out.has_range);
	assert_int_equal(out.nat_ttl_method, RP_TTL_FALLBACK);
	json_object_put(o);
	json_object_put(back);
	/* an older natinfo */
	o = json_tokener_parse(OLD_NATINFO "}");
	assert_int_equal(rp_natinfo_from_json(o, &out), 0);
	assert_int_equal(out.nat_ttl, 2);
	assert_int_equal(out.nat_ttl_method, RP_TTL_UNKNOWN);
	assert_int_equal(out.server_hops, 0);
	assert_false(out.has_range);
	json_object_put(o);
	static const char *const bad[] = {
		OLD_NATINFO ",\"nat_ttl_method\":\"guessed\"}",
		OLD_NATINFO ",\"nat_ttl_method\":3}",
		OLD_NATINFO ",\"server_hops\":256}",
		OLD_NATINFO ",\"server_hops\":2.5}",
		OLD_NATINFO ",\"range\":[1,2]}",
		OLD_NATINFO ",\"range\":{\"lo\":500,\"hi\":400,\"confidence\":0.5}}",
		OLD_NATINFO ",\"range\":{\"lo\":0,\"hi\":400,\"confidence\":0.5}}",
		OLD_NATINFO ",\"range\":{\"lo\":100,\"hi\":70000,\"confidence\":0.5}}",
		OLD_NATINFO ",\"range\":{\"lo\":100,\"hi\":400,\"confidence\":2}}",
		OLD_NATINFO ",\"range\":{\"lo\":100,\"hi\":400}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = json_tokener_parse(bad[i]);
		assert_non_null(o);
		assert_int_equal(rp_natinfo_from_json(o, &out), -EINVAL);
		json_object_put(o);
	}
	assert_int_equal(rp_ttl_method_parse("hops", &m), 0);
	assert_int_equal(m, RP_TTL_HOPS);
	assert_string_equal(rp_ttl_method_str((enum rp_ttl_method)9), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enum_names_roundtrip),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_json_rejects_bad_fields),
		cmocka_unit_test(test_json_issue11_fields),
	};
	return cmocka_run_group_tests_name("natinfo", tests, NULL, NULL);
}
