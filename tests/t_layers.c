/*
 * t_layers - the include-layering check the build runs
 * (tools/check-layers.sh): it passes on this tree, and on a copy of the
 * tree given upward includes of each kind it fails, naming each one:
 * between the engine's layers, and inside the daemon's core (a scheduler
 * or store that included the rpc layer or any protobuf would fail).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "tap.h"

static char dir[256];

/* append adds line to file rel of the copy. */
static int
append(const char *rel, const char *line)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if ((f = fopen(p, "a")) == NULL)
		return (-1);
	fprintf(f, "%s\n", line);
	return (fclose(f));
}

int
main(void)
{
	static const struct { const char *file, *inc, *says; } up[] = {
		{ "daemon/gpu/cmd.c", "#include \"state.h\"",
		  "daemon/gpu/cmd.c (gpu) includes \"state.h\" (store)" },
		{ "daemon/engine/engine.c", "#include \"../rpc.h\"",
		  "daemon/engine/engine.c (engine) includes \"../rpc.h\" "
		  "(rpc)" },
		{ "daemon/engine/model.h", "#include \"tok/tok.h\"",
		  "daemon/engine/model.h (engine) includes \"tok/tok.h\" (tok)" },
		{ "daemon/snapshot.h", "# include \"state.h\"",
		  "daemon/snapshot.h (snapshot) includes \"state.h\" (store)" },
		{ "proto/wire.c", "#include \"engine/engine.h\"",
		  "proto/wire.c (wire) includes \"engine/engine.h\" (engine)" },
		{ "daemon/log.c", "#include \"http_gw.h\"",
		  "daemon/log.c (base) includes \"http_gw.h\" (socket)" },
		/* Inside the daemon's core, one way from the socket down. */
		{ "daemon/scheduler.c", "#include \"rpc.h\"",
		  "daemon/scheduler.c (sched) includes \"rpc.h\" (rpc)" },
		{ "daemon/spill.c", "#include \"wire.h\"",
		  "daemon/spill.c (store) includes \"wire.h\" (wire)" },
		{ "daemon/streams.c", "#include \"infini.pb-c.h\"",
		  "daemon/streams.c (store) includes \"infini.pb-c.h\" "
		  "(generated)" },
		{ "daemon/snapio.c", "#include \"scheduler.h\"",
		  "daemon/snapio.c (store) includes \"scheduler.h\" (sched)" },
		{ "daemon/rpc.c", "#include \"srv.h\"",
		  "daemon/rpc.c (rpc) includes \"srv.h\" (socket)" },
		{ "daemon/metrics.c", "#include \"http_gw.h\"",
		  "daemon/metrics.c (rpc) includes \"http_gw.h\" (socket)" },
		{ "daemon/server.c", "#include \"service.h\"",
		  "daemon/server.c (socket) includes \"service.h\" (daemon)" },
		{ "client/cli/run.c", "#include \"client_impl.h\"",
		  "client/cli/run.c (cli) includes \"client_impl.h\" (client)" },
		{ "client/client.c", "#include \"snapshot.h\"",
		  "client/client.c (client) includes \"snapshot.h\" (snapshot)" },
		{ "daemon/store/lease.c", "#include \"state.h\"",
		  "daemon/store/lease.c (sst) includes \"state.h\" (store)" },
		{ "daemon/snapshot.c", "#include \"store/store.h\"",
		  "daemon/snapshot.c (snapshot) includes \"store/store.h\" "
		  "(sst)" },
	};
	const size_t nup = sizeof(up) / sizeof(up[0]);
	char cmd[1024], *out = NULL;
	int rc;

	tap_plan(3 + (int)nup);
	tap_timeout(60);
	snprintf(cmd, sizeof(cmd), "bash %s/tools/check-layers.sh %s",
	    SRC_DIR, SRC_DIR);
	rc = fx_run(cmd, &out);
	ok(rc == 0 && out != NULL && out[0] == '\0', "the tree passes "
	    "(exit %d)%s%s", rc, out && *out ? ": " : "", out ? out : "");
	free(out);
	out = NULL;

	if (fx_tmpdir(dir, sizeof(dir)) != 0)
		return (1);
	snprintf(cmd, sizeof(cmd), "cd %s && cp -r daemon client proto "
	    "shaders %s/", SRC_DIR, dir);
	rc = fx_run(cmd, &out);
	free(out);
	out = NULL;
	for (size_t i = 0; i < nup && rc == 0; i++)
		rc = append(up[i].file, up[i].inc);
	/* A system header and a header of one's own layer are fine. */
	if (rc == 0)
		rc = append("daemon/gpu/mem.c", "#include \"gpu/gpu.h\"\n"
		    "#include <nng/nng.h>");
	ok(rc == 0, "a copy of the tree with %zu upward includes", nup);
	snprintf(cmd, sizeof(cmd), "bash %s/tools/check-layers.sh %s",
	    SRC_DIR, dir);
	rc = fx_run(cmd, &out);
	int lines = 0;
	for (const char *p = out; p != NULL && *p != '\0'; p++)
		lines += *p == '\n';
	ok(rc == 1 && lines == (int)nup, "the check fails with one line per "
	    "upward include (exit %d, %d lines)", rc, lines);
	for (size_t i = 0; i < nup; i++)
		ok(out != NULL && strstr(out, up[i].says) != NULL, "  %s",
		    up[i].says);
	free(out);
	fx_rmtree(dir);
	return (tap_done());
}
