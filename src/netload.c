/* netload.c - load the network module embedded in the binary. */
#include <dlfcn.h>
#include <stdlib.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "netmod.h"
#include "util.h"

/* The module's bytes, placed in .rodata by netblob.S at build time. */
extern const unsigned char postie_netmod_blob[];
extern const unsigned char postie_netmod_blob_end[];

int
netmod_load(const struct netmod **m, struct err *e)
{
	size_t len = (size_t)(postie_netmod_blob_end - postie_netmod_blob);
	char path[64];
	void *h;
	int fd;

	fd = memfd_create("postie-net", MFD_CLOEXEC);
	if (fd < 0 || util_write_all(fd, postie_netmod_blob, len) < 0) {
		if (fd >= 0)
			close(fd);
		return err_set(e, ERR_OSERR, "cannot load the network module: "
		    "%s", strerror(errno));
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	close(fd);
	if (h == NULL)
		return err_set(e, ERR_SOFTWARE, "cannot load the network "
		    "module: %s", dlerror());
	*m = dlsym(h, "postie_netmod");
	if (*m == NULL || (*m)->version != NETMOD_VERSION)
		return err_set(e, ERR_SOFTWARE, "the network module is "
		    "missing or of another version");
	return 0;
}

/*
 * libESMTP 1.1 loads a SASL mechanism from "sasl-<name in lower case>.so",
 * so CRAM-MD5 is looked for as sasl-cram-md5.so; Debian's libesmtp6 ships
 * it as sasl-crammd5.so, and CRAM-MD5 would never be offered. This
 * dlopen() (exported by the executable, so it is the one libESMTP calls)
 * maps that one name and hands everything to the real dlopen.
 */
void *
dlopen(const char *file, int mode)
{
	static void *(*real)(const char *, int);
	const char *bad = "/sasl-cram-md5.so";
	const char *p;

	if (real == NULL)
		real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
	if (real == NULL)
		return NULL;
	if (file != NULL && (p = strstr(file, bad)) != NULL &&
	    p[strlen(bad)] == '\0') {
		char *fixed = xasprintf("%.*s/sasl-crammd5.so",
		    (int)(p - file), file);
		void *h = real(fixed, mode);

		free(fixed);
		return h;
	}
	return real(file, mode);
}
