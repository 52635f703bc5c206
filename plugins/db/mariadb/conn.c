/*
 * db/mariadb: per-thread connections and the prepared-statement helpers. Owns connecting
 * (timeouts, TLS, the password file), reconnecting with a growing backoff while the
 * server is down, and the mapping of server and client errors to sbx_errcodes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "mariadb_int.h"

/* After a failed connect the next attempt waits BACKOFF_MIN_MS, doubling up to
 * BACKOFF_MAX_MS: a thread tries at most once per wait however often it is called. */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 5000
/* A connection idle for longer is pinged before use, so that one closed by the server
 * (restart, wait_timeout) is replaced before a write is sent on it. */
#define PING_IDLE_MS 1000
/* Documents above this are sent whole; the server must accept them (README). */
#define CLIENT_MAX_PACKET (1024ul * 1024ul * 1024ul)

static void conn_drop(struct conn *c)
{
	for (int i = 0; i < ST__COUNT; i++) {
		if (c->st[i])
			mysql_stmt_close(c->st[i]);
		c->st[i] = NULL;
	}
	if (c->m)
		mysql_close(c->m);
	c->m = NULL;
	c->in_tx = 0;
}

void md_conn_free(void *p)
{
	struct conn *c = p;
	struct mdb *d;

	if (!c)
		return;
	d = c->d;
	pthread_mutex_lock(&d->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&d->lock);
	conn_drop(c);
	free(c);
}

void md_close_all(struct mdb *d)
{
	while (d->conns)
		md_conn_free(d->conns);
}

/* Reads the password file into buf (trailing newlines stripped). The content is never
 * logged or put in a message. */
static int read_password(struct mdb *d, char *buf, size_t cap, sbx_err *err)
{
	ssize_t n;
	size_t len = 0;
	int fd, ret = 0;

	fd = open(d->password_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
				  "mariadb %s: cannot read password_file '%s': %s", d->server,
				  d->password_file, strerror(errno));
		goto out;
	}
	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = sbx_err_set(err, SBX_E_UNAVAILABLE,
					  "mariadb %s: cannot read password_file '%s': %s",
					  d->server, d->password_file, strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int64_t mono(struct mdb *d)
{
	return d->core->monotonic_ms();
}

/* Session settings: strict types (an over-long id is an error, not truncated) and lock
 * waits that end before the client's read timeout does. */
static int conn_setup(struct conn *c, sbx_err *err)
{
	struct mdb *d = c->d;
	struct md_param p = {.type = MP_I64,
			     .i = d->read_timeout_s > 1 ? d->read_timeout_s - 1 : 1};
	struct md_col cols[1] = {{.type = MC_I64}};
	struct md_q q = {0};
	int ret;

	ret = md_run(c, -1,
		     "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION',"
		     " SESSION innodb_lock_wait_timeout = ?",
		     &p, 1, &q, err, "setting up the session");
	md_end(&q);
	if (ret < 0)
		goto out;
	ret = md_run(c, -1, "SELECT @@max_allowed_packet", NULL, 0, &q, err,
		     "reading max_allowed_packet");
	if (ret < 0)
		goto out;
	ret = md_row(&q, cols, 1, err, "reading max_allowed_packet");
	if (ret > 0) {
		c->max_packet = (unsigned long)cols[0].i;
		ret = 0;
	}
out:
	md_end(&q);
	return ret;
}

static int conn_connect(struct conn *c, sbx_err *err)
{
	struct mdb *d = c->d;
	char pw[1024];
	const char *password = d->password;
	unsigned long maxp = CLIENT_MAX_PACKET;
	my_bool yes = 1, verify = d->tls_verify ? 1 : 0;
	unsigned zero = 0;
	int ret = 0;

	pw[0] = '\0';
	if (d->password_file) {
		ret = read_password(d, pw, sizeof pw, err);
		if (ret < 0)
			goto out;
		password = pw;
	}
	c->m = mysql_init(NULL);
	if (!c->m) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "mariadb: mysql_init: out of memory");
		goto out;
	}
	mysql_optionsv(c->m, MYSQL_OPT_CONNECT_TIMEOUT, &d->connect_timeout_s);
	mysql_optionsv(c->m, MYSQL_OPT_READ_TIMEOUT, &d->read_timeout_s);
	mysql_optionsv(c->m, MYSQL_OPT_WRITE_TIMEOUT, &d->write_timeout_s);
	mysql_optionsv(c->m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_optionsv(c->m, MYSQL_OPT_MAX_ALLOWED_PACKET, &maxp);
	mysql_optionsv(c->m, MYSQL_OPT_LOCAL_INFILE, &zero);
	if (d->tls) {
		if (d->tls_ca)
			mysql_optionsv(c->m, MYSQL_OPT_SSL_CA, d->tls_ca);
		if (d->tls_cert)
			mysql_optionsv(c->m, MYSQL_OPT_SSL_CERT, d->tls_cert);
		if (d->tls_key)
			mysql_optionsv(c->m, MYSQL_OPT_SSL_KEY, d->tls_key);
		mysql_optionsv(c->m, MYSQL_OPT_SSL_ENFORCE, &yes);
	}
	mysql_optionsv(c->m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
	if (!mysql_real_connect(c->m, d->socket ? "localhost" : d->host, d->user, password,
				d->database, d->port, d->socket, 0)) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE, "mariadb %s: cannot connect: %s (%u)",
				  d->server, mysql_error(c->m), mysql_errno(c->m));
		goto out;
	}
	ret = conn_setup(c, err);
