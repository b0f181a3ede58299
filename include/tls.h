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
	char		 reason[384];	/* why the last check failed */
};

/*
 * OpenSSL's first context in a process costs ~2 ms (openssl.cnf, its
 * providers, the algorithms a context fetches); later ones ~0.1 ms.
 * tls_warm_start pays that in a thread while deliver reads its queue;
 * tls_warm_finish waits for it (before the first real context, so the
 * two do not both pay it, and before the run ends). Without a thread the
 * first tls_policy_init pays it, as before.
 */
struct tls_warm {
	pthread_t	 thread;
	bool		 running;
};

void	tls_warm_start(struct tls_warm *w);
void	tls_warm_finish(struct tls_warm *w);

/* Build the context for id; -1 (ERR_CONFIG) if a file cannot be used. */
int	tls_policy_init(struct tls_policy *p, const struct identity *id,
	    struct err *e);
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
