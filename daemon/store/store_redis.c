/*
 * store_redis.c - the Redis state store: entries as hashes, written and
 * read by Lua scripts so that each check and its write are one atomic step
 * on the server.
 *
 * Keys (every one under "infini:"):
 *   st:NAME, sn:NAME   a stream state / a named snapshot: hash of data (the
 *                      snapshot bytes), owner (UID, decimal), epoch (the
 *                      fencing epoch of the write, 0 when unfenced) and head
 *                      (a copy of the bytes' first SNAP_HEAD_SIZE, the
 *                      snapshot header: Redis has no range read of a hash
 *                      field, and listing must not fetch whole states)
 *   idx:st, idx:sn     the set of names of each kind (listing without SCAN)
 *   lease:ID, fence:ID the lease on stream ID and its epoch counter (lease.c)
 *
 * A fenced write is applied only when lease:ID still holds the writer's
 * member ID and fence:ID still equals its epoch: a daemon whose lease
 * lapsed, and was taken over (a new epoch), is refused by Redis itself,
 * whatever its own clock believes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infini_err.h"
#include "rconn.h"
#include "snapshot.h"
#include "store_impl.h"

#define KEY_MAX (SST_NAME_MAX + 32)

/* KEYS: entry, index, lease, fence.  ARGV: name, data, owner, new,
 * member ('' unfenced), epoch, head, owned. */
static struct rscript put_script = { .src =
"if ARGV[5] ~= '' then\n"
"  local h = redis.call('GET', KEYS[3])\n"
"  local e = redis.call('GET', KEYS[4])\n"
"  if h ~= ARGV[5] or e ~= ARGV[6] then\n"
"    return redis.error_reply('STALE the lease is ' .. (h or 'free') ..\n"
"      ' at epoch ' .. (e or '0'))\n"
"  end\n"
"end\n"
"if ARGV[4] == '1' and redis.call('EXISTS', KEYS[1]) == 1 and\n"
"   redis.call('HGET', KEYS[1], 'data') ~= ARGV[2] then\n"
"  return redis.error_reply('EXISTS the name is taken')\n"
"end\n"
"if ARGV[8] == '1' and redis.call('EXISTS', KEYS[1]) == 1 and\n"
"   redis.call('HGET', KEYS[1], 'owner') ~= ARGV[3] then\n"
"  return redis.error_reply('PERM the name holds a snapshot of another '\n"
"    .. 'owner')\n"
"end\n"
"redis.call('HSET', KEYS[1], 'data', ARGV[2], 'owner', ARGV[3],\n"
"  'epoch', ARGV[6], 'head', ARGV[7])\n"
"redis.call('SADD', KEYS[2], ARGV[1])\n"
"return 1\n" };

/* KEYS: entry, index, lease, fence.  ARGV: name, member, epoch. */
static struct rscript del_script = { .src =
"if ARGV[2] ~= '' then\n"
"  local h = redis.call('GET', KEYS[3])\n"
"  local e = redis.call('GET', KEYS[4])\n"
"  if h ~= ARGV[2] or e ~= ARGV[3] then\n"
"    return redis.error_reply('STALE the lease is ' .. (h or 'free') ..\n"
"      ' at epoch ' .. (e or '0'))\n"
"  end\n"
"end\n"
"redis.call('SREM', KEYS[2], ARGV[1])\n"
"return redis.call('DEL', KEYS[1])\n" };

/* KEYS: entry. */
static struct rscript stat_script = { .src =
"if redis.call('EXISTS', KEYS[1]) == 0 then\n"
"  return redis.error_reply('NOENT no such entry')\n"
"end\n"
"local v = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'head')\n"
"return {redis.call('HSTRLEN', KEYS[1], 'data'), v[1] or '', v[2] or '',\n"
"  v[3] or ''}\n" };

/* KEYS: index.  ARGV: key prefix.  Each entry as stat_script gives it,
 * its name first; names whose entry is gone, or is not a hash (pcall: one
 * stray key must not fail the whole listing), are skipped.  One script,
 * not a round trip per name: a listing of 10^4 snapshots stays one call
 * (it reads ~300 bytes of each, never the data). */
static struct rscript list_script = { .src =
"local out = {}\n"
"for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
"  local k = ARGV[1] .. n\n"
"  local v = redis.pcall('HMGET', k, 'owner', 'epoch', 'head')\n"
"  if type(v) == 'table' and v[1] then\n"
"    out[#out + 1] = {n, redis.call('HSTRLEN', k, 'data'), v[1],\n"
"      v[2] or '', v[3] or ''}\n"
"  end\n"
"end\n"
"return out\n" };

