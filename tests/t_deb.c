/*
 * t_deb.c - the Debian packages, as built by tools/build-deb.sh into
 * $INFINI_DEB_DIR (tools/test.sh's Debian pass sets it; without it every
 * check skips, so the ordinary test passes build no packages).  Nothing is
 * installed: the packages are read with dpkg-deb and unpacked into a
 * temporary directory.
 *
 *  1. The four packages and their -dbgsym packages are there, and each
 *     holds its files: daemon, runner, unit, sysusers entry, settings file
 *     and model in infinid; the CLI in infini-client; the shared library in
 *     libinfini0; headers, .so link, infini.pc and libinfini(3) in
 *     libinfini-dev.  Manual pages are compressed.
 *  2. Dependencies: libinfini0 and infini-client pull in no Vulkan or Mesa;
 *     infinid needs a Vulkan driver, systemd-sysusers for its account and
 *     procps for the unit's ExecReload=/bin/kill.
 *  3. /etc/infinid/infinid.conf is a conffile holding every key of the
 *     daemon's settings table, commented out, with the installed model as
 *     the default.
 *  4. The maintainer scripts: the account before the unit starts, and a
 *     purge that removes the settings, state and cache directories.
 *  5. Every ELF file is stripped, position-independent (executables),
 *     linked with BIND_NOW; infini and infini-run (no static NNG inside)
 *     call the stack protector and fortified libc functions.  The
 *     packaged infinid and infini-run default to the installed model.
 *  6. The example of libinfini(3) compiles and links against the unpacked
 *     libinfini-dev and libinfini0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"

#define MODEL_DIR "/usr/share/infinid/models/default"

static char tmp[512], root[600];
static const char *debdir;

/* deb_path writes the path of package pkg's .deb into buf ("" if none). */
static void
deb_path(const char *pkg, char *buf, size_t n)
{
	char cmd[1200], *out = NULL;

	snprintf(cmd, sizeof(cmd), "ls '%s'/%s_*.deb 2>/dev/null | head -n 1",
	    debdir, pkg);
	buf[0] = '\0';
	if (fx_run(cmd, &out) == 0)
		snprintf(buf, n, "%.*s", (int)strcspn(out, "\n"), out);
	free(out);
}

/* field returns dpkg-deb's value of a control field of pkg (malloc'd). */
static char *
field(const char *pkg, const char *name)
{
	char deb[1024], cmd[1400], *out = NULL;

	deb_path(pkg, deb, sizeof(deb));
	snprintf(cmd, sizeof(cmd), "dpkg-deb -f '%s' %s 2>/dev/null", deb, name);
	fx_run(cmd, &out);
	return (out);
}

/* unpack extracts pkg's files into root and its control files into
 * tmp/control-PKG. */
static int
unpack(const char *pkg)
{
	char deb[1024], cmd[4096], *out = NULL;
	int rv;

	deb_path(pkg, deb, sizeof(deb));
	if (deb[0] == '\0')
		return (-1);
	snprintf(cmd, sizeof(cmd), "dpkg-deb -x '%s' '%s' && "
	    "dpkg-deb -e '%s' '%s/control-%s'", deb, root, deb, tmp, pkg);
	rv = fx_run(cmd, &out);
	free(out);
	return (rv);
}

static bool
exists(const char *path)
{
	char p[1200];
	struct stat sb;

	snprintf(p, sizeof(p), "%s%s", root, path);
	return (lstat(p, &sb) == 0);
}

/* ---- 1. packages and their files ----------------------------------- */