out:
	explicit_bzero(pw, sizeof pw);
	if (ret < 0 && c->m)
		conn_drop(c);
	return ret;
}

int md_conn(struct mdb *d, struct conn **out, sbx_err *err)
{
	struct conn *c = pthread_getspecific(d->key);
	int64_t now;
	int ret = 0;

	if (!c) {
		mysql_thread_init();
		c = calloc(1, sizeof *c);
		if (!c) {
			*out = NULL;
			return sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
		}
		c->d = d;
		if (pthread_setspecific(d->key, c) != 0) {
			free(c);
			*out = NULL;
			return sbx_err_set(err, SBX_E_INTERNAL, "pthread_setspecific failed");
		}
		pthread_mutex_lock(&d->lock);
		c->next = d->conns;
		if (d->conns)
			d->conns->prev = c;
		d->conns = c;
		pthread_mutex_unlock(&d->lock);
	}
	*out = c;
	c->last_errno = 0;
	c->lost = 0;
	now = mono(d);
	if (c->m && now - c->used_at > PING_IDLE_MS) {
		if (mysql_ping(c->m) != 0) {
			d->core->log(d->name, SBX_LOG_INFO,
				     "event=db_connection_lost server=%s error=\"%s\"", d->server,
				     mysql_error(c->m));
			conn_drop(c);
		} else {
			c->used_at = now;
		}
	}
	if (c->m)
		goto out;
	if (now < c->retry_at) {
		ret = sbx_err_set(err, SBX_E_UNAVAILABLE, "%s; next attempt in %lld ms", c->down,
				  (long long)(c->retry_at - now));
		goto out;
	}
	ret = conn_connect(c, err);
	now = mono(d);
	if (ret < 0) {
		int wait = c->backoff_ms ? c->backoff_ms : BACKOFF_MIN_MS;

		c->retry_at = now + wait;
		c->backoff_ms = wait * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait * 2;
		snprintf(c->down, sizeof c->down, "%.*s", (int)sizeof c->down - 1,
			 err ? err->message : "cannot connect");
		d->core->log(d->name, SBX_LOG_WARN,
			     "event=db_connect_failed server=%s retry_in_ms=%d error=\"%s\"",
			     d->server, wait, c->down);
		goto out;
	}
	if (c->backoff_ms)
		d->core->log(d->name, SBX_LOG_INFO, "event=db_reconnected server=%s", d->server);
	c->backoff_ms = 0;
	c->retry_at = 0;
	c->used_at = now;
out:
	return ret;
}

int md_again(struct conn *c, int ret, int readonly, int attempt)
{
	if (!c || ret >= 0)
		return 0;
	if (c->last_errno == ER_LOCK_DEADLOCK && attempt < 4) {
		struct timespec ts = {0, (long)(1 + attempt * 4) * 1000000L};

		nanosleep(&ts, NULL);
		return 1;
	}
	return readonly && c->lost && attempt == 0;
}

/* Errors after which the connection cannot be used again. */
static int is_fatal(unsigned e)
{
	switch (e) {
	case CR_PARAMS_NOT_BOUND:
	case CR_INVALID_PARAMETER_NO:
	case CR_UNSUPPORTED_PARAM_TYPE:
	case CR_NO_DATA:
		return 0;
	case ER_CONNECTION_KILLED:
	case ER_SERVER_SHUTDOWN:
	case ER_NET_PACKET_TOO_LARGE:
	case ER_NET_READ_ERROR:
	case ER_NET_READ_INTERRUPTED:
	case ER_NET_ERROR_ON_WRITE:
	case ER_NET_WRITE_INTERRUPTED:
	case ER_NEW_ABORTING_CONNECTION:
	case ER_ABORTING_CONNECTION:
	case 4031: /* ER_CLIENT_INTERACTION_TIMEOUT (10.11): idle disconnect */
		return 1;
	default:
		return (e >= 2000 && e < 3000) || (e >= 5000 && e < 6000);
	}
}

