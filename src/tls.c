/* tls.c - client TLS contexts with verification, pins and SNI. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls.h"

static int policy_index = -1;

static struct tls_policy *
policy_of(SSL *ssl)
{
	return SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), policy_index);
}

void
tls_cert_fingerprint(X509 *cert, char *buf, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	size_t pos;

	snprintf(buf, len, "sha256:");
	pos = 7;
	if (X509_digest(cert, EVP_sha256(), md, &n) != 1)
		return;
	for (unsigned int i = 0; i < n && pos + 3 <= len; i++, pos += 2)
		snprintf(buf + pos, len - pos, "%02X", md[i]);
}

/*
 * With a pin the leaf's fingerprint decides; without one, OpenSSL's
 * verdict (chain to a trusted CA, validity, host name) stands. The first
 * failure is kept as the reason.
 */
/* What to do about a certificate that did not verify. */
static const char *
verify_hint(int err, bool own_ca)
{
	switch (err) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		return own_ca ? " (tls-ca holds no CA that signed it: point "
		    "it at the right one, or pin the server's certificate "
		    "with tls-fingerprint)" : " (a server with a CA of its "
		    "own: set tls-ca to that CA's certificate, or pin the "
		    "server's with tls-fingerprint)";
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return " (set host to a name the certificate carries)";
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return " (the certificate does not carry this address: set "
		    "host to a name it carries, or pin it with "
		    "tls-fingerprint)";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return " (is this machine's clock right? if so, the server's "
		    "certificate is out of date)";
	default:
		return "";
	}
}

static int
verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_policy *p = ssl ? policy_of(ssl) : NULL;

	if (p == NULL)
		return preverify_ok;
	if (p->pin != NULL) {
		X509 *leaf = X509_STORE_CTX_get0_cert(store);
		char fp[7 + 64 + 1];

		tls_cert_fingerprint(leaf, fp, sizeof(fp));
		if (strcmp(fp, p->pin) == 0)
			return 1;
		snprintf(p->reason, sizeof(p->reason), "the certificate's "
		    "fingerprint %s does not match tls-fingerprint", fp);
		return 0;
	}
	if (!preverify_ok && p->reason[0] == '\0') {
		int err = X509_STORE_CTX_get_error(store);

		snprintf(p->reason, sizeof(p->reason), "certificate "
		    "verification failed at depth %d: %s%s%s%s",
		    X509_STORE_CTX_get_error_depth(store),
		    X509_verify_cert_error_string(err),
		    err == X509_V_ERR_HOSTNAME_MISMATCH ? " for " : "",
		    err == X509_V_ERR_HOSTNAME_MISMATCH ? p->host : "",
		    verify_hint(err, p->own_ca));
	}
	return preverify_ok;
}

/* SNI for connections whose SSL object libESMTP creates. */
static void
info_cb(const SSL *ssl, int where, int ret)
{
	struct tls_policy *p;

	(void)ret;
	if (!(where & SSL_CB_HANDSHAKE_START))
		return;
	p = policy_of((SSL *)ssl);
	if (p != NULL && !p->is_ip && SSL_get_servername((SSL *)ssl,
	    TLSEXT_NAMETYPE_host_name) == NULL)
		SSL_set_tlsext_host_name((SSL *)ssl, p->host);
}

static bool
is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1;
}

static void *
warm_main(void *arg)
{
	struct tls_warm *w = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx != NULL)
		SSL_CTX_free(ctx);
	pthread_mutex_lock(&w->lock);
	w->inited = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->want_system && (w->system = X509_STORE_new()) != NULL)
		/* as SSL_CTX_set_default_verify_paths does, its result
		 * unchecked alike: a store without them verifies nothing */
		(void)X509_STORE_set_default_paths(w->system);
	ERR_clear_error();
	return NULL;
}

bool
tls_wants_system(const struct identity *id)
{
	return id->tls != TLS_NONE && id->tls_ca == NULL &&
	    id->tls_fingerprint == NULL;
}

void
tls_warm_start(struct tls_warm *w, bool want_system)
{
	if (w->running || w->system != NULL)
		return;
	w->want_system = want_system;
	w->inited = false;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->running = pthread_create(&w->thread, NULL, warm_main, w) == 0;
	if (!w->running) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
	}
}

