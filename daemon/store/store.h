/*
 * store.h - where stream states and named snapshots are kept, behind one
 * interface (prefix sst_) with two implementations:
 *
 *   - a local directory (store_dir.c), the default: state_dir/streams and
 *     state_dir/snapshots, one file per entry, written exactly as
 *     snap_write_file always has (temp file, fsync, rename, fsync of the
 *     directory).  One daemon uses a directory.
 *   - Redis (store_redis.c, on hiredis), "redis://HOST:PORT/DB" or
 *     "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTER/DB": shared by
 *     several daemons, which is why it also has leases with fencing epochs
 *     and a member list (lease.c).
 *
 * The store moves opaque bytes (encoded snapshots, docs/snapshot-format.md)
 * under names that obey snap_name_ok; it decodes nothing but a
 * snapshot's fixed header and owner, for sst_stat (snap_stat_file,
 * snap_info_head).  It does no logging: every call returns 0 or an
 * INFINI_E* code with err (at least one byte; may be NULL when errlen is
 * 0) saying what failed.  A handle may be used by several threads at
 * once; calls on one handle are serialised.
 */
#ifndef SST_STORE_H
#define SST_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The two namespaces of entries. */
enum sst_kind {
	SST_STREAM,     /* a stream's own state (spill and autosnapshot) */
	SST_NAMED,      /* a named snapshot written by Snapshot */
};

#define SST_NAME_MAX 128        /* = SNAP_NAME_MAX */
#define SST_MEMBER_MAX 255      /* a member's ID: the URL clients dial */

struct sst;

/*
 * A fencing token: the lease on stream `lease` held by `member` with epoch
 * `epoch` (sst_lease_acquire).  A write carrying one is applied only while
 * that lease is still the current one; a shared store refuses a stream
 * write without one.  The directory store has no leases and ignores it.
 */
struct sst_fence {
	const char *lease;      /* the stream ID */
	const char *member;
	uint64_t epoch;
};

/* What the store knows of an entry without reading its bytes. */
struct sst_info {
	uint64_t bytes;
	bool has_owner;         /* an owner UID is recorded */
	uint32_t owner;
	uint64_t epoch;         /* shared stores: the fencing epoch of the
	                         * write (0: written unfenced) */
	/* What the snapshot's fixed header says (snap_info_head), read
	 * without the bytes: the directory store from the file, a Redis
	 * store from the header it keeps beside them.  has_head is false
	 * for an entry with no valid header. */
	bool has_head;
	uint64_t position;
	uint64_t created_ms;    /* Unix time of encoding, ms */
	char stream_id[SST_NAME_MAX + 1];
};

/* An entry with what sst_stat says of it (sst_list_info). */
struct sst_entry {
	char name[SST_NAME_MAX + 1];
	struct sst_info info;
};

/* A live member of a shared store (sst_members). */
struct sst_member {
	char id[SST_MEMBER_MAX + 1];
};

/* sst_put flags */
#define SST_PUT_NEW 0x1         /* refuse (INFINI_EEXIST) if name exists */
/* SST_PUT_OWNED: replace only an entry recorded with the same owner (else
 * INFINI_EPERM), checked in the same atomic step as the write, so a user's
 * overwrite through one daemon can never replace what another user wrote
 * under that name through another meanwhile.  The directory store has one
 * daemon and one writer thread, which checks before it writes. */
#define SST_PUT_OWNED 0x2

/*
 * sst_open opens the store that url names: "" or "dir" is the directory
 * store on state_dir (its streams/ and snapshots/ folders are made by
 * their users, spill_init and sio_start, not here), a redis:// or
 * redis-sentinel:// URL a Redis store (nothing is connected yet: the first
 * call connects, and every call reconnects when the connection was lost).
 * On success *out (the caller's: sst_close) is set.  Returns 0,
 * INFINI_EINVAL (a URL that does not parse, err says why) or
 * INFINI_ENOMEM.
 */
int sst_open(const char *url, const char *state_dir, struct sst **out,
    char *err, size_t errlen);
/* sst_close frees st; st may be NULL. */
void sst_close(struct sst *st);
/* sst_shared: do several daemons share st (leases and members apply)? */
bool sst_shared(const struct sst *st);
/* sst_set_timeout bounds every later call of a shared store to about ms
 * (> 0; the default is 2000); the directory store ignores it. */
void sst_set_timeout(struct sst *st, int ms);
/* sst_describe: st for log lines ("directory /var/lib/infinid", "redis
 * 127.0.0.1:6379 db 0"); valid until sst_close. */
const char *sst_describe(const struct sst *st);

/*
 * sst_put stores buf[0..len) as entry (k, name), replacing it atomically:
 * a reader sees the old bytes or the new, never a mix.  owner is recorded
 * beside the bytes by a shared store (the directory store has it in the
 * snapshot's own OWNER section).  f: see struct sst_fence.  Returns 0,
 * INFINI_EINVAL (bad name, a stream write to a shared store without a
 * fence), INFINI_EEXIST (SST_PUT_NEW and it exists), INFINI_EPERM
 * (SST_PUT_OWNED and another owner's entry is there), INFINI_ESTATE (the
 * fence is stale: another member holds the lease, or a newer epoch was
 * granted), INFINI_EFULL, INFINI_EPERM, INFINI_EIO, INFINI_EUNAVAILABLE
 * (the shared store cannot be reached), INFINI_ENOMEM.  On failure the
 * entry is unchanged.
 */