static const char *
tag(enum sst_kind k)
{
	return (k == SST_STREAM ? "st" : "sn");
}

/*
 * reply_code turns a script's error reply into our code: the scripts'
 * own refusals first, then what Redis itself may answer.
 */
static int
reply_code(const redisReply *r, const char *name, char *err, size_t errlen)
{
	const char *t = rconn_err_text(r);

	if (rconn_err_is(r, "STALE"))
		return (sst_errf(INFINI_ESTATE, err, errlen, "%s: stale fencing "
		    "epoch: %s", name, t));
	if (rconn_err_is(r, "EXISTS"))
		return (sst_errf(INFINI_EEXIST, err, errlen, "snapshot %s "
		    "exists", name));
	if (rconn_err_is(r, "PERM"))
		return (sst_errf(INFINI_EPERM, err, errlen, "snapshot '%s' "
		    "belongs to another user", name));
	if (rconn_err_is(r, "NOENT"))
		return (sst_errf(INFINI_ENOENT, err, errlen, "%s: not in the "
		    "store", name));
	if (rconn_err_is(r, "TOOBIG"))
		return (sst_errf(INFINI_ECORRUPT, err, errlen, "%s: %s, more "
		    "than a snapshot of this model can be", name, t));
	if (rconn_err_is(r, "OOM"))
		return (sst_errf(INFINI_EFULL, err, errlen, "%s: redis is out "
		    "of memory (maxmemory): %s", name, r->str));
	return (sst_errf(INFINI_EIO, err, errlen, "%s: redis: %s", name,
	    r->str));
}

/* The keys and fence words of a write (put or delete) of an entry. */
struct wkeys {
	char key[KEY_MAX], idx[16];
	char lease[KEY_MAX], fence[KEY_MAX], ep[24];   /* of f, or dummies */
};

/* write_keys checks f for a write of (k, name) and fills w. */
static int
write_keys(enum sst_kind k, const char *name, const struct sst_fence *f,
    struct wkeys *w, char *err, size_t errlen)
{
	if (f != NULL && (f->lease == NULL || f->member == NULL ||
	    f->member[0] == '\0' || strlen(f->lease) > SST_NAME_MAX ||
	    strlen(f->member) > SST_MEMBER_MAX))
		return (sst_errf(INFINI_EINVAL, err, errlen, "%s: bad fence",
		    name));
	if (k == SST_STREAM && f == NULL)
		return (sst_errf(INFINI_EINVAL, err, errlen, "%s: a stream "
		    "write to a shared store needs the stream's lease", name));
	snprintf(w->key, sizeof(w->key), "infini:%s:%s", tag(k), name);
	snprintf(w->idx, sizeof(w->idx), "infini:idx:%s", tag(k));
	snprintf(w->lease, sizeof(w->lease), "infini:lease:%s",
	    f ? f->lease : "");
	snprintf(w->fence, sizeof(w->fence), "infini:fence:%s",
	    f ? f->lease : "");
	snprintf(w->ep, sizeof(w->ep), "%" PRIu64, f ? f->epoch : 0);
	return (0);
}

static int
redis_put(struct sst *st, enum sst_kind k, const char *name,
    const struct sst_fence *f, uint32_t owner, const uint8_t *buf,
    size_t len, int flags, char *err, size_t errlen)
{
	struct wkeys w;
	char own[16];
	redisReply *r;
	int rv;

	if ((rv = write_keys(k, name, f, &w, err, errlen)) != 0)
		return (rv);
	snprintf(own, sizeof(own), "%" PRIu32, owner);
	const char *argv[] = { w.key, w.idx, w.lease, w.fence, name,
	    (const char *)buf, own, (flags & SST_PUT_NEW) ? "1" : "0",
	    f ? f->member : "", w.ep, (const char *)buf,
	    (flags & SST_PUT_OWNED) ? "1" : "0" };
	size_t lens[12];
	for (int i = 0; i < 12; i++)
		lens[i] = i == 5 ? len : i == 10 ? (len < SNAP_HEAD_SIZE ?
		    len : SNAP_HEAD_SIZE) : strlen(argv[i]);
	if (buf == NULL)
		argv[5] = argv[10] = "";
	if ((rv = rconn_eval(st->rc, &put_script, 4, 12, argv, lens, &r, err,
	    errlen)) != 0)
		return (rv);
	if (r->type == REDIS_REPLY_ERROR)
		rv = reply_code(r, name, err, errlen);
	freeReplyObject(r);
	return (rv);
}

