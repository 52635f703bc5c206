/*
 * A bounded byte pipe between two threads (or a thread and MHD's event loop), so that
 * bodies flow from one HTTP transfer into another (executor <-> object storage <-> client)
 * without ever being held whole in memory.
 */
#ifndef SBXD_RELAY_H
#define SBXD_RELAY_H

#include <stddef.h>

#include <microhttpd.h>

struct relay;

/* cap: bytes buffered at most. The relay starts with two references (producer, consumer). */
struct relay *relay_new(size_t cap);
void relay_unref(struct relay *r);

/* Producer side, blocking: 0, or -1 when the consumer aborted. */
int relay_write(struct relay *r, const void *data, size_t len);
/* The producer is done; error != 0 makes the consumer see a failure after the data. */
void relay_close(struct relay *r, int error);

/* Consumer side, blocking: bytes read, 0 at the end, -1 on a producer error or abort. */
long relay_read(struct relay *r, void *buf, size_t cap);
/* The consumer gives up: a blocked or later relay_write returns -1. */
void relay_abort(struct relay *r);

/* Consumer side for an MHD content reader: like relay_read, but instead of blocking it
 * suspends `conn` and returns 0 after registering it to be resumed by the next write or
 * close. Returns MHD_CONTENT_READER_END_OF_STREAM / _END_WITH_ERROR at the end. */
ssize_t relay_mhd_read(struct relay *r, struct MHD_Connection *conn, char *buf, size_t max);

/* Producer side for MHD (never blocks): the free space now, and parking: when fewer than
 * `want` bytes are free, suspend `conn` until a reader frees half the buffer (or aborts)
 * and return 1; else return 0. */
size_t relay_space(struct relay *r);
int relay_mhd_park_writer(struct relay *r, struct MHD_Connection *conn, size_t want);
int relay_aborted(struct relay *r);

/* The sbx_write_fn / sbx_read_fn adapters (ctx = the relay). */
int relay_write_fn(void *ctx, const void *data, size_t len);
long relay_read_fn(void *ctx, void *buf, size_t cap);

#endif
