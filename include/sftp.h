/*
 * sftp.h - SFTP version 3 (draft-ietf-secsh-filexfer-02) spoken by
 * postie itself, with many requests in flight on one channel.
 *
 * Two layers, one job each:
 *
 * The protocol (sftp.c) does no I/O. Requests are built into packets and
 * queued; the bytes to send are taken with sftp_out()/sftp_sent(); bytes
 * from the server are fed to sftp_in(), which frames them, parses each
 * reply, matches it by request id to the request it answers, checks that
 * its type is one that request may get, and calls that request's
 * callback. A window bounds what is in flight: at most max_reqs requests
 * and max_bytes of READ lengths; the rest waits in the queue, in order.
 * Everything from the server is hostile: a packet is refused before
 * anything is allocated for it, a length past its packet, a count that
 * lies, a reply to an id never sent, a type the request cannot get, more
 * data than asked: each is a protocol error with a precise reason, and
 * the session takes no more input after one.
 *
 * The channel (sftpchan.c) moves those bytes over a libssh2 channel
 * started with the "sftp" subsystem: non-blocking, one thread, bounded
 * waits (see struct sftp_chan).
 */
#ifndef POSTIE_SFTP_H
#define POSTIE_SFTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <libssh2.h>

#include "err.h"

struct sshconn;

#define SFTP_PACKET_MAX	(256 * 1024)	/* the largest packet taken (as
					 * OpenSSH's own client) */
#define SFTP_NAME_MAX	32768	/* a longer name: that entry is refused */
#define SFTP_HANDLE_MAX	256	/* the draft's limit on a handle */

/* Packet types. */
enum {
	SFTP_INIT = 1, SFTP_VERSION = 2, SFTP_OPEN = 3, SFTP_CLOSE = 4,
	SFTP_READ = 5, SFTP_WRITE = 6, SFTP_LSTAT = 7, SFTP_FSTAT = 8,
	SFTP_OPENDIR = 11, SFTP_READDIR = 12, SFTP_REMOVE = 13,
	SFTP_MKDIR = 14,
	SFTP_STAT = 17, SFTP_RENAME = 18, SFTP_STATUS = 101,
	SFTP_HANDLE = 102, SFTP_DATA = 103, SFTP_NAME = 104,
	SFTP_ATTRS = 105, SFTP_EXTENDED = 200, SFTP_EXTENDED_REPLY = 201
};

/* Status codes of version 3; a larger one is kept as sent. */
enum {
	SFTP_FX_OK = 0, SFTP_FX_EOF = 1, SFTP_FX_NO_SUCH_FILE = 2,
	SFTP_FX_PERMISSION_DENIED = 3, SFTP_FX_FAILURE = 4,
	SFTP_FX_BAD_MESSAGE = 5, SFTP_FX_NO_CONNECTION = 6,
	SFTP_FX_CONNECTION_LOST = 7, SFTP_FX_OP_UNSUPPORTED = 8
};

#define SFTP_ATTR_SIZE		0x00000001u
#define SFTP_ATTR_UIDGID	0x00000002u
#define SFTP_ATTR_PERMISSIONS	0x00000004u
#define SFTP_ATTR_ACMODTIME	0x00000008u
#define SFTP_ATTR_EXTENDED	0x80000000u

#define SFTP_S_IFMT	0170000u
#define SFTP_S_IFREG	0100000u
#define SFTP_S_IFDIR	0040000u
#define SFTP_S_IFLNK	0120000u

/* OPEN flags. */
#define SFTP_FXF_READ	0x00000001u

/* Extensions the server announced in VERSION. */
#define SFTP_EXT_FSYNC		0x1u	/* fsync@openssh.com */
#define SFTP_EXT_POSIX_RENAME	0x2u	/* posix-rename@openssh.com */

struct sftp_attrs {
	uint32_t	flags;		/* SFTP_ATTR_*: which fields are set */
	uint64_t	size;
	uint32_t	uid, gid;
	uint32_t	perm;		/* with the SFTP_S_IF* type bits */
	uint32_t	atime, mtime;
};

/*
 * A parsed reply. Pointers point into the packet: valid during the
 * callback only. Only the fields of its type are set.
 */