static void
test_files(void)
{
	static const char *const pkgs[] = {
		"infinid", "infini-client", "libinfini0", "libinfini-dev",
		"infinid-dbgsym", "infini-client-dbgsym", "libinfini0-dbgsym",
	};
	static const char *const files[] = {
		"/usr/sbin/infinid", "/usr/bin/infini-run",
		"/lib/systemd/system/infinid.service",
		"/usr/lib/sysusers.d/infinid.conf", "/etc/infinid/infinid.conf",
		MODEL_DIR "/config.json", MODEL_DIR "/model.safetensors",
		"/usr/share/man/man8/infinid.8.gz",
		"/usr/share/man/man5/infinid.conf.5.gz",
		"/usr/share/man/man1/infini-run.1.gz",
		"/usr/share/doc/infinid/copyright",
		"/usr/share/doc/infinid/changelog.gz",
		"/usr/bin/infini", "/usr/share/man/man1/infini.1.gz",
		"/usr/lib/" LIBARCH "/libinfini.so.0",
		"/usr/include/infini.h", "/usr/include/infini_err.h",
		"/usr/lib/" LIBARCH "/libinfini.so",
		"/usr/lib/" LIBARCH "/pkgconfig/infini.pc",
		"/usr/share/man/man3/libinfini.3.gz",
	};
	char deb[1024];
	int missing = 0;

	for (size_t i = 0; i < sizeof(pkgs) / sizeof(pkgs[0]); i++) {
		deb_path(pkgs[i], deb, sizeof(deb));
		if (deb[0] == '\0') {
			tap_diag("no %s package in %s", pkgs[i], debdir);
			missing++;
		} else if (i < 4 && unpack(pkgs[i]) != 0) {
			tap_diag("cannot unpack %s", deb);
			missing++;
		}
	}
	ok(missing == 0, "the 4 packages and 3 -dbgsym packages are there "
	    "and unpack");

	missing = 0;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (!exists(files[i])) {
			tap_diag("not in the packages: %s", files[i]);
			missing++;
		}
	}
	ok(missing == 0, "each file is in its package, manual pages "
	    "compressed");
	ok(!exists("/usr/lib/" LIBARCH "/libinfini.a") &&
	    !exists("/usr/share/man/man8/infinid.8"),
	    "no static library (its NNG is not packaged), no uncompressed "
	    "manual page");
}
#define FILE_TESTS 3

/* ---- 2. dependencies ----------------------------------------------- */

static void
test_depends(void)
{
	char *lib = field("libinfini0", "Depends");
	char *cli = field("infini-client", "Depends");
	char *d = field("infinid", "Depends");
	char *dev = field("libinfini-dev", "Depends");

	ok(strstr(lib, "libc6") && strstr(lib, "libprotobuf-c1") &&
	    !strstr(lib, "vulkan") && !strstr(lib, "mesa") &&
	    !strstr(lib, "libnng"), "libinfini0 Depends: %.*s",
	    (int)strcspn(lib, "\n"), lib);
	ok(strstr(cli, "libinfini0") && strstr(cli, "libc6") &&
	    !strstr(cli, "vulkan") && !strstr(cli, "mesa"),
	    "infini-client Depends: %.*s", (int)strcspn(cli, "\n"), cli);
	ok(strstr(d, "libvulkan1") && strstr(d, "mesa-vulkan-drivers | "
	    "vulkan-icd") && strstr(d, "libc6") && strstr(d, "systemd") &&
	    strstr(d, "procps") /* /bin/kill for ExecReload= */ &&
	    !strstr(d, "libnng"), "infinid Depends: %.*s",
	    (int)strcspn(d, "\n"), d);
	ok(strstr(dev, "libinfini0 (= ") != NULL, "libinfini-dev Depends: %.*s",
	    (int)strcspn(dev, "\n"), dev);
	free(lib);
	free(cli);
	free(d);
	free(dev);
}
#define DEPEND_TESTS 4

/* ---- 3. the settings file ------------------------------------------ */

