/*
 * lease.c - who owns a stream, and who is alive, in a shared store: the
 * sst_lease_* and sst_member_* calls of store.h, on Redis.
 *
 * A lease is a key lease:ID holding the owner's member ID, set with NX and
 * PX (it expires by the Redis server's clock), beside a counter fence:ID
 * that is incremented each time the lease changes hands and never reset.
 * The counter's value is the lease's fencing epoch, which every write of
 * the stream carries (store_redis.c checks it in the same script as the
 * write).  A member is a key member:ID with a TTL, listed in the set
 * "members" so that the live ones can be found without SCAN.
 *
 * Each call is one Lua script, so a check and its change are atomic, and
 * each is idempotent for the reply-lost retry of rconn.c: acquiring a
 * lease one already holds only extends it and returns its epoch.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infini_err.h"
#include "rconn.h"
#include "store_impl.h"

#define KEY_MAX (SST_NAME_MAX + SST_MEMBER_MAX + 32)
#define MEMBERS_KEY "infini:members"
#define MEMBER_PREFIX "infini:member:"

/* KEYS: lease, fence.  ARGV: member, ttl_ms. */
static struct rscript acquire_script = { .src =
"local h = redis.call('GET', KEYS[1])\n"
"if h == ARGV[1] then\n"
"  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
"  return {1, redis.call('GET', KEYS[2]) or '0'}\n"
"end\n"
"if h then\n"
"  return {0, h, redis.call('PTTL', KEYS[1])}\n"
"end\n"
"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
"return {1, tostring(redis.call('INCR', KEYS[2]))}\n" };

/* KEYS: lease, fence.  ARGV: member, epoch, ttl_ms. */
static struct rscript renew_script = { .src =
"if redis.call('GET', KEYS[1]) == ARGV[1] and\n"
"   redis.call('GET', KEYS[2]) == ARGV[2] then\n"
"  redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"
"  return 1\n"
"end\n"
"return 0\n" };

/* KEYS: lease, fence.  ARGV: member, epoch. */
static struct rscript release_script = { .src =
"local h = redis.call('GET', KEYS[1])\n"
"if not h then return 1 end\n"
"if h == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then\n"
"  redis.call('DEL', KEYS[1])\n"
"  return 1\n"
"end\n"
"return 0\n" };

/* KEYS: lease, fence. */
static struct rscript owner_script = { .src =
"local h = redis.call('GET', KEYS[1])\n"
"if not h then return redis.error_reply('NOENT nobody holds it') end\n"
"return {h, redis.call('GET', KEYS[2]) or '0'}\n" };

/* KEYS: members set, member key.  ARGV: member, ttl_ms. */
static struct rscript beat_script = { .src =
"redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])\n"
"redis.call('SADD', KEYS[1], ARGV[1])\n"
"return 1\n" };

/* KEYS: members set, member key prefix (the member keys are built here:
 * a standalone server allows it, a cluster would not). */
static struct rscript members_script = { .src =
"local out = {}\n"
"for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
"  if redis.call('EXISTS', KEYS[2] .. m) == 1 then\n"
"    out[#out + 1] = m\n"
"  else\n"
"    redis.call('SREM', KEYS[1], m)\n"
"  end\n"
"end\n"
"return out\n" };

/* shared refuses the directory store and bad arguments. */
static int
shared(struct sst *st, const char *id, const char *member, char *err,
    size_t errlen)
{
	if (st->rc == NULL)
		return (sst_errf(INFINI_EUNSUPPORTED, err, errlen, "%s has no "
		    "leases: one daemon uses it", st->desc));
	if (id != NULL && (id[0] == '\0' || strlen(id) > SST_NAME_MAX))
		return (sst_errf(INFINI_EINVAL, err, errlen, "lease: bad "
		    "stream ID"));
	if (member != NULL && (member[0] == '\0' ||
	    strlen(member) > SST_MEMBER_MAX))
		return (sst_errf(INFINI_EINVAL, err, errlen, "bad member ID "
		    "(1-%d bytes)", SST_MEMBER_MAX));
	return (0);
}

static void
lease_keys(const char *id, char *lease, char *fence)
{
	snprintf(lease, KEY_MAX, "infini:lease:%s", id);
	snprintf(fence, KEY_MAX, "infini:fence:%s", id);
}

