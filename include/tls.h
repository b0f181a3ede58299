/*
 * tls.h - OpenSSL client contexts for an identity: verification on by
 * default (CA store + the configured host name), an optional SHA-256 pin,
 * SNI, a client certificate. One context per identity per run; the same
 * checks serve libESMTP's STARTTLS and postie's own implicit TLS.
 */
#ifndef POSTIE_TLS_H
#define POSTIE_TLS_H

#include <pthread.h>
#include <stdbool.h>
#include <openssl/ssl.h>

#include "config.h"
#include "err.h"

struct tls_policy {
	SSL_CTX		*ctx;		/* NULL for tls none: no OpenSSL set-up */
	char		*host;		/* the name the certificate must carry */
	char		*pin;		/* "sha256:HEX" or NULL */
	bool		 is_ip;		/* host is an address: no SNI */
	bool		 own_ca;	/* tls-ca set */
	bool		 system;	/* verifies with the system's CAs
					 * (still to be set: tls_policy_system) */
	char		 reason[384];	/* why the last check failed */
};

/*
 * OpenSSL's first context in a process costs ~2 ms (openssl.cnf, its
 * providers, the algorithms a context fetches); later ones ~0.1 ms. And
 * the system's CA store (OpenSSL's default paths: on Debian a bundle of
 * ~140 certificates, parsed whole) costs ~20 ms more. tls_warm_start
 * pays both in a thread: the first while deliver reads its queue
 * (tls_warm_ready waits for it, before the first real context, so the
 * two do not both pay it), the store while the connection is made too
 * (tls_warm_finish waits for it, after the dial). The store is built
 * once a run and shared by every identity that verifies with it
 * (tls_wants_system). Without a thread tls_policy_* pay it all.
 */
struct tls_warm {
	pthread_t	 thread;
	bool		 running;	/* the thread is to be joined */
	bool		 want_system;	/* build the system store */
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	bool		 inited;	/* under lock: the first context done */
	X509_STORE	*system;	/* built (once joined), or NULL */
};

/* Does id verify with the system's CAs (TLS, no tls-ca, no pin)? */
bool	tls_wants_system(const struct identity *id);
/* Start the thread, building the system store too if want_system. */
void	tls_warm_start(struct tls_warm *w, bool want_system);
/* Wait for the first context (not the store); w may be NULL. */
void	tls_warm_ready(struct tls_warm *w);
/* Wait for all of it; w may be NULL. */
void	tls_warm_finish(struct tls_warm *w);
/* Finish, then free the store. */
void	tls_warm_free(struct tls_warm *w);

/* Build the context for id; -1 (ERR_CONFIG) if a file cannot be used.
 * The system's CAs, when id verifies with them, are left out: then
 * tls_policy_system is to be called before the handshake (a context
 * without them verifies nothing: fails closed). */
int	tls_policy_init(struct tls_policy *p, const struct identity *id,
	    struct err *e);
/* Give p the system's CAs if it needs them: w's store if w (finished)
 * has one, else loaded here. */
void	tls_policy_system(struct tls_policy *p, const struct tls_warm *w);
void	tls_policy_free(struct tls_policy *p);

/*
 * The verdict on an established connection: true if the peer's
 * certificate matches the pin (when one is set), else if its chain and
 * host name verified. On false, p->reason says which check failed.
 */
bool	tls_peer_ok(struct tls_policy *p, SSL *ssl);

/*
 * What a failed SSL_read or SSL_write (its result r, not > 0) means: 0
 * the peer closed (close_notify, or TCP closed without it: a crash or a
 * middlebox, said as a close and not as EPROTO's "Protocol error"; a
 * reply cut short is never taken whole either way), -1 broken (errno set;
 * EPROTO for a TLS error), TLS_AGAIN would block, *want then POLLIN or
 * POLLOUT.
 */
#define TLS_AGAIN	(-2)
int	tls_io_result(SSL *ssl, int r, short *want);

/* "sha256:AB12..." of a certificate (buf >= 7 + 64 + 1). */
void	tls_cert_fingerprint(X509 *cert, char *buf, size_t len);

#endif