void
tls_warm_ready(struct tls_warm *w)
{
	if (w == NULL || !w->running)
		return;
	pthread_mutex_lock(&w->lock);
	while (!w->inited)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

void
tls_warm_finish(struct tls_warm *w)
{
	if (w == NULL || !w->running)
		return;
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	w->running = false;
}

void
tls_warm_free(struct tls_warm *w)
{
	tls_warm_finish(w);
	X509_STORE_free(w->system);
	w->system = NULL;
}

int
tls_policy_init(struct tls_policy *p, const struct identity *id,
    struct err *e)
{
	X509_VERIFY_PARAM *param;

	memset(p, 0, sizeof(*p));
	if (id->tls == TLS_NONE) {
		/* no TLS: no context at all (creating one initializes
		 * OpenSSL, reads openssl.cnf and loads its providers, a few
		 * milliseconds of every plain run) */
		p->host = xstrdup(id->host);
		return 0;
	}
	if (policy_index < 0)
		policy_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
		    NULL);
	p->ctx = SSL_CTX_new(TLS_client_method());
	if (p->ctx == NULL)
		return err_set(e, ERR_SOFTWARE, "cannot create a TLS context");
	p->host = xstrdup(id->host);
	p->pin = id->tls_fingerprint ? xstrdup(id->tls_fingerprint) : NULL;
	SSL_CTX_set_min_proto_version(p->ctx, TLS1_2_VERSION);
	SSL_CTX_set_ex_data(p->ctx, policy_index, p);
	SSL_CTX_set_verify(p->ctx, SSL_VERIFY_PEER, verify_cb);
	SSL_CTX_set_info_callback(p->ctx, info_cb);
	param = SSL_CTX_get0_param(p->ctx);
	X509_VERIFY_PARAM_set_hostflags(param,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	p->is_ip = is_ip_literal(id->host);
	if ((p->is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, id->host) :
	    X509_VERIFY_PARAM_set1_host(param, id->host, 0)) != 1) {
		tls_policy_free(p);
		return err_set(e, ERR_CONFIG, "cannot check certificates "
		    "for host '%s'", id->host);
	}
	p->own_ca = id->tls_ca != NULL;
	if (id->tls_ca != NULL) {
		if (SSL_CTX_load_verify_locations(p->ctx, id->tls_ca,
		    NULL) != 1) {
			/* why: the file, or what is in it */
			const char *why = access(id->tls_ca, R_OK) < 0 ?
			    strerror(errno) : "no PEM certificate in it";

			ERR_clear_error();
			tls_policy_free(p);
			return err_set(e, ERR_CONFIG, "cannot load tls-ca %s: "
			    "%s", id->tls_ca, why);
		}
	} else
		/* with a pin, the pin alone decides (verify_cb,
		 * tls_peer_ok): no store to load */
		p->system = id->tls_fingerprint == NULL;
	if (id->tls_cert != NULL) {
		const char *key = id->tls_key ? id->tls_key : id->tls_cert;

		if (SSL_CTX_use_certificate_chain_file(p->ctx,
		    id->tls_cert) != 1 || SSL_CTX_use_PrivateKey_file(p->ctx,
		    key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(p->ctx) != 1) {
			tls_policy_free(p);
			ERR_clear_error();
			return err_set(e, ERR_CONFIG, "cannot use the client "
			    "certificate %s (and key %s)", id->tls_cert, key);
		}
	}
	return 0;
}

void
tls_policy_system(struct tls_policy *p, const struct tls_warm *w)
{
	if (!p->system)
		return;
	p->system = false;
	if (w != NULL && !w->running && w->system != NULL)
		SSL_CTX_set1_cert_store(p->ctx, w->system);
	else
		SSL_CTX_set_default_verify_paths(p->ctx);
}

void
tls_policy_free(struct tls_policy *p)
{
	if (p->ctx != NULL)
		SSL_CTX_free(p->ctx);
	free(p->host);
	free(p->pin);
	memset(p, 0, sizeof(*p));
}

bool
tls_peer_ok(struct tls_policy *p, SSL *ssl)
{
	X509 *cert = SSL_get1_peer_certificate(ssl);
	bool ok;

	if (cert == NULL) {
		snprintf(p->reason, sizeof(p->reason), "the server sent no "
		    "certificate");
		return false;
	}
	if (p->pin != NULL) {
		char fp[7 + 64 + 1];

		tls_cert_fingerprint(cert, fp, sizeof(fp));
		ok = strcmp(fp, p->pin) == 0;
		if (!ok)
			snprintf(p->reason, sizeof(p->reason), "the "
			    "certificate's fingerprint %s does not match "
			    "tls-fingerprint", fp);
	} else {
		long v = SSL_get_verify_result(ssl);

		ok = v == X509_V_OK;
		if (!ok && p->reason[0] == '\0')
			snprintf(p->reason, sizeof(p->reason), "certificate "
			    "verification failed: %s",
			    X509_verify_cert_error_string(v));
	}
	X509_free(cert);
	return ok;
}

int
tls_io_result(SSL *ssl, int r, short *want)
{
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:
		*want = POLLIN;
		return TLS_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		*want = POLLOUT;
		return TLS_AGAIN;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == EAGAIN || errno == EINTR) {
			*want = POLLIN;
			return TLS_AGAIN;
		}
		return r == 0 || errno == 0 ? 0 : -1;
	default:
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return 0;
		}
		ERR_clear_error();
		if (errno == 0)
			errno = EPROTO;
		return -1;
	}
}
