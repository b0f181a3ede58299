/*
 * sshconn.h - one verified, authenticated SSH session (libssh2).
 *
 * The way to the server comes from postie's settings joined with
 * ~/.ssh/config (sshroute.h), through ProxyJump hops when it names some
 * (sshjump.h), each hop's host key checked like the server's.
 *
 * Used by the SMTP tunnel (tunnel.h) and by fetch. The server's host key
 * is checked before anything is sent: against ssh-fingerprint when set
 * (the pin decides alone), otherwise against known_hosts (default
 * ~/.ssh/known_hosts; hashed entries and [host]:port work). An unknown or
 * changed key refuses the session and names the key's fingerprint. User
 * authentication: ssh-key when set; otherwise ssh-agent, then
 * ~/.ssh/id_ed25519 and ~/.ssh/id_ecdsa. libssh2 1.10 cannot sign with
 * rsa-sha2, so RSA keys do not work against OpenSSH 8.8 and later.
 */
#ifndef POSTIE_SSHCONN_H
#define POSTIE_SSHCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <libssh2.h>

#include "config.h"
#include "err.h"

/* What a session needs: an identity's or a fetch job's ssh settings. */
struct ssh_params {
	const struct ssh_target	*target;
	const char		*key;		/* NULL: agent, then ~/.ssh/id_* */
	const char		*known_hosts;	/* NULL: ~/.ssh/known_hosts */
	const char		*fingerprint;	/* "SHA256:..." pin, or NULL */
	const struct route	*route;		/* proxy, source; NULL: direct */
	long			 connect_timeout;	/* seconds */
	long			 timeout;	/* seconds: the opening after
						 * the TCP connect, and each
						 * blocking step later */
	struct timespec		 end;	/* a deadline the opening must
					 * keep too (CLOCK_MONOTONIC);
					 * 0: none */
	bool			 verbose;	/* steps to stderr */
	const char		*prog;		/* "deliver", "fetch" */
	const char *const	*ssh_config;	/* NULL: ~/.ssh/config, then
						 * /etc/ssh/ssh_config */
	size_t			 ssh_config_n;
};

struct ssh_hop;
struct sshjump;

struct sshconn {
	int			 fd;
	LIBSSH2_SESSION		*s;
	char			 fp[64];	/* "SHA256:..." of the host key */
	char			 keytype[32];	/* "ssh-ed25519" ... */
	bool			 unreachable;	/* DNS or connect failed */
	bool			 no_goodbye;	/* close without a disconnect */
	struct sshjump		*jump;		/* the ProxyJump hops, or NULL */
	/* the opening's deadline: the handshake, the login and the start
	 * of a channel (sftp_chan_open) all fit in `timeout' seconds
	 * from the TCP connection, however the server drips */
	struct timespec		 end;
	long			 timeout;
};

/* Milliseconds left of the opening (<= 0: none). */
long	sshconn_left_ms(const struct sshconn *c);
/*
 * Wait for the session's socket as libssh2 asks (a non-blocking call said
 * EAGAIN), at most left_ms and 1 s, ACKing what came first: sshd writes a
 * session's packets with Nagle on (TCP_NODELAY is for terminals), so the
 * second piece of a reply (a channel's confirmation after the host keys
 * it announces, a window after a confirmation) waits for the ACK of the
 * first, which Linux delays 40 ms when we have nothing to send with it
 * (util_quickack). -1: poll failed.
 */
int	sshconn_wait(const struct sshconn *c, long left_ms);
/* The error for an opening step that ran out of time: names the server,
 * the timeout and what was waited for. ERR_TEMPFAIL, -1. */
int	sshconn_late(const struct sshconn *c, const char *host,
	    const char *what, struct err *e);

/* Connect (within connect_timeout), check the host key, authenticate
 * (all within timeout of the connection, and p->end). On failure
 * everything is closed, c->unreachable says whether the server could not
 * be reached. */
int	sshconn_open(const struct ssh_params *p, struct sshconn *c,
	    struct err *e);
void	sshconn_close(struct sshconn *c);

/* A session with hop h over fd (connected to it; c owns it, open or
 * not); last: h is the server (ssh-fingerprint applies); jump: the hop
 * whose channel fd is, or NULL: a TCP connection (through p's proxy if
 * it has one), for -v. */
int	sshconn_start(const struct ssh_params *p, const struct ssh_hop *h,
	    bool last, const struct ssh_hop *jump, int fd, struct sshconn *c,
	    struct err *e);

/* "SHA256:" + unpadded base64 of a 32-byte hash, as ssh-keygen -l prints
 * it; out holds at least 7 + 44 bytes. */
void	sshconn_fp_format(const unsigned char hash[32], char *out,
	    size_t len);

/* Did the session's last call fail because the link broke or timed out
 * (a deferral), rather than because the server said no? */
bool	sshconn_link_failed(LIBSSH2_SESSION *s);

/* The error class for a failure of the session's last call: link
 * trouble is ERR_TEMPFAIL, anything else refusal. */
enum err_code sshconn_class(LIBSSH2_SESSION *s, enum err_code refusal);

/* The libssh2 error text of the session, for a message. */
const char *sshconn_errmsg(LIBSSH2_SESSION *s);

#endif
