/*
 * floor -- the least work a durable Maildir-style enqueue can do.
 *
 * Usage: floor DIR < message
 *
 * Reads the whole message from stdin, then: open DIR/tmp/NAME with
 * O_CREAT|O_EXCL (mode 0600), write, fsync, close, rename to DIR/new/NAME,
 * fsync DIR/new.  No parsing, no envelope, no config.  The enqueue
 * benchmark (enqueue.sh) divides every tool's time by this program's time.
 *
 * Exit: 0 ok, 64 usage, 66 cannot read stdin, 73 cannot create the file,
 * 74 other I/O error.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EX_USAGE	64
#define EX_NOINPUT	66
#define EX_CANTCREAT	73
#define EX_IOERR	74

static void
die(int code, const char *what, const char *path)
{
	fprintf(stderr, "floor: %s%s%s: %s\n", what, path ? " " : "",
	    path ? path : "", strerror(errno));
	exit(code);
}

static char *
read_all(int fd, size_t *lenp)
{
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);

	if (buf == NULL)
		die(EX_IOERR, "malloc", NULL);
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nbuf;

			cap *= 2;
			nbuf = realloc(buf, cap);
			if (nbuf == NULL)
				die(EX_IOERR, "realloc", NULL);
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(EX_NOINPUT, "read", "stdin");
		}
		len += (size_t)n;
	}
	*lenp = len;
	return buf;
}

static void
write_all(int fd, const char *buf, size_t len, const char *path)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(EX_IOERR, "write", path);
		}
		buf += n;
		len -= (size_t)n;
	}
}

int
main(int argc, char **argv)
{
	struct timespec ts;
	char name[96], tmppath[4096], newpath[4096], newdir[4096];
	const char *dir;
	size_t len;
	char *msg;
	int fd, n;

	if (argc != 2) {
		fprintf(stderr, "usage: floor DIR < message\n");
		return EX_USAGE;
	}
	dir = argv[1];

	msg = read_all(STDIN_FILENO, &len);

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		die(EX_IOERR, "clock_gettime", NULL);
	snprintf(name, sizeof(name), "%lld.M%ldP%ld.floor",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid());
	n = snprintf(tmppath, sizeof(tmppath), "%s/tmp/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(tmppath)) {
		errno = ENAMETOOLONG;
		die(EX_USAGE, "path", dir);
	}
	snprintf(newpath, sizeof(newpath), "%s/new/%s", dir, name);
	snprintf(newdir, sizeof(newdir), "%s/new", dir);

	fd = open(tmppath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		die(EX_CANTCREAT, "open", tmppath);
	write_all(fd, msg, len, tmppath);
	if (fsync(fd) != 0)
		die(EX_IOERR, "fsync", tmppath);
	if (close(fd) != 0)
		die(EX_IOERR, "close", tmppath);
	if (rename(tmppath, newpath) != 0)
		die(EX_IOERR, "rename", newpath);

	fd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		die(EX_IOERR, "open", newdir);
	if (fsync(fd) != 0)
		die(EX_IOERR, "fsync", newdir);
	if (close(fd) != 0)
		die(EX_IOERR, "close", newdir);

	free(msg);
	return 0;
}