struct sftp_reply {
	uint8_t			 type;		/* SFTP_STATUS ... */
	uint32_t		 id;
	/* VERSION */
	uint32_t		 version;
	uint32_t		 exts;		/* SFTP_EXT_* */
	/* STATUS */
	uint32_t		 status;	/* SFTP_FX_*, or larger */
	const char		*msg;		/* not NUL-terminated */
	size_t			 msglen;
	/* HANDLE (the handle), DATA (the bytes), EXTENDED_REPLY (the rest) */
	const unsigned char	*data;
	size_t			 len;
	/* ATTRS */
	struct sftp_attrs	 attrs;
	/* NAME: count entries, checked; read them with sftp_name_next */
	uint32_t		 count;
	const unsigned char	*names;
	size_t			 names_len;
};

/* One entry of a NAME reply. */
struct sftp_name {
	const char		*name;	/* not NUL-terminated; may hold a NUL */
	size_t			 len;
	bool			 too_long;	/* over SFTP_NAME_MAX: refuse it
						 * (name is NULL) */
	struct sftp_attrs	 a;
};

/* --- the codec: bytes in, a reply or a reason out ----------------------- */

/*
 * Is a whole packet at buf (have bytes)? 1 and *plen (the packet with its
 * 4-byte length), 0 when more bytes are needed, -1 with *why when the
 * announced length is refused (too short, or over SFTP_PACKET_MAX): no
 * byte of it is waited for or allocated.
 */
int	sftp_frame(const unsigned char *buf, size_t have, size_t *plen,
	    const char **why);

/*
 * Parse one packet's body (from its type byte on, len bytes, without the
 * length field). 0 and *r, or -1 and *why (a static string). A NAME is
 * checked whole: every entry must fit, count entries exactly.
 */
int	sftp_parse(const unsigned char *p, size_t len, struct sftp_reply *r,
	    const char **why);

/* The next entry of a checked NAME reply; *off starts at 0. 1, or 0 at
 * the end. */
int	sftp_name_next(const struct sftp_reply *r, size_t *off,
	    struct sftp_name *n);

/* "no such file", ...; "an unknown status" for a code past version 3. */
const char *sftp_status_text(uint32_t status);

/* An ATTRS reply that says its path is something other than a directory
 * (a link, a file); false when it gives no type or is no ATTRS reply. */
bool	sftp_reply_not_dir(const struct sftp_reply *r);

/* --- the protocol engine (no I/O) -------------------------------------- */

struct sftp;

/*
 * Called with a request's reply, whose type is one the request may get
 * (checked): OPEN, OPENDIR HANDLE or STATUS; READ DATA or STATUS;
 * READDIR NAME or STATUS; FSTAT, LSTAT ATTRS or STATUS; CLOSE, REMOVE,
 * RENAME, MKDIR STATUS; EXTENDED STATUS or EXTENDED_REPLY. A DATA is never
 * longer than the READ asked. The callback may queue requests. -1 (with
 * e) is the caller's own failure: sftp_in still hands every reply it has
 * to its callback, then returns -1 with the first such error.
 */
typedef int (*sftp_cb)(void *arg, const struct sftp_reply *r, struct err *e);

/* A session: INIT is queued first. max_reqs at most 1024. */
struct sftp *sftp_new(unsigned max_reqs, size_t max_bytes);
void	sftp_free(struct sftp *s);

/* Queue a request. cb may be NULL (the reply is checked, then dropped).
 * Paths are NUL-terminated; handles are the bytes a HANDLE gave. */
void	sftp_opendir(struct sftp *s, const char *path, sftp_cb cb, void *arg);
void	sftp_readdir(struct sftp *s, const unsigned char *h, size_t hlen,
	    sftp_cb cb, void *arg);
void	sftp_open(struct sftp *s, const char *path, uint32_t pflags,
	    sftp_cb cb, void *arg);
void	sftp_fstat(struct sftp *s, const unsigned char *h, size_t hlen,
	    sftp_cb cb, void *arg);