int md_fail(struct conn *c, MYSQL_STMT *st, sbx_err *err, const char *what)
{
	struct mdb *d = c->d;
	unsigned e = st ? mysql_stmt_errno(st) : c->m ? mysql_errno(c->m) : CR_SERVER_GONE_ERROR;
	const char *msg = st ? mysql_stmt_error(st) : c->m ? mysql_error(c->m) : "not connected";
	int code;

	switch (e) {
	case ER_DUP_ENTRY:
		code = SBX_E_CONFLICT;
		break;
	case ER_DATA_TOO_LONG:
	case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:
	case ER_WARN_DATA_OUT_OF_RANGE:
	case ER_BAD_NULL_ERROR:
		code = SBX_E_INVALID;
		break;
	case ER_NET_PACKET_TOO_LARGE:
		code = SBX_E_TOOLARGE;
		break;
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT:
	case ER_CON_COUNT_ERROR:
	case ER_TOO_MANY_USER_CONNECTIONS:
	case ER_OPTION_PREVENTS_STATEMENT: /* read_only server */
	case ER_UNKNOWN_COM_ERROR:         /* Galera node not ready */
	case ER_LOCK_OR_ACTIVE_TRANSACTION:
	case ER_QUERY_INTERRUPTED:
	case ER_STATEMENT_TIMEOUT:
		code = SBX_E_UNAVAILABLE;
		break;
	default:
		code = is_fatal(e) ? SBX_E_UNAVAILABLE : SBX_E_INTERNAL;
	}
	c->last_errno = e;
	sbx_err_set(err, code, "mariadb %s: %s: %s (%u)", d->server, what, msg, e);
	if (is_fatal(e)) {
		if (c->m)
			d->core->log(d->name, SBX_LOG_WARN,
				     "event=db_connection_lost server=%s errno=%u error=\"%s\"",
				     d->server, e, msg);
		c->lost = c->m != NULL;
		conn_drop(c);
		/* The first reconnect is immediate; failures then back off. */
		c->retry_at = 0;
	}
	return -code;
}

static void bind_params(MYSQL_BIND *b, const struct md_param *p, unsigned np)
{
	memset(b, 0, sizeof *b * np);
	for (unsigned i = 0; i < np; i++) {
		switch (p[i].type) {
		case MP_NULL:
			b[i].buffer_type = MYSQL_TYPE_NULL;
			break;
		case MP_STR:
		case MP_BLOB:
			b[i].buffer_type =
			    p[i].type == MP_STR ? MYSQL_TYPE_STRING : MYSQL_TYPE_LONG_BLOB;
			b[i].buffer = (void *)p[i].s;
			b[i].buffer_length = p[i].len;
			break;
		case MP_I64:
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = (void *)&p[i].i;
			break;
		}
	}
}

int md_run(struct conn *c, int id, const char *sql, const struct md_param *p, unsigned np,
	   struct md_q *q, sbx_err *err, const char *what)
{
	MYSQL_BIND stackb[16], *b = stackb;
	MYSQL_STMT *st = NULL;
	unsigned long long need = 0;
	int ret = 0;

	q->c = c;
	q->st = NULL;
	q->adhoc = id < 0;
	if (!c->m) {
		ret = md_fail(c, NULL, err, what);
		goto out;
	}
	if (id >= 0 && c->st[id]) {
		st = c->st[id];
	} else {
		const char *text = id >= 0 ? md_stmt_sql[id] : sql;

		st = mysql_stmt_init(c->m);
		if (!st) {
			ret = md_fail(c, NULL, err, what);
			goto out;
		}
		if (mysql_stmt_prepare(st, text, (unsigned long)strlen(text)) != 0) {
			ret = md_fail(c, st, err, what);
			mysql_stmt_close(st);
			st = NULL;
			goto out;
		}
		if (id >= 0)
			c->st[id] = st;
	}
	q->st = st;
	if (mysql_stmt_param_count(st) != np) {
		ret = sbx_err_set(err, SBX_E_INTERNAL, "mariadb: %s: %lu parameters, %u bound",
				  what, mysql_stmt_param_count(st), np);
		goto out;
	}
	for (unsigned i = 0; i < np; i++)
		need += p[i].type == MP_BLOB || p[i].type == MP_STR ? p[i].len + 9 : 9;
	if (c->max_packet && need + 1024 > c->max_packet) {
		ret =
		    sbx_err_set(err, SBX_E_TOOLARGE,
				"mariadb %s: %s: %llu bytes exceed the server's max_allowed_packet "
				"(%lu); raise max_allowed_packet on the server",
				c->d->server, what, need, c->max_packet);
		goto out;
	}
	if (np > sizeof stackb / sizeof stackb[0]) {
		b = calloc(np, sizeof *b);
		if (!b) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory");
			goto out;
		}
	}
	if (np) {
		bind_params(b, p, np);
		if (mysql_stmt_bind_param(st, b) != 0) {
			ret = md_fail(c, st, err, what);
			goto out;
		}
	}
	if (mysql_stmt_execute(st) != 0) {
		ret = md_fail(c, st, err, what);
		goto out;
	}
	c->used_at = mono(c->d);
