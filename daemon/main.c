/*
 * main.c - infinid: load the model onto the device, warm the pipelines up,
 * listen, tell the service manager READY=1 and serve until SIGTERM/SIGINT
 * (service.c handles the signals, SIGHUP reloads).  Flags mirror the
 * configuration keys (config.c): --max-streams 8 is max_streams = 8.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "notify.h"
#include "service.h"
#include "srv.h"

/* Where the settings come from, kept to rebuild them on SIGHUP. */
struct settings {
	const char *path;        /* the settings file */
	bool optional;           /* the default path may be missing */
	int argc;
	char **argv;             /* the flags, which override the file */
	bool print;              /* --print-config was given */
};

/* load_settings builds c from defaults, the file and the flags (an
 * svc_load_fn).  Returns 0 or an error code with err set. */
static int
load_settings(void *arg, struct cfg *c, char *err, size_t errlen)
{
	struct settings *s = arg;
	int rv;

	cfg_defaults(c);
	if ((rv = cfg_load(c, s->path, s->optional, err, errlen)) != 0)
		return (rv);
	for (int i = 1; i < s->argc; i++) {
		char key[64];
		const char *a = s->argv[i];
		if (strcmp(a, "--config") == 0) {
			i++;
			continue;
		}
		if (strcmp(a, "--print-config") == 0) {
			s->print = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || i + 1 >= s->argc) {
			snprintf(err, errlen, "unexpected argument '%s' "
			    "(see --help)", a);
			return (INFINI_EINVAL);
		}
		snprintf(key, sizeof(key), "%s", a + 2);
		for (char *p = key; *p; p++)
			if (*p == '-')
				*p = '_';
		if ((rv = cfg_set(c, key, s->argv[++i], err, errlen)) != 0)
			return (rv);
	}
#ifdef INFINI_SOURCE_MODEL
	/* Not installed: the compiled-in default (the installed model) is
	 * missing, so serve the source tree's (see CMakeLists.txt). */
	if (strcmp(c->model, INFINI_DEFAULT_MODEL) == 0 &&
	    access(c->model, F_OK) != 0 && access(INFINI_SOURCE_MODEL, F_OK) == 0)
		snprintf(c->model, sizeof(c->model), "%s", INFINI_SOURCE_MODEL);
#endif
	return (0);
}

static void
usage(FILE *f)
{
	fprintf(f,
"usage: infinid [--config FILE] [--KEY VALUE]... [--print-config]\n"
"\n"
"Serves Infini-attention model streams over NNG (see infinid(8)).\n"
"\n"
"  --config FILE     settings file (default %s, optional)\n"
"  --KEY VALUE       any setting, e.g. --model DIR, --listen URL,\n"
"                    --device SEL, --max-streams N (dashes or underscores),\n"
"                    --http-listen 127.0.0.1:8480 --http-tokens-file F for the\n"
"                    HTTP/OpenAI gateway and /metrics (docs/protocol.md)\n"
"  --print-config    print the effective settings and exit\n"
"  --version         print the version and exit\n"
"  -h, --help        this text\n"
"\n"
"settings:\n", CFG_PATH);
	struct cfg c;
	cfg_defaults(&c);
	cfg_print(&c, f);
}

/*
 * fault_setup reads $INFINID_FAULT, "oom:ID[:SKIP]", "lost:ID[:SKIP]" or
 * "hang:ID[:SKIP]": the (SKIP+1)-th device round that includes stream ID
 * fails as if the device ran out of memory, was lost, or hung for a while
 * (eng_fault_arm).  Only builds with
 * INFINI_FAULT_INJECTION read it; tests/t_faults.c uses it.  Returns 0 or
 * -1 (malformed).
 */
static int
fault_setup(struct infinid *d)
{
#ifdef INFINI_FAULT_INJECTION
	const char *v = getenv("INFINID_FAULT"), *id, *colon;
	char *end;
	long skip = 0;

	if (v == NULL || !*v)
		return (0);
	if (strncmp(v, "oom:", 4) == 0)
		d->fault = ENG_FAULT_OOM, id = v + 4;
	else if (strncmp(v, "lost:", 5) == 0)
		d->fault = ENG_FAULT_LOST, id = v + 5;
	else if (strncmp(v, "hang:", 5) == 0)
		d->fault = ENG_FAULT_HANG, id = v + 5;
	else
		return (-1);
	colon = strchr(id, ':');
	if (colon != NULL) {
		skip = strtol(colon + 1, &end, 10);
		if (*end || skip < 0 || skip > 1000000)
			return (-1);
	}
	size_t n = colon ? (size_t)(colon - id) : strlen(id);
	if (n == 0 || n > WIRE_ID_MAX)
		return (-1);
	memcpy(d->fault_id, id, n);
	d->fault_id[n] = '\0';
	d->fault_skip = (int)skip;
	LOG(LOG_WARNING, "INFINID_FAULT: %s fault armed for stream %s after "
	    "%ld of its rounds", d->fault == ENG_FAULT_OOM ? "out-of-memory" :
	    d->fault == ENG_FAULT_LOST ? "device-lost" : "device-hang",
	    d->fault_id, skip);
#else
	(void)d;
#endif
	return (0);
}