void	sftp_lstat(struct sftp *s, const char *path, sftp_cb cb, void *arg);
void	sftp_read(struct sftp *s, const unsigned char *h, size_t hlen,
	    uint64_t off, uint32_t len, sftp_cb cb, void *arg);
void	sftp_close(struct sftp *s, const unsigned char *h, size_t hlen,
	    sftp_cb cb, void *arg);
void	sftp_remove(struct sftp *s, const char *path, sftp_cb cb, void *arg);
void	sftp_rename(struct sftp *s, const char *from, const char *to,
	    sftp_cb cb, void *arg);
/* A directory with permissions perm (e.g. 0700). */
void	sftp_mkdir(struct sftp *s, const char *path, uint32_t perm,
	    sftp_cb cb, void *arg);
/* fsync@openssh.com (only if sftp_exts() has SFTP_EXT_FSYNC). */
void	sftp_fsync(struct sftp *s, const unsigned char *h, size_t hlen,
	    sftp_cb cb, void *arg);

/*
 * The bytes to send next (0: none). They stay where they are until
 * sftp_sent() says how many went out, so a send that must be repeated
 * (libssh2 after EAGAIN) is repeated with the same buffer; more may be
 * appended behind them meanwhile.
 */
size_t	sftp_out(struct sftp *s, const unsigned char **p);
void	sftp_sent(struct sftp *s, size_t n);

/* Bytes from the server. 0, or -1 with e: a protocol error (ERR_PROTOCOL,
 * the session is dead) or a callback's own error. */
int	sftp_in(struct sftp *s, const void *buf, size_t n, struct err *e);

/* Requests queued or waiting for their reply. */
size_t	sftp_busy(const struct sftp *s);
/* The server's version (0 until VERSION came) and its extensions. */
uint32_t sftp_version(const struct sftp *s);
uint32_t sftp_exts(const struct sftp *s);

/* --- the channel: the engine over libssh2 ------------------------------ */

struct sftp_chan {
	LIBSSH2_SESSION		*s;
	LIBSSH2_CHANNEL		*ch;
	int			 fd;
	long			 timeout;	/* seconds without progress */
	struct timespec		 end;		/* the run's deadline
						 * (CLOCK_MONOTONIC); 0: none */
	char			 end_why[256];	/* how it was reckoned */
	struct sftp		*p;
	size_t			 wlen;		/* a write that said EAGAIN:
						 * repeated with this length */
	bool			 read_again;	/* a read that said EAGAIN
						 * while sending: repeat it */
	bool			 broken;	/* the link failed: no more */
	bool			 noquickack;	/* fd is not TCP (a jump
						 * hop's socketpair) */
	int			 wake_fd;	/* readable: sftp_chan_wait
						 * returns (another thread has
						 * news); -1: none */
	unsigned char		 rbuf[65536];
};

/*
 * Open a session channel on the authenticated session and start the
 * "sftp" subsystem, non-blocking, within the opening's deadline (sc->end:
 * a silent server is said as such, naming the step); queue INIT; the
 * session stays non-blocking (requests may be queued at once; VERSION is
 * checked when it comes). -1 with e: ERR_TEMPFAIL when the link failed
 * or the time ran out, else ERR_PROTOCOL.
 */
int	sftp_chan_open(struct sftp_chan *c, const struct sshconn *sc,
	    const char *host, long timeout, unsigned max_reqs,
	    size_t max_bytes, struct err *e);

/*
 * Move bytes both ways and hand replies to their callbacks; return as
 * soon as something moved (so the caller can queue more), or -1 with e
 * when the link broke (c->broken, ERR_TEMPFAIL), nothing moved for
 * c->timeout seconds while requests were waiting (c->broken,
 * ERR_TEMPFAIL), c->end passed (c->broken, ERR_TEMPFAIL, with
 * c->end_why: a server that drips bytes or entries makes progress but
 * never ends), the server broke the protocol, or a callback failed.
 * With nothing to send or wait for, returns 0 at once.
 */
int	sftp_chan_wait(struct sftp_chan *c, struct err *e);

/* Free the engine; the channel ends with the session (sshconn_close),
 * without a round trip of its own. */
void	sftp_chan_close(struct sftp_chan *c);

#endif
