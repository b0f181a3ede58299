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