/*
 * redis_get reads the size first (HSTRLEN) and the bytes only when they
 * fit: a plain HGET, not a script, because a script would copy a state of
 * tens of MB through Lua twice.  The entry may be replaced in between;
 * the length is checked again on the bytes.
 */
static int
redis_get(struct sst *st, enum sst_kind k, const char *name, size_t max,
    uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	char key[KEY_MAX];
	const char *size[] = { "HSTRLEN", key, "data" };
	const char *get[] = { "HGET", key, "data" };
	redisReply *r;
	uint8_t *b;
	int rv;

	snprintf(key, sizeof(key), "infini:%s:%s", tag(k), name);
	if ((rv = rconn_cmd(st->rc, 3, size, NULL, &r, err, errlen)) != 0)
		return (rv);
	if (r->type != REDIS_REPLY_INTEGER)
		rv = reply_code(r, name, err, errlen);
	else if ((unsigned long long)r->integer > max)
		rv = sst_errf(INFINI_ECORRUPT, err, errlen, "%s: %lld bytes, "
		    "more than a snapshot of this model can be", name,
		    r->integer);
	freeReplyObject(r);
	if (rv != 0)
		return (rv);
	if ((rv = rconn_cmd(st->rc, 3, get, NULL, &r, err, errlen)) != 0)
		return (rv);
	if (r->type == REDIS_REPLY_NIL)
		rv = sst_errf(INFINI_ENOENT, err, errlen, "%s: not in the "
		    "store", name);
	else if (r->type != REDIS_REPLY_STRING)
		rv = reply_code(r, name, err, errlen);
	else if (r->len > max)
		rv = sst_errf(INFINI_ECORRUPT, err, errlen, "%s: %zu bytes, "
		    "more than a snapshot of this model can be", name, r->len);
	else if ((b = malloc(r->len ? r->len : 1)) == NULL)
		rv = sst_errf(INFINI_ENOMEM, err, errlen, "out of memory");
	else {
		memcpy(b, r->str, r->len);
		*buf = b;
		*len = r->len;
	}
	freeReplyObject(r);
	return (rv);
}

/* stat_reply fills *out from a stat_script reply e[0..4): size, owner,
 * epoch, head.  false when the reply has another shape. */
static bool
stat_reply(redisReply **e, struct sst_info *out)
{
	struct snap_info in;

	if (e[0]->type != REDIS_REPLY_INTEGER ||
	    e[1]->type != REDIS_REPLY_STRING ||
	    e[2]->type != REDIS_REPLY_STRING ||
	    e[3]->type != REDIS_REPLY_STRING)
		return (false);
	memset(out, 0, sizeof(*out));
	out->bytes = (uint64_t)e[0]->integer;
	out->has_owner = e[1]->len > 0;
	out->owner = (uint32_t)strtoul(e[1]->str, NULL, 10);
	out->epoch = strtoull(e[2]->str, NULL, 10);
	/* No head: an entry of an older infinid, or bytes that are no
	 * snapshot; it is listed without position and stream. */
	if (snap_info_head((const uint8_t *)e[3]->str, e[3]->len,
	    out->bytes, &in) == 0) {
		out->has_head = true;
		out->position = in.position;
		out->created_ms = in.created_ms;
		snprintf(out->stream_id, sizeof(out->stream_id), "%s",
		    in.stream_id);
	}
	return (true);
}

static int
redis_stat(struct sst *st, enum sst_kind k, const char *name,
    struct sst_info *out, char *err, size_t errlen)
{
	char key[KEY_MAX];
	const char *argv[] = { key };
	redisReply *r, **e;
	int rv;

	snprintf(key, sizeof(key), "infini:%s:%s", tag(k), name);
	if ((rv = rconn_eval(st->rc, &stat_script, 1, 1, argv, NULL, &r, err,
	    errlen)) != 0)
		return (rv);
	e = r->element;
	if (r->type == REDIS_REPLY_ERROR)
		rv = reply_code(r, name, err, errlen);
	else if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
	    !stat_reply(e, out))
		rv = sst_errf(INFINI_EIO, err, errlen, "%s: unexpected reply "
		    "from the store", name);
	freeReplyObject(r);
	return (rv);
}

