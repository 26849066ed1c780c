/*
 * config.h - infinid's settings: one table of keys with defaults, bounds and
 * documentation, read from /etc/infinid/infinid.conf (key = value lines)
 * and overridden by command-line flags of the same names.
 */
#ifndef INFINI_CONFIG_H
#define INFINI_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#define CFG_PATH "/etc/infinid/infinid.conf"

struct cfg {
	char model[1024];
	char listen[2048];       /* comma-separated NNG URLs */
	char device[256];
	char state_dir[1024];
	char state_store[1024];  /* "dir" or a redis:// URL (daemon/store/) */
	char advertise_url[256]; /* this member's URL for clients; empty: a
	                          * tcp:// listen URL */
	long lease_ttl_ms;
	char admin_group[64];
	char tls_cert_key_file[1024]; /* PEM: certificate and key, for tls+tcp:// */
	char log_level[16];
	char http_listen[256];   /* HOST:PORT of the HTTP gateway; empty: off */
	char http_tokens_file[1024]; /* bearer token -> user lines, mode 0600 */
	long http_max_body_bytes;
	long max_streams;        /* known: resident or spilled */
	long max_resident_streams; /* engine slots in use at most */
	long state_memory_mb;      /* device memory for the slots; 0: any */
	long autosnapshot_segments;
	long autosnapshot_interval_s;
	long max_batch;
	long max_queue;
	long max_request_tokens;
	long max_message_bytes;
	long max_generate;
	long workers;
	long socket_mode;
	long poll_max_ms;
	long generate_idle_s;
	long max_requests_per_uid;
	long max_queued_tokens_per_uid;
	long max_streams_per_uid;
	long max_stop_strings;
	long max_snapshot_bytes_per_uid;
	long max_connections;
};

/* cfg_defaults fills c with every key's default. */
void cfg_defaults(struct cfg *c);

/* cfg_set sets key to the text value, checking type and bounds.  Returns 0,
 * INFINI_ENOENT (unknown key) or INFINI_EINVAL; err names the problem. */
int cfg_set(struct cfg *c, const char *key, const char *value, char *err,
    size_t errlen);

/* cfg_load reads a key = value file ('#' comments).  A missing file is not
 * an error when optional is set.  Returns 0 or an error with err naming the
 * file and line. */
int cfg_load(struct cfg *c, const char *path, bool optional, char *err,
    size_t errlen);

/* cfg_is_key: is name a configuration key?  (flags reuse the names) */
bool cfg_is_key(const char *name);

/* cfg_print writes every key with its value and documentation. */
void cfg_print(const struct cfg *c, FILE *f);

#endif