/* warm_up runs one token so every pipeline is compiled before clients come
 * (lavapipe compiles on first dispatch). */
static int
warm_up(struct infinid *d, char *err, size_t errlen)
{
	int slot, rv;
	int32_t tok = 0;
	struct eng_sampler smp = { 0, 0, 1.0f, 0 };
	int32_t out;
	struct eng_job j = { .n = 1, .tokens = &tok, .out = ENG_OUT_LAST_LOGITS,
	    .sample = &smp, .token = &out };
	float *logits = calloc((size_t)eng_config(d->eng)->vocab_size,
	    sizeof(float));

	if (logits == NULL)
		return (INFINI_ENOMEM);
	j.result = logits;
	if ((rv = eng_stream_alloc(d->eng, &slot)) == 0) {
		j.slot = slot;
		rv = eng_run(d->eng, &j, 1, err, errlen);
		eng_stream_free(d->eng, slot);
	}
	free(logits);
	return (rv);
}

int
main(int argc, char **argv)
{
	struct infinid d;
	struct settings set = { CFG_PATH, true, argc, argv, false };
	struct notify n;
	char err[1024];
	int rv, sig;

	memset(&d, 0, sizeof(d));
	cfg_defaults(&d.cfg);
	/* First pass: the config file, so flags can override it. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return (0);
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("infinid %s\n", INFINI_VERSION_STRING);
			return (0);
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			set.path = argv[++i];
			set.optional = false;
		}
	}
	if (load_settings(&set, &d.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "infinid: %s\n", err);
		return (2);
	}
	if (set.print) {
		cfg_print(&d.cfg, stdout);
		return (0);
	}
	if ((log_level = log_parse_level(d.cfg.log_level)) < 0) {
		fprintf(stderr, "infinid: log_level: unknown level '%s'\n",
		    d.cfg.log_level);
		return (2);
	}
	if (d.cfg.admin_group[0]) {
		struct group *g = getgrnam(d.cfg.admin_group);
		if (g == NULL) {
			fprintf(stderr, "infinid: admin_group: no group '%s'\n",
			    d.cfg.admin_group);
			return (2);
		}
		d.admin_gid = g->gr_gid;
		d.have_admin = true;
	}
	if (fault_setup(&d) != 0) {
		fprintf(stderr, "infinid: INFINID_FAULT: expected oom:ID[:SKIP], "
		    "lost:ID[:SKIP] or hang:ID[:SKIP]\n");
		return (2);
	}
	signal(SIGPIPE, SIG_IGN);
	/* Before any thread exists (the driver's, NNG's, the scheduler). */
	if (svc_block_signals() != 0) {
		fprintf(stderr, "infinid: cannot block signals\n");
		return (1);
	}
	if (notify_init(&n) != 0)
		LOG(LOG_WARNING, "NOTIFY_SOCKET \"%s\" is unusable; not "
		    "notifying the service manager", getenv("NOTIFY_SOCKET"));
	pthread_mutex_init(&d.mu, NULL);
	clk_cond_init(&d.cv);
	d.start_ms = now_ms();

	/* Before the model loads: a second daemon started by mistake says so
	 * at once and touches nothing of the first one's. */
	if ((rv = srv_claim(&d, err, sizeof(err))) != 0) {
		LOG(LOG_ERR, "%s", err);
		notify_status(&n, "failed to start: %s", err);
		notify_fini(&n);
		return (1);
	}
	if ((rv = http_prepare(&d, err, sizeof(err))) != 0) {
		LOG(LOG_ERR, "%s", err);
		notify_status(&n, "failed to start: %s", err);
		notify_fini(&n);
		http_stop(&d);
		return (1);
	}
	LOG(LOG_INFO, "loading model %s", d.cfg.model);
	notify_status(&n, "loading model %s", d.cfg.model);
	if ((rv = eng_model_load(d.cfg.model, &d.model, err, sizeof(err))) != 0) {
		LOG(LOG_ERR, "model %s: %s", d.cfg.model, err);
		return (1);
	}
	if ((rv = tok_load_dir(d.cfg.model, &d.tok, err, sizeof(err))) != 0 ||
	    (d.tok != NULL && tok_vocab_size(d.tok) > d.model->cfg.vocab_size)) {
		if (rv == 0)
			snprintf(err, sizeof(err), "the tokenizer has %d ids, "
			    "the model's vocab_size is %d",
			    tok_vocab_size(d.tok), d.model->cfg.vocab_size);
		LOG(LOG_ERR, "model %s: tokenizer: %s", d.cfg.model, err);
		tok_free(d.tok);
		eng_model_free(d.model);
		return (1);
	}
	LOG(LOG_INFO, "tokenizer: %s", d.tok ? tok_kind(d.tok) : "none");
	/* Slots for the resident streams (the rest spill to state_dir) and
	 * one for the warm-up. */
	d.max_resident = (int)(d.cfg.max_resident_streams < d.cfg.max_streams ?
	    d.cfg.max_resident_streams : d.cfg.max_streams);
	if (d.cfg.state_memory_mb > 0) {
		uint64_t per = eng_state_bytes_of(&d.model->cfg);
		uint64_t fit = ((uint64_t)d.cfg.state_memory_mb << 20) / per;
		if (fit < 1) {
			LOG(LOG_ERR, "state_memory_mb: %ld MiB holds no stream "
			    "(%llu bytes each)", d.cfg.state_memory_mb,
			    (unsigned long long)per);
			tok_free(d.tok);
			eng_model_free(d.model);
			return (1);
		}
		if (fit < (uint64_t)d.max_resident)
			d.max_resident = (int)fit;
		LOG(LOG_INFO, "state_memory_mb %ld: %d resident streams of %llu "
		    "bytes", d.cfg.state_memory_mb, d.max_resident,
		    (unsigned long long)per);
	}
	struct eng_opts eo = { .device = d.cfg.device[0] ? d.cfg.device : NULL,
	    .max_streams = d.max_resident + 1,
	    .max_batch = (int)d.cfg.max_batch };
	if ((rv = eng_open(d.model, &eo, &d.eng, err, sizeof(err))) != 0) {
		LOG(LOG_ERR, "engine: %s", err);
		tok_free(d.tok);
		eng_model_free(d.model);
		return (1);
	}
	snprintf(d.device_name, sizeof(d.device_name), "%s",
	    eng_device_name(d.eng));
	LOG(LOG_INFO, "device %s, %llu bytes of state per stream",
	    d.device_name, (unsigned long long)eng_state_bytes(d.eng));
	{
		char kc[160];
		eng_kernel_choice(d.eng, kc, sizeof(kc));
		LOG(LOG_INFO, "kernels: %s", kc);
	}
	notify_status(&n, "warming up on %s", d.device_name);
	if ((rv = warm_up(&d, err, sizeof(err))) != 0) {
		LOG(LOG_ERR, "warm-up failed: %s", err);
		goto out;
	}
	if ((rv = clu_start(&d, err, sizeof(err))) != 0) {
		LOG(LOG_ERR, "state store: %s", err);
		goto out;
	}
	if ((rv = sio_start(&d)) != 0) {
		LOG(LOG_ERR, "cannot start the snapshot thread");
		goto out;
	}
	if ((rv = sched_start(&d)) != 0) {
		LOG(LOG_ERR, "cannot start the scheduler");
		sio_stop(&d);
		goto out;
	}
	if ((rv = rpc_start(&d)) != 0 ||
	    (rv = srv_start(&d, err, sizeof(err))) != 0 ||
	    (rv = http_start(&d, err, sizeof(err))) != 0) {
		LOG(LOG_ERR, "%s", rv == INFINI_ENOMEM ? "out of memory" : err);
		sched_stop(&d);
		sio_stop(&d);
		http_stop(&d);
		rpc_stop(&d);
		srv_stop(&d);
		goto out;
	}
	LOG(LOG_NOTICE, "ready: model %s on %s", d.cfg.model, d.device_name);
	notify_ready(&n);
	sig = svc_run(&d, &n, load_settings, &set);
	if (d.device_lost)
		LOG(LOG_ERR, "device lost: exiting with status 1 for a restart");
	else
		LOG(LOG_NOTICE, "signal %d: shutting down", sig);
	notify_stopping(&n);
	notify_status(&n, "stopping: saving the streams");
	/* The scheduler first: it finishes its batch and writes every stream
	 * with unsaved work while the contexts it answers still exist. */
	sched_stop(&d);
	/* The snapshot thread answers what it still has while every
	 * transport's calls exist: the gateway frees its own. */
	sio_stop(&d);
	http_stop(&d);
	rpc_stop(&d);
	srv_stop(&d);
	strm_free_all(&d);
	rv = d.device_lost ? INFINI_EDEVICE : 0;
out:
	/* After the scheduler wrote the streams: leases go last. */
	clu_stop(&d);
	if (rv != 0 && !d.device_lost)
		notify_status(&n, "failed to start; see the log");
	notify_fini(&n);
	eng_close(d.eng);
	tok_free(d.tok);
	eng_model_free(d.model);
	return (rv ? 1 : 0);
}