static int
redis_del(struct sst *st, enum sst_kind k, const char *name,
    const struct sst_fence *f, char *err, size_t errlen)
{
	struct wkeys w;
	redisReply *r;
	int rv;

	if ((rv = write_keys(k, name, f, &w, err, errlen)) != 0)
		return (rv);
	const char *argv[] = { w.key, w.idx, w.lease, w.fence, name,
	    f ? f->member : "", w.ep };
	if ((rv = rconn_eval(st->rc, &del_script, 4, 7, argv, NULL, &r, err,
	    errlen)) != 0)
		return (rv);
	if (r->type == REDIS_REPLY_ERROR)
		rv = reply_code(r, name, err, errlen);
	else if (r->type != REDIS_REPLY_INTEGER)
		rv = sst_errf(INFINI_EIO, err, errlen, "%s: unexpected reply "
		    "from the store", name);
	else if (r->integer == 0)
		rv = sst_errf(INFINI_ENOENT, err, errlen, "%s: not in the "
		    "store", name);
	freeReplyObject(r);
	return (rv);
}

static int
redis_list(struct sst *st, enum sst_kind k, char ***names, size_t *n,
    char *err, size_t errlen)
{
	char idx[16];
	const char *argv[] = { "SMEMBERS", idx };
	char **v = NULL;
	size_t nv = 0, cap = 0;
	redisReply *r;
	int rv;

	snprintf(idx, sizeof(idx), "infini:idx:%s", tag(k));
	if ((rv = rconn_cmd(st->rc, 2, argv, NULL, &r, err, errlen)) != 0)
		return (rv);
	if (r->type != REDIS_REPLY_ARRAY)
		rv = sst_errf(INFINI_EIO, err, errlen, "SMEMBERS %s: %s", idx,
		    r->type == REDIS_REPLY_ERROR ? r->str : "not a set");
	for (size_t i = 0; rv == 0 && i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    (rv = sst_names_add(&v, &nv, &cap, r->element[i]->str)) != 0)
			sst_errf(rv, err, errlen, "out of memory");
	freeReplyObject(r);
	if (rv != 0) {
		sst_names_free(v, nv);
		return (rv);
	}
	*names = v;
	*n = nv;
	return (0);
}

static int
redis_list_info(struct sst *st, enum sst_kind k, struct sst_entry **out,
    size_t *n, char *err, size_t errlen)
{
	char idx[16], pre[16];
	const char *argv[] = { idx, pre };
	struct sst_entry *v = NULL;
	size_t m = 0;
	redisReply *r;
	int rv;

	snprintf(idx, sizeof(idx), "infini:idx:%s", tag(k));
	snprintf(pre, sizeof(pre), "infini:%s:", tag(k));
	if ((rv = rconn_eval(st->rc, &list_script, 1, 2, argv, NULL, &r, err,
	    errlen)) != 0)
		return (rv);
	if (r->type != REDIS_REPLY_ARRAY)
		rv = sst_errf(INFINI_EIO, err, errlen, "list %s: %s", idx,
		    r->type == REDIS_REPLY_ERROR ? r->str : "not an array");
	else if ((v = calloc(r->elements ? r->elements : 1,
	    sizeof(*v))) == NULL)
		rv = sst_errf(INFINI_ENOMEM, err, errlen, "out of memory");
	for (size_t i = 0; rv == 0 && i < r->elements; i++) {
		redisReply *x = r->element[i];
		/* A name in the index that is not a valid name was not put
		 * there by us: skipped, as the directory skips odd files. */
		if (x->type != REDIS_REPLY_ARRAY || x->elements != 5 ||
		    x->element[0]->type != REDIS_REPLY_STRING ||
		    x->element[0]->len > SST_NAME_MAX ||
		    !snap_name_ok(x->element[0]->str) ||
		    !stat_reply(x->element + 1, &v[m].info))
			continue;
		memcpy(v[m].name, x->element[0]->str, x->element[0]->len);
		v[m].name[x->element[0]->len] = '\0';
		m++;
	}
	freeReplyObject(r);
	if (rv != 0) {
		free(v);
		return (rv);
	}
	*out = v;
	*n = m;
	return (0);
}

static void
redis_close(struct sst *st)
{
	rconn_free(st->rc);
	st->rc = NULL;
}

static const struct sst_ops redis_ops = {
	.put = redis_put,
	.get = redis_get,
	.stat = redis_stat,
	.del = redis_del,
	.list = redis_list,
	.list_info = redis_list_info,
	.close = redis_close,
};

int
sst_redis_init(struct sst *st, const char *url, char *err, size_t errlen)
{
	int rv;

	if ((rv = rconn_alloc(url, &st->rc, err, errlen)) != 0)
		return (rv);
	rconn_describe(st->rc, st->desc, sizeof(st->desc));
	st->ops = &redis_ops;
	return (0);
}