static int
bad_ttl(long ttl_ms, char *err, size_t errlen)
{
	if (ttl_ms < 1 || ttl_ms > 0x7fffffffL)
		return (sst_errf(INFINI_EINVAL, err, errlen, "ttl_ms %ld out "
		    "of range", ttl_ms));
	return (0);
}

/* unexpected words a reply none of our scripts can give. */
static int
unexpected(const redisReply *r, const char *what, char *err, size_t errlen)
{
	return (sst_errf(INFINI_EIO, err, errlen, "%s: redis: %s", what,
	    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply"));
}

int
sst_lease_acquire(struct sst *st, const char *id, const char *member,
    long ttl_ms, uint64_t *epoch, char *owner, size_t ownerlen,
    int64_t *left_ms, char *err, size_t errlen)
{
	char lease[KEY_MAX], fence[KEY_MAX], ttl[24];
	const char *argv[] = { lease, fence, member, ttl };
	redisReply *r, **e;
	int rv;

	if ((rv = shared(st, id, member, err, errlen)) != 0 ||
	    (rv = bad_ttl(ttl_ms, err, errlen)) != 0)
		return (rv);
	lease_keys(id, lease, fence);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
	if ((rv = rconn_eval(st->rc, &acquire_script, 2, 4, argv, NULL, &r,
	    err, errlen)) != 0)
		return (rv);
	e = r->element;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    e[0]->type != REDIS_REPLY_INTEGER ||
	    e[1]->type != REDIS_REPLY_STRING)
		rv = unexpected(r, "lease", err, errlen);
	else if (e[0]->integer == 1)
		*epoch = strtoull(e[1]->str, NULL, 10);
	else {
		if (owner != NULL && ownerlen > 0)
			snprintf(owner, ownerlen, "%s", e[1]->str);
		if (left_ms != NULL)
			*left_ms = r->elements > 2 &&
			    e[2]->type == REDIS_REPLY_INTEGER ?
			    e[2]->integer : 0;
		rv = sst_errf(INFINI_EEXIST, err, errlen, "stream %s is held "
		    "by %s", id, e[1]->str);
	}
	freeReplyObject(r);
	return (rv);
}

/* held runs renew or release: 1 from the script is 0, 0 is ESTATE. */
static int
held(struct sst *st, struct rscript *s, const char *id, const char *member,
    uint64_t epoch, const char *ttl, char *err, size_t errlen)
{
	char lease[KEY_MAX], fence[KEY_MAX], ep[24];
	const char *argv[] = { lease, fence, member, ep, ttl };
	redisReply *r;
	int rv;

	lease_keys(id, lease, fence);
	snprintf(ep, sizeof(ep), "%" PRIu64, epoch);
	if ((rv = rconn_eval(st->rc, s, 2, ttl != NULL ? 5 : 4, argv, NULL,
	    &r, err, errlen)) != 0)
		return (rv);
	if (r->type != REDIS_REPLY_INTEGER)
		rv = unexpected(r, "lease", err, errlen);
	else if (r->integer != 1)
		rv = sst_errf(INFINI_ESTATE, err, errlen, "the lease on stream "
		    "%s at epoch %" PRIu64 " is no longer %s's", id, epoch,
		    member);
	freeReplyObject(r);
	return (rv);
}

int
sst_lease_renew(struct sst *st, const char *id, const char *member,
    uint64_t epoch, long ttl_ms, char *err, size_t errlen)
{
	char ttl[24];
	int rv;

	if ((rv = shared(st, id, member, err, errlen)) != 0 ||
	    (rv = bad_ttl(ttl_ms, err, errlen)) != 0)
		return (rv);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
	return (held(st, &renew_script, id, member, epoch, ttl, err, errlen));
}

int
sst_lease_release(struct sst *st, const char *id, const char *member,
    uint64_t epoch, char *err, size_t errlen)
{
	int rv;

	if ((rv = shared(st, id, member, err, errlen)) != 0)
		return (rv);
	return (held(st, &release_script, id, member, epoch, NULL, err,
	    errlen));
}

int
sst_lease_owner(struct sst *st, const char *id, char *owner,
    size_t ownerlen, uint64_t *epoch, char *err, size_t errlen)
{
	char lease[KEY_MAX], fence[KEY_MAX];
	const char *argv[] = { lease, fence };
	redisReply *r, **e;
	int rv;

	if ((rv = shared(st, id, NULL, err, errlen)) != 0)
		return (rv);
	lease_keys(id, lease, fence);
	if ((rv = rconn_eval(st->rc, &owner_script, 2, 2, argv, NULL, &r, err,
	    errlen)) != 0)
		return (rv);
	e = r->element;
	if (rconn_err_is(r, "NOENT"))
		rv = sst_errf(INFINI_ENOENT, err, errlen, "nobody holds stream "
		    "%s", id);
	else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    e[0]->type != REDIS_REPLY_STRING ||
	    e[1]->type != REDIS_REPLY_STRING)
		rv = unexpected(r, "lease", err, errlen);
	else {
		snprintf(owner, ownerlen, "%s", e[0]->str);
		*epoch = strtoull(e[1]->str, NULL, 10);
	}
	freeReplyObject(r);
	return (rv);
}

