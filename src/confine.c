/* confine.c - Landlock, by raw system calls, best effort per ABI. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "confine.h"

#ifdef __linux__
#include <linux/landlock.h>
#endif
#include <stddef.h>

/*
 * The access bits, as the kernel numbers them (its ABI is stable): older
 * headers (Debian 12's know ABI 2) lack the later ones.
 */
#define FS_EXECUTE	(1ULL << 0)
#define FS_WRITE_FILE	(1ULL << 1)
#define FS_READ_FILE	(1ULL << 2)
#define FS_READ_DIR	(1ULL << 3)
#define FS_REMOVE_DIR	(1ULL << 4)
#define FS_REMOVE_FILE	(1ULL << 5)
#define FS_MAKE_CHAR	(1ULL << 6)
#define FS_MAKE_DIR	(1ULL << 7)
#define FS_MAKE_REG	(1ULL << 8)
#define FS_MAKE_SOCK	(1ULL << 9)
#define FS_MAKE_FIFO	(1ULL << 10)
#define FS_MAKE_BLOCK	(1ULL << 11)
#define FS_MAKE_SYM	(1ULL << 12)
#define FS_REFER	(1ULL << 13)	/* ABI 2 */
#define FS_TRUNCATE	(1ULL << 14)	/* ABI 3 */
#define FS_IOCTL_DEV	(1ULL << 15)	/* ABI 5 */
#define NET_BIND_TCP	(1ULL << 0)	/* ABI 4 */
#define SCOPE_ABSTRACT_UNIX	(1ULL << 0)	/* ABI 6 */
#define SCOPE_SIGNAL	(1ULL << 1)	/* ABI 6 */

#ifdef LANDLOCK_ACCESS_FS_REFER
_Static_assert(FS_REFER == LANDLOCK_ACCESS_FS_REFER, "Landlock numbering");
#endif
#ifdef LANDLOCK_ACCESS_FS_TRUNCATE
_Static_assert(FS_TRUNCATE == LANDLOCK_ACCESS_FS_TRUNCATE, "Landlock numbering");
#endif
#ifdef LANDLOCK_ACCESS_FS_IOCTL_DEV
_Static_assert(FS_IOCTL_DEV == LANDLOCK_ACCESS_FS_IOCTL_DEV, "Landlock numbering");
#endif

#define ABI1_FS		((1ULL << 13) - 1)
/* What a rule on a file (not a directory) may allow. */
#define FILE_RIGHTS	(FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | \
			 FS_TRUNCATE | FS_IOCTL_DEV)
#define READ_RIGHTS	(FS_READ_FILE | FS_READ_DIR)
#define WRITE_RIGHTS	(READ_RIGHTS | FS_WRITE_FILE | FS_REMOVE_DIR | \
			 FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG | \
			 FS_REFER | FS_TRUNCATE)

/* struct landlock_ruleset_attr as of ABI 6; the kernel takes a shorter
 * one (the size says which fields there are). */
struct ll_ruleset {
	uint64_t	fs;
	uint64_t	net;
	uint64_t	scoped;
};

struct ll_path_beneath {
	uint64_t	allowed;
	int32_t		parent_fd;
} __attribute__((packed));

#if defined(__linux__) && defined(SYS_landlock_create_ruleset)

#define LL_VERSION	(1U << 0)	/* LANDLOCK_CREATE_RULESET_VERSION */
#define LL_RULE_PATH	1		/* LANDLOCK_RULE_PATH_BENEATH */

int
confine_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_VERSION);

	return abi < 0 ? 0 : (int)abi;
}

/* Allow `rights' beneath path: 0, or -1 with errno (ENOENT: missing). */
static int
add_path(int ruleset, const char *path, uint64_t rights, uint64_t handled)
{
	struct ll_path_beneath pb;
	struct stat st;
	int fd = open(path, O_PATH | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		int errnum = errno;

		close(fd);
		errno = errnum;
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		rights &= FILE_RIGHTS;
	memset(&pb, 0, sizeof(pb));
	pb.allowed = rights & handled;
	pb.parent_fd = fd;
	rc = pb.allowed == 0 ? 0 : (int)syscall(SYS_landlock_add_rule,
	    ruleset, LL_RULE_PATH, &pb, 0);
	if (rc < 0) {
		int errnum = errno;

		close(fd);
		errno = errnum;
		return -1;
	}
	close(fd);
	return 0;
}

int
confine_apply(const struct strvec *write, const struct strvec *read,
    bool may_bind, struct err *e)
{
	struct ll_ruleset attr;
	size_t size = sizeof(attr.fs);
	int abi = confine_abi();
	int ruleset;

	/* ABI 1 never lets a file move to another directory */
	if (abi < 2)
		return 0;
	memset(&attr, 0, sizeof(attr));
	attr.fs = ABI1_FS | FS_REFER;
	if (abi >= 3)
		attr.fs |= FS_TRUNCATE;
	if (abi >= 4) {
		/* fetch binds nothing, unless a job has a source-address */
		if (!may_bind)
			attr.net = NET_BIND_TCP;
		size = offsetof(struct ll_ruleset, net) + sizeof(attr.net);
	}
	if (abi >= 5)
		attr.fs |= FS_IOCTL_DEV;
	if (abi >= 6) {
		attr.scoped = SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (ruleset < 0)
		return err_set(e, ERR_OSERR, "cannot confine: Landlock ABI %d: "
		    "%s", abi, strerror(errno));
	for (size_t i = 0; i < write->n + read->n; i++) {
		bool w = i < write->n;
		const char *path = w ? write->v[i] : read->v[i - write->n];

		if (add_path(ruleset, path, w ? WRITE_RIGHTS : READ_RIGHTS,
		    attr.fs) < 0 && errno != ENOENT && errno != ENOTDIR &&
		    errno != EACCES) {
			int errnum = errno;

			close(ruleset);
			return err_set(e, ERR_OSERR, "cannot confine: a rule "
			    "for %s: %s", path, strerror(errnum));
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		int errnum = errno;

		close(ruleset);
		return err_set(e, ERR_OSERR, "cannot confine: %s",
		    strerror(errnum));
	}
	close(ruleset);
	return abi;
}

#else

int
confine_abi(void)
{
	return 0;
}

int
confine_apply(const struct strvec *write, const struct strvec *read,
    bool may_bind, struct err *e)
{
	(void)write;
	(void)read;
	(void)e;
	return 0;
}

#endif

static void
probe(const char *var, int flags)
{
	const char *path = getenv(var);
	int fd;

	if (path == NULL || *path == '\0')
		return;
	fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd >= 0) {
		fprintf(stderr, "confine probe: %s %s: allowed\n",
		    flags & O_CREAT ? "write" : "read", path);
		close(fd);
		return;
	}
	fprintf(stderr, "confine probe: %s %s: errno %d (%s)\n",
	    flags & O_CREAT ? "write" : "read", path, errno, strerror(errno));
}

void
confine_probe(void)
{
	probe("POSTIE_CONFINE_PROBE", O_WRONLY | O_CREAT | O_EXCL);
	probe("POSTIE_CONFINE_PROBE_READ", O_RDONLY);
}