static void
test_conf(void)
{
	char path[1200], cmd[1400], *conffiles = NULL, *conf = NULL;
	char *help = NULL, *line, *save = NULL;
	size_t n;
	int keys = 0, missing = 0;
	bool in = false;

	snprintf(path, sizeof(path), "%s/control-infinid/conffiles", tmp);
	if (fx_read_file(path, &conffiles, &n) != 0)
		conffiles = calloc(1, 1);
	ok(strcmp(conffiles, "/etc/infinid/infinid.conf\n") == 0,
	    "conffiles: /etc/infinid/infinid.conf");
	free(conffiles);

	snprintf(path, sizeof(path), "%s/etc/infinid/infinid.conf", root);
	if (fx_read_file(path, &conf, &n) != 0)
		conf = calloc(1, 1);
	/* The table as the build's daemon prints it; only the model's
	 * default differs between the build and the package. */
	snprintf(cmd, sizeof(cmd), "'%s' --help", INFINID);
	fx_run(cmd, &help);
	for (line = strtok_r(help, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char key[128], want[200];
		if (strcmp(line, "settings:") == 0) {
			in = true;
			continue;
		}
		if (!in || sscanf(line, "%127[a-z_] =", key) != 1)
			continue;
		keys++;
		snprintf(want, sizeof(want), "\n#%s =", key);
		if (strstr(conf, want) == NULL) {
			tap_diag("infinid.conf lacks #%s", key);
			missing++;
		}
	}
	ok(keys > 10 && missing == 0, "infinid.conf has all %d keys commented "
	    "out", keys);
	ok(strstr(conf, "\n#model = " MODEL_DIR "\n") != NULL &&
	    strstr(conf, "\nmodel") == NULL,
	    "its model default is the installed model, and no key is set");
	free(conf);
	free(help);
}
#define CONF_TESTS 3

/* ---- 4. maintainer scripts ----------------------------------------- */

static void
test_scripts(void)
{
	char path[1200], *postinst = NULL, *postrm = NULL, *unit = NULL;
	const char *users, *start;
	size_t n;

	snprintf(path, sizeof(path), "%s/control-infinid/postinst", tmp);
	if (fx_read_file(path, &postinst, &n) != 0)
		postinst = calloc(1, 1);
	snprintf(path, sizeof(path), "%s/control-infinid/postrm", tmp);
	if (fx_read_file(path, &postrm, &n) != 0)
		postrm = calloc(1, 1);
	snprintf(path, sizeof(path), "%s/lib/systemd/system/infinid.service",
	    root);
	if (fx_read_file(path, &unit, &n) != 0)
		unit = calloc(1, 1);
	users = strstr(postinst, "systemd-sysusers");
	start = strstr(postinst, "deb-systemd-invoke");
	ok(users != NULL && start != NULL && users < start &&
	    strstr(postinst, "deb-systemd-helper enable 'infinid.service'"),
	    "postinst creates the account, then enables and starts the unit");
	ok(strstr(postrm, "rm -rf /etc/infinid /var/lib/infinid "
	    "/var/cache/infinid /run/infinid") != NULL &&
	    strstr(postrm, "\"$1\" = purge") != NULL,
	    "postrm purge removes the settings, state and cache directories");
	ok(strstr(unit, "\nExecStart=/usr/sbin/infinid\n") != NULL &&
	    strstr(unit, "\nUser=infinid\n") != NULL,
	    "the unit runs the installed daemon as infinid");
	free(postinst);
	free(postrm);
	free(unit);
}
#define SCRIPT_TESTS 3

/* ---- 5. binaries --------------------------------------------------- */

static void
test_elf(void)
{
	static const char *const elf[] = {
		"/usr/sbin/infinid", "/usr/bin/infini-run", "/usr/bin/infini",
		"/usr/lib/" LIBARCH "/libinfini.so.0.1.0",
	};
	char cmd[2400], *out = NULL;
	int bad = 0, unprotected = 0;

	for (size_t i = 0; i < sizeof(elf) / sizeof(elf[0]); i++) {
		char p[1200];
		snprintf(p, sizeof(p), "%s%s", root, elf[i]);
		/* Stripped: no symbol table or DWARF left (they are in the
		 * -dbgsym packages). */
		snprintf(cmd, sizeof(cmd), "readelf -S -W '%s' | grep -E "
		    "' \\.(symtab|debug_[a-z]+) '", p);
		if (fx_run(cmd, &out) != 1) {
			tap_diag("%s is not stripped: %s", elf[i], out);
			bad++;
		}
		free(out);
		snprintf(cmd, sizeof(cmd), "readelf -h -d -W '%s' | grep -E "
		    "'Type: +DYN|BIND_NOW|FLAGS_1.*NOW' | wc -l", p);
		fx_run(cmd, &out);
		if (atoi(out) < 2) {
			tap_diag("%s: not PIE/shared or no BIND_NOW", elf[i]);
			bad++;
		}
		free(out);
		/* -fstack-protector and _FORTIFY_SOURCE leave their imports:
		 * __stack_chk_fail and the __*_chk variants of libc calls.
		 * Only in the programs without the static NNG, whose own
		 * hardened objects would import them anyway. */
		if (strstr(elf[i], "/bin/") == NULL)
			continue;
		snprintf(cmd, sizeof(cmd), "readelf --dyn-syms -W '%s' | grep -c "
		    "-E ' (__stack_chk_fail|__[a-z_]+_chk)(@|$)'", p);
		fx_run(cmd, &out);
		if (atoi(out) < 2) {
			tap_diag("%s: no stack protector or fortified calls",
			    elf[i]);
			unprotected++;
		}
		free(out);
	}
	ok(bad == 0, "binaries are stripped, position-independent and "
	    "bound at load (BIND_NOW)");
	ok(unprotected == 0, "infini and infini-run call the stack protector "
	    "and fortified libc functions");

	snprintf(cmd, sizeof(cmd), "'%s/usr/sbin/infinid' --help; "
	    "'%s/usr/bin/infini-run' --help", root, root);
	fx_run(cmd, &out);
	ok(strstr(out, "model = " MODEL_DIR "\n") != NULL &&
	    strstr(out, "(default $INFINI_MODEL or " MODEL_DIR ")") != NULL,
	    "packaged infinid and infini-run default to " MODEL_DIR);
	free(out);
}
#define ELF_TESTS 3

/* ---- 6. libinfini(3)'s example against libinfini-dev --------------- */

static void
test_example(void)
{
	char cmd[8192], *out = NULL;
	int rv;

	/* The lines between .EX and .EE, with roff's \e back to '\'. */
	snprintf(cmd, sizeof(cmd), "zcat '%s/usr/share/man/man3/libinfini.3.gz' "
	    "| sed -n '/^\\.EX/,/^\\.EE/p' | sed '1d;$d' | "
	    "sed 's/\\\\e/\\\\/g' >'%s/example.c' && "
	    "cc -Wall -Werror -o '%s/example' '%s/example.c' -I'%s/usr/include' "
	    "-L'%s/usr/lib/" LIBARCH "' -linfini 2>&1 && "
	    "LD_LIBRARY_PATH='%s/usr/lib/" LIBARCH "' "
	    "INFINI_SOCKET=ipc://'%s/none.sock' '%s/example' 2>&1",
	    root, tmp, tmp, tmp, root, root, root, tmp, tmp);
	rv = fx_run(cmd, &out);
	/* No daemon at that socket: the example reports it and exits 1. */
	ok(rv == 1 && strstr(out, "no daemon at") != NULL,
	    "libinfini(3)'s example builds against libinfini-dev and runs "
	    "(%.*s)", (int)strcspn(out, "\n"), out);
	free(out);
}
#define EXAMPLE_TESTS 1

int
main(void)
{
	debdir = getenv("INFINI_DEB_DIR");
	if (debdir == NULL || debdir[0] == '\0') {
		tap_plan_skip_all("INFINI_DEB_DIR unset (tools/build-deb.sh "
		    "builds the packages; tools/test.sh sets it)");
		return (0);
	}
	if (system("command -v dpkg-deb >/dev/null && "
	    "command -v readelf >/dev/null") != 0) {
		tap_plan_skip_all("no dpkg-deb or readelf");
		return (0);
	}
	if (fx_tmpdir(tmp, sizeof(tmp)) != 0) {
		tap_plan_skip_all("cannot make a temporary directory");
		return (0);
	}
	snprintf(root, sizeof(root), "%s/root", tmp);
	tap_plan(FILE_TESTS + DEPEND_TESTS + CONF_TESTS + SCRIPT_TESTS +
	    ELF_TESTS + EXAMPLE_TESTS);
	test_files();
	test_depends();
	test_conf();
	test_scripts();
	test_elf();
	test_example();
	if (!tap_failed)
		fx_rmtree(tmp);
	else
		tap_diag("kept %s", tmp);
	return (tap_done());
}
