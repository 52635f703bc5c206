/*
 * libFuzzer target: the core's parser of the executor's NDJSON stream
 * (exec_client_stream_feed in core/exec_client.c), fed the same bytes twice: whole, and
 * cut into chunks at positions taken from the input's first bytes, as curl may deliver
 * them. Invariant: the chunking changes nothing (same events in the same order, same final
 * result), and the result, when there is one, is an object of type "result".
 *
 * Input: byte 0 = number of cuts (mod 16); then two bytes per cut (little-endian offsets,
 * mod the stream length); the rest is the stream.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void collect(void *ctx, const json_t *ev)
{
	json_array_append((json_t *)ctx, (json_t *)ev);
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t ncut, cuts[17], hdr, len, prev = 0;
	struct exec_stream whole = {0}, parts = {0};
	const char *stream;
	int ok_whole, ok_parts = 1;

	if (size < 1)
		return 0;
	ncut = data[0] % 16;
	hdr = 1 + 2 * ncut;
	if (size < hdr)
		return 0;
	stream = (const char *)data + hdr;
	len = size - hdr;
	for (size_t i = 0; i < ncut; i++)
		cuts[i] = len ? (size_t)(data[1 + 2 * i] | data[2 + 2 * i] << 8) % (len + 1) : 0;
	cuts[ncut] = len;
	qsort(cuts, ncut, sizeof cuts[0], cmp_size);

	whole.on_event = parts.on_event = collect;
	whole.ctx = json_array();
	parts.ctx = json_array();
	ok_whole = exec_client_stream_feed(&whole, stream, len) == len;
	for (size_t i = 0; i <= ncut && ok_parts; i++) {
		size_t n = cuts[i] - prev;
		/* curl never calls with 0 bytes, but a zero-length feed must be harmless too */
		ok_parts = exec_client_stream_feed(&parts, stream + prev, n) == n;
		prev = cuts[i];
	}
	if (ok_whole != ok_parts)
		abort();
	if (!json_equal(whole.ctx, parts.ctx) && ok_whole) {
		fprintf(stderr, "events differ: %zu whole, %zu chunked\n",
			json_array_size(whole.ctx), json_array_size(parts.ctx));
		abort();
	}
	if ((whole.result == NULL) != (parts.result == NULL) ||
	    (whole.result && !json_equal(whole.result, parts.result)))
		abort();
	if (whole.result &&
	    (!json_is_object(whole.result) ||
	     strcmp(json_string_value(json_object_get(whole.result, "type")) ?: "", "result") != 0))
		abort();
	/* The incomplete tail is kept: both saw the same one. */
	if (whole.len != parts.len || (whole.len && memcmp(whole.buf, parts.buf, whole.len) != 0))
		abort();
	json_decref(whole.ctx);
	json_decref(parts.ctx);
	exec_client_stream_free(&whole);
	exec_client_stream_free(&parts);
	return 0;
}