out:
	if (b != stackb)
		free(b);
	/* md_fail may have dropped the connection and with it the cached statements; an
	 * ad-hoc statement outlives its connection and is closed by md_end. */
	if (ret < 0)
		q->st = q->adhoc ? st : c->m ? c->st[id] : NULL;
	return ret;
}

int md_row(struct md_q *q, struct md_col *cols, unsigned n, sbx_err *err, const char *what)
{
	MYSQL_BIND b[8];
	int rc, ret = 0;

	if (n > sizeof b / sizeof b[0])
		return sbx_err_set(err, SBX_E_INTERNAL, "mariadb: too many result columns");
	memset(b, 0, sizeof b);
	for (unsigned i = 0; i < n; i++) {
		cols[i].buf = NULL;
		cols[i].len = 0;
		cols[i].null = 0;
		cols[i].i = 0;
		b[i].is_null = &cols[i].null;
		b[i].length = &cols[i].len;
		if (cols[i].type == MC_I64) {
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = &cols[i].i;
		} else {
			b[i].buffer_type = MYSQL_TYPE_LONG_BLOB;
		}
	}
	if (mysql_stmt_bind_result(q->st, b) != 0) {
		ret = md_fail(q->c, q->st, err, what);
		goto out;
	}
	rc = mysql_stmt_fetch(q->st);
	if (rc == MYSQL_NO_DATA)
		goto out;
	if (rc != 0 && rc != MYSQL_DATA_TRUNCATED) {
		ret = md_fail(q->c, q->st, err, what);
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		MYSQL_BIND one;

		if (cols[i].type != MC_BLOB || cols[i].null)
			continue;
		cols[i].buf = malloc(cols[i].len + 1);
		if (!cols[i].buf) {
			ret = sbx_err_set(err, SBX_E_INTERNAL, "out of memory (%lu bytes)",
					  cols[i].len);
			goto out;
		}
		memset(&one, 0, sizeof one);
		one.buffer_type = MYSQL_TYPE_LONG_BLOB;
		one.buffer = cols[i].buf;
		one.buffer_length = cols[i].len;
		if (cols[i].len && mysql_stmt_fetch_column(q->st, &one, i, 0) != 0) {
			ret = md_fail(q->c, q->st, err, what);
			goto out;
		}
		cols[i].buf[cols[i].len] = '\0';
	}
	ret = 1;
out:
	if (ret <= 0) {
		for (unsigned i = 0; i < n; i++) {
			free(cols[i].buf);
			cols[i].buf = NULL;
		}
	}
	/* A failure may have dropped the connection and closed the cached statement. */
	if (ret < 0 && !q->adhoc && !q->c->m)
		q->st = NULL;
	return ret;
}

unsigned long long md_affected(const struct md_q *q)
{
	return q->st ? (unsigned long long)mysql_stmt_affected_rows(q->st) : 0;
}

void md_end(struct md_q *q)
{
	unsigned n;

	if (!q->st)
		return;
	n = mysql_stmt_field_count(q->st);
	if (q->c->m && n > 0 && n <= 8) {
		/* Unread rows would put the connection out of sync. Rebind first: the
		 * previous result buffers may belong to a caller's finished frame. */
		MYSQL_BIND b[8];
		unsigned long len[8];
		my_bool null[8];

		memset(b, 0, sizeof b);
		for (unsigned i = 0; i < n; i++) {
			b[i].buffer_type = MYSQL_TYPE_LONG_BLOB;
			b[i].length = &len[i];
			b[i].is_null = &null[i];
		}
		if (mysql_stmt_bind_result(q->st, b) == 0) {
			int rc;

			do
				rc = mysql_stmt_fetch(q->st);
			while (rc == 0 || rc == MYSQL_DATA_TRUNCATED);
		}
	}
	if (q->c->m)
		mysql_stmt_free_result(q->st);
	if (q->adhoc)
		mysql_stmt_close(q->st);
	q->st = NULL;
}

int md_simple(struct conn *c, int id, sbx_err *err)
{
	struct md_q q = {0};
	int ret = md_run(c, id, NULL, NULL, 0, &q, err, md_stmt_sql[id]);

	md_end(&q);
	if (ret == 0) {
		if (id == ST_BEGIN || id == ST_BEGIN_RO)
			c->in_tx = 1;
		else if (id == ST_COMMIT || id == ST_ROLLBACK)
			c->in_tx = 0;
	}
	return ret;
}

void md_rollback(struct conn *c)
{
	if (c && c->m && c->in_tx)
		md_simple(c, ST_ROLLBACK, NULL);
	if (c)
		c->in_tx = 0;
}