int
sst_member_beat(struct sst *st, const char *member, long ttl_ms, char *err,
    size_t errlen)
{
	char key[KEY_MAX], ttl[24];
	const char *argv[] = { MEMBERS_KEY, key, member, ttl };
	redisReply *r;
	int rv;

	if ((rv = shared(st, NULL, member, err, errlen)) != 0 ||
	    (rv = bad_ttl(ttl_ms, err, errlen)) != 0)
		return (rv);
	snprintf(key, sizeof(key), MEMBER_PREFIX "%s", member);
	snprintf(ttl, sizeof(ttl), "%ld", ttl_ms);
	if ((rv = rconn_eval(st->rc, &beat_script, 2, 4, argv, NULL, &r, err,
	    errlen)) != 0)
		return (rv);
	if (r->type != REDIS_REPLY_INTEGER)
		rv = unexpected(r, "heartbeat", err, errlen);
	freeReplyObject(r);
	return (rv);
}

int
sst_member_leave(struct sst *st, const char *member, char *err,
    size_t errlen)
{
	char key[KEY_MAX];
	const char *del[] = { "DEL", key }, *srem[] = { "SREM", MEMBERS_KEY,
	    member };
	redisReply *r;
	int rv;

	if ((rv = shared(st, NULL, member, err, errlen)) != 0)
		return (rv);
	snprintf(key, sizeof(key), MEMBER_PREFIX "%s", member);
	/* The key first: a member without it is not live, set or not. */
	if ((rv = rconn_cmd(st->rc, 2, del, NULL, &r, err, errlen)) != 0)
		return (rv);
	freeReplyObject(r);
	if ((rv = rconn_cmd(st->rc, 3, srem, NULL, &r, err, errlen)) != 0)
		return (rv);
	freeReplyObject(r);
	return (0);
}

static int
by_id(const void *a, const void *b)
{
	return (strcmp(((const struct sst_member *)a)->id,
	    ((const struct sst_member *)b)->id));
}

int
sst_members(struct sst *st, struct sst_member **out, size_t *n, char *err,
    size_t errlen)
{
	const char *argv[] = { MEMBERS_KEY, MEMBER_PREFIX };
	struct sst_member *v;
	redisReply *r;
	size_t nv = 0;
	int rv;

	if ((rv = shared(st, NULL, NULL, err, errlen)) != 0)
		return (rv);
	if ((rv = rconn_eval(st->rc, &members_script, 2, 2, argv, NULL, &r,
	    err, errlen)) != 0)
		return (rv);
	if (r->type != REDIS_REPLY_ARRAY) {
		rv = unexpected(r, "members", err, errlen);
		freeReplyObject(r);
		return (rv);
	}
	if ((v = calloc(r->elements + 1, sizeof(*v))) == NULL) {
		freeReplyObject(r);
		return (sst_errf(INFINI_ENOMEM, err, errlen, "out of memory"));
	}
	for (size_t i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    r->element[i]->len <= SST_MEMBER_MAX)
			snprintf(v[nv++].id, sizeof(v->id), "%s",
			    r->element[i]->str);
	freeReplyObject(r);
	qsort(v, nv, sizeof(*v), by_id);
	*out = v;
	*n = nv;
	return (0);
}
