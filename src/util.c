/* util.c - allocation, strings, paths and durable file-system steps. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		abort();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

void
sb_init(struct strbuf *sb)
{
	sb->s = NULL;
	sb->len = 0;
	sb->cap = 0;
}

void
sb_free(struct strbuf *sb)
{
	free(sb->s);
	sb_init(sb);
}

static void
sb_grow(struct strbuf *sb, size_t extra)
{
	size_t need = sb->len + extra + 1;

	if (need <= sb->cap)
		return;
	if (sb->cap == 0)
		sb->cap = 64;
	while (sb->cap < need)
		sb->cap *= 2;
	sb->s = xrealloc(sb->s, sb->cap);
}

void
sb_add(struct strbuf *sb, const void *p, size_t n)
{
	sb_grow(sb, n);
	if (n > 0)
		memcpy(sb->s + sb->len, p, n);
	sb->len += n;
	sb->s[sb->len] = '\0';
}

void
sb_adds(struct strbuf *sb, const char *s)
{
	sb_add(sb, s, strlen(s));
}

char *
util_expand(const char *arg, const char *keys, const char *const vals[])
{
	struct strbuf sb;

	sb_init(&sb);
	sb_add(&sb, "", 0);
	for (const char *p = arg; *p; p++) {
		const char *k = p[0] == '%' && p[1] != '\0' ?
		    strchr(keys, p[1]) : NULL;

		if (k != NULL) {
			sb_adds(&sb, vals[k - keys]);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			sb_addc(&sb, '%');
			p++;
		} else
			sb_addc(&sb, *p);
	}
	return sb_steal(&sb);
}

void
sb_addc(struct strbuf *sb, char c)
{
	sb_add(sb, &c, 1);
}

void
sb_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	sb_grow(sb, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(sb->s + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void
sb_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->s)
		sb->s[0] = '\0';
}

char *
sb_steal(struct strbuf *sb)
{
	char *s = sb->s ? sb->s : xstrdup("");

	sb_init(sb);
	return s;
}

void
sv_init(struct strvec *sv)
{
	sv->v = NULL;
	sv->n = 0;
	sv->cap = 0;
}

void
sv_free(struct strvec *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv_init(sv);
}

void
sv_push_owned(struct strvec *sv, char *s)
{
	if (sv->n + 2 > sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = xrealloc(sv->v, sv->cap * sizeof(*sv->v));
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;	/* usable as an argv */
}

void
sv_push(struct strvec *sv, const char *s)
{
	sv_push_owned(sv, xstrdup(s));
}

bool
sv_contains(const struct strvec *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return true;
	return false;
}

const char *
util_home(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h != NULL && *h != '\0')
		return h;
	pw = getpwuid(getuid());
	if (pw != NULL && pw->pw_dir != NULL)
		return pw->pw_dir;
	return "/";
}

char *
util_expand_tilde(const char *path)
{
	if (path[0] == '~' && (path[1] == '\0' || path[1] == '/'))
		return xasprintf("%s%s", util_home(), path + 1);
	return xstrdup(path);
}

int
util_fsync_dir(const char *dir, struct err *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return err_set(e, err_from_errno(errno), "cannot open %s: %s",
		    dir, strerror(errno));
	if (fsync(fd) < 0 && errno != EINVAL) {
		int saved = errno;

		close(fd);
		return err_set(e, err_from_errno(saved), "cannot fsync %s: %s",
		    dir, strerror(saved));
	}
	close(fd);
	return 0;
}

int
util_mkdir_p(const char *dir, struct err *e)
{
	char *p = xstrdup(dir);
	char *slash;
	struct stat st;
	int rc = 0;

	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
		free(p);
		return 0;
	}
	for (slash = strchr(p + 1, '/'); ; slash = strchr(slash + 1, '/')) {
		if (slash != NULL)
			*slash = '\0';
		if (mkdir(p, 0700) == 0) {
			char *parent = xstrdup(p);
			char *last = strrchr(parent, '/');

			if (last != NULL && last != parent)
				*last = '\0';
			else if (last == parent)
				parent[1] = '\0';
			util_fsync_dir(parent, NULL);	/* best effort */
			free(parent);
		} else if (errno != EEXIST) {
			rc = err_set(e, err_from_errno(errno),
			    "cannot create directory %s: %s", p, strerror(errno));
			break;
		} else if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
			char target[256];
			ssize_t n = readlink(p, target, sizeof(target) - 1);

			if (n >= 0) {
				target[n] = '\0';
				rc = err_set(e, ERR_CANTCREAT, "%s is a symbolic "
				    "link to %s, which %s", p, target,
				    stat(p, &st) < 0 ? "does not exist (create "
				    "it, or fix the link)" : "is not a directory");
			} else
				rc = err_set(e, ERR_CANTCREAT,
				    "%s exists and is not a directory", p);
			break;
		}
		if (slash == NULL)
			break;
		*slash = '/';
	}
	free(p);
	return rc;
}

ssize_t
util_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(fd, p + done, n - done);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)w;
	}
	return (ssize_t)done;
}

const char *
util_hostname(void)
{
	static char name[256];

	if (name[0] == '\0') {
		if (gethostname(name, sizeof(name) - 1) < 0 || name[0] == '\0')
			strcpy(name, "localhost");
		name[sizeof(name) - 1] = '\0';
	}
	return name;
}

size_t
util_utf8_char(const char *s, unsigned long *cp)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned long c, min;
	size_t n;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2, c = p[0] & 0x1f, min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3, c = p[0] & 0x0f, min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4, c = p[0] & 0x07, min = 0x10000;
	} else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;	/* also the NUL at the end */
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

void
util_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void
util_sanitize_ascii(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

long long
util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
util_quickack(int fd, bool *not_tcp)
{
	int on = 1;

	if ((not_tcp == NULL || !*not_tcp) && setsockopt(fd, IPPROTO_TCP,
	    TCP_QUICKACK, &on, sizeof(on)) < 0 && not_tcp != NULL)
		*not_tcp = true;
}

void
util_catch_stop_signals(void (*handler)(int), int flags)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old;

		if (sigaction(sigs[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN)
			continue;
		(void)sigaction(sigs[i], &sa, NULL);
	}
}