int sst_put(struct sst *st, enum sst_kind k, const char *name,
    const struct sst_fence *f, uint32_t owner, const uint8_t *buf,
    size_t len, int flags, char *err, size_t errlen);

/*
 * sst_get reads entry (k, name) whole, refusing one longer than max bytes
 * unread.  On success *buf (the caller's: free()) and *len are set.
 * Returns 0, INFINI_ENOENT, INFINI_ECORRUPT (longer than max),
 * INFINI_EINVAL (bad name, or not a regular file), INFINI_EPERM,
 * INFINI_EIO, INFINI_EUNAVAILABLE or INFINI_ENOMEM.
 */
int sst_get(struct sst *st, enum sst_kind k, const char *name, size_t max,
    uint8_t **buf, size_t *len, char *err, size_t errlen);

/*
 * sst_stat fills *out for entry (k, name) without reading its bytes (the
 * directory store reads the snapshot header for the owner).  Returns 0 or
 * the errors of sst_get.
 */
int sst_stat(struct sst *st, enum sst_kind k, const char *name,
    struct sst_info *out, char *err, size_t errlen);

/*
 * sst_del removes entry (k, name), fenced by f as sst_put is.  Returns 0,
 * INFINI_ENOENT (there was none), INFINI_ESTATE (stale fence) or the I/O
 * errors of sst_put.
 */
int sst_del(struct sst *st, enum sst_kind k, const char *name,
    const struct sst_fence *f, char *err, size_t errlen);

/*
 * sst_list returns the names of kind k: *names (the caller's:
 * sst_names_free) holds *n NUL-terminated names, in no particular order.
 * The directory store lists the regular files with valid names (for
 * SST_STREAM, those ending in ".snap").  Returns 0, INFINI_ENOENT (no
 * such directory), INFINI_EIO, INFINI_EUNAVAILABLE or INFINI_ENOMEM.
 */
int sst_list(struct sst *st, enum sst_kind k, char ***names, size_t *n,
    char *err, size_t errlen);
/* sst_names_free frees what sst_list returned; names may be NULL. */
void sst_names_free(char **names, size_t n);

/*
 * sst_list_info lists the entries of kind k with what sst_stat gives for
 * each: *out (the caller's: free()) holds *n of them, in no particular
 * order; entries that vanish or cannot be read meanwhile are left out.
 * A Redis store answers in one round trip (one script), so listing
 * thousands of named snapshots costs one call, not one per entry.
 * Returns as sst_list.
 */
int sst_list_info(struct sst *st, enum sst_kind k, struct sst_entry **out,
    size_t *n, char *err, size_t errlen);

/* ---- leases and members: shared stores only (lease.c) ----
 * On a store that is not shared these return INFINI_EUNSUPPORTED.
 * Times are the store's own (Redis expires keys by its clock), so members'
 * clocks never need to agree; ttl_ms is 1 .. 2^31-1. */

/*
 * sst_lease_acquire takes the lease on stream id for member for ttl_ms, or
 * extends it when member holds it already.  A new lease gets a new epoch,
 * larger than every epoch granted for id before (the fence counter is
 * never reset), so writes fenced by an older lease are refused from that
 * moment.  Returns 0 with *epoch set, INFINI_EEXIST when another member
 * holds it (owner, ownerlen >= SST_MEMBER_MAX + 1, gets its ID and
 * *left_ms the lease's remaining time; either may be NULL), or the
 * errors of a store call.
 */
int sst_lease_acquire(struct sst *st, const char *id, const char *member,
    long ttl_ms, uint64_t *epoch, char *owner, size_t ownerlen,
    int64_t *left_ms, char *err, size_t errlen);
/*
 * sst_lease_renew extends the lease (id, member, epoch) by ttl_ms from
 * now.  Returns 0, INFINI_ESTATE when that lease is gone (it expired, or
 * another member or epoch holds id now: the caller must stop writing id)
 * or the errors of a store call.
 */
int sst_lease_renew(struct sst *st, const char *id, const char *member,
    uint64_t epoch, long ttl_ms, char *err, size_t errlen);
/* sst_lease_release ends the lease (id, member, epoch) at once; 0 also
 * when it had already lapsed; INFINI_ESTATE when another holds id. */
int sst_lease_release(struct sst *st, const char *id, const char *member,
    uint64_t epoch, char *err, size_t errlen);
/* sst_lease_owner reads who holds id: 0 with owner (ownerlen >=
 * SST_MEMBER_MAX + 1) and *epoch set, INFINI_ENOENT when nobody does. */
int sst_lease_owner(struct sst *st, const char *id, char *owner,
    size_t ownerlen, uint64_t *epoch, char *err, size_t errlen);

/*
 * sst_member_beat registers member as live for ttl_ms from now (call it
 * at least every ttl_ms / 3); sst_member_leave removes it at once.
 * member is 1..SST_MEMBER_MAX bytes without NUL.
 */
int sst_member_beat(struct sst *st, const char *member, long ttl_ms,
    char *err, size_t errlen);
int sst_member_leave(struct sst *st, const char *member, char *err,
    size_t errlen);
/*
 * sst_members lists the live members (their heartbeat has not lapsed),
 * sorted by ID: *out (the caller's: free()) holds *n of them.  Members
 * whose heartbeat lapsed are forgotten on the way.
 */
int sst_members(struct sst *st, struct sst_member **out, size_t *n,
    char *err, size_t errlen);

#endif /* SST_STORE_H */
