/* netload.c - load the network module embedded in the binary. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "netmod.h"
#include "util.h"

/* The module's bytes, placed in .rodata by netblob.S at build time. */
extern const unsigned char postie_netmod_blob[];
extern const unsigned char postie_netmod_blob_end[];

/* Linux 6.3's flag; older headers lack it, older kernels refuse it. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL	0x0008U
#endif

/* Where "make install" puts a copy of the module (Makefile: LIBDIR). */
#ifndef NETMOD_INSTALLED
#define NETMOD_INSTALLED	"/usr/local/lib/postie/postie-net.so"
#endif

/*
 * The embedded module in a memfd that can never be made executable
 * (MFD_NOEXEC_SEAL): the module is mapped by dlopen, never run as a
 * program, so it needs no exec bit, and that is the one kind of memfd
 * vm.memfd_noexec allows at every setting (at 2, Linux 6.3 to 6.6
 * refuse any other). -1 with errno set when there is none.
 */
static int
memfd_module(void)
{
	size_t len = (size_t)(postie_netmod_blob_end - postie_netmod_blob);
	int fd = memfd_create("postie-net", MFD_CLOEXEC | MFD_NOEXEC_SEAL);

	if (fd < 0 && errno == EINVAL)	/* a kernel before 6.3 */
		fd = memfd_create("postie-net", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (util_write_all(fd, postie_netmod_blob, len) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/*
 * path opened for loading if it is the embedded module byte for byte, a
 * regular file that only its owner (root or us) can change: so an old
 * copy from another version, or one planted by another user, is never
 * loaded. The open descriptor is what gets loaded, so a rename over
 * the path after the check changes nothing.
 */
static int
file_module(const char *path)
{
	const unsigned char *blob = postie_netmod_blob;
	size_t len = (size_t)(postie_netmod_blob_end - postie_netmod_blob);
	unsigned char buf[65536];
	struct stat st;
	size_t off = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & 022) != 0 || (size_t)st.st_size != len)
		goto no;
	while (off < len) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0 || (size_t)n > len - off ||
		    memcmp(buf, blob + off, (size_t)n) != 0)
			goto no;
		off += (size_t)n;
	}
	return fd;
no:
	close(fd);
	return -1;
}

/* The copy the build leaves beside the executable: DIR/postie-net.so. */
static char *
beside_exe(void)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return NULL;
	return xasprintf("%.*s/postie-net.so", (int)(slash - exe), exe);
}

static void *
dlopen_fd(int fd)
{
	char path[64];
	void *h;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	close(fd);
	return h;
}

/*
 * The embedded module from a memfd; where the system will not map code
 * from one (no memfd, or a security policy that forbids it), the
 * installed copy, else the build's copy beside the executable, each only
 * if it is the embedded one.
 */
int
netmod_load(const struct netmod **m, struct err *e)
{
	int fd = memfd_module(), why = errno;
	char *beside = NULL;
	void *h = NULL;

	if (fd >= 0)
		h = dlopen_fd(fd);
	if (h == NULL) {
		const char *memfd_err = fd >= 0 ? dlerror() : strerror(why);

		fd = file_module(NETMOD_INSTALLED);
		if (fd < 0 && (beside = beside_exe()) != NULL)
			fd = file_module(beside);
		if (fd < 0) {
			err_set(e, ERR_UNAVAILABLE, "cannot load the network "
			    "module: not from memory (%s) and no copy of this build's module at %s "
			    "or %s; run make install", memfd_err,
			    NETMOD_INSTALLED, beside ? beside :
			    "beside the binary");
			free(beside);
			return -1;
		}
		free(beside);
		h = dlopen_fd(fd);
	}
	if (h == NULL)
		return err_set(e, ERR_SOFTWARE, "cannot load the network "
		    "module: %s", dlerror());
	*m = dlsym(h, "postie_netmod");
	if (*m == NULL || (*m)->version != NETMOD_VERSION)
		return err_set(e, ERR_SOFTWARE, "the network module is "
		    "missing or of another version");
	return 0;
}
