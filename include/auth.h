/*
 * auth.h - SMTP AUTH as postie speaks it (RFC 4954): which mechanism,
 * what to send, what a server's challenge or error says. No I/O here:
 * session.c sends and reads; every function is pure and unit-tested.
 *
 * Mechanisms: PLAIN, LOGIN, CRAM-MD5 (HMAC-MD5), XOAUTH2 (Google's and
 * Microsoft's framing) and OAUTHBEARER (RFC 7628). The secret is a
 * password, or for XOAUTH2 and OAUTHBEARER an access token; responses
 * that carry it are built in memory the caller wipes with auth_wipe().
 */
#ifndef POSTIE_AUTH_H
#define POSTIE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

#include "reply.h"

enum auth_mech {
	AUTH_PLAIN,
	AUTH_LOGIN,
	AUTH_CRAM_MD5,
	AUTH_XOAUTH2,
	AUTH_OAUTHBEARER,
	AUTH_NMECH
};

/* The names, as SMTP spells them (also the values of the `auth` key). */
static const char *const auth_mech_names[AUTH_NMECH] = {
	"PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"
};

/* A mechanism by name (any case); -1 if postie has no such mechanism. */
static inline int
auth_mech_parse(const char *name)
{
	for (int i = 0; i < AUTH_NMECH; i++)
		if (strcasecmp(name, auth_mech_names[i]) == 0)
			return i;
	return -1;
}

/*
 * The longest AUTH command line postie sends with an initial response,
 * CRLF included: RFC 5321's 512 octets for a command line, which every
 * server takes (RFC 4954 lets a server take 12,288, not every one does).
 * A longer response (an OAuth2 token) goes alone after the server's 334.
 */
#define AUTH_LINE_MAX	512

/* What a server offers: its EHLO AUTH keyword(s). */
struct auth_offer {
	unsigned	 mask;		/* 1 << enum auth_mech, known ones */
	char		 names[256];	/* every name offered, as sent, for a
					 * reason ("PLAIN LOGIN GSSAPI") */
};

/*
 * Read the AUTH mechanisms from a done EHLO reply: "250-AUTH A B C", and
 * the old "250-AUTH=A B C" form; several AUTH lines add up. Names postie
 * does not know go to names[] only; a reply without AUTH gives mask 0
 * and names "".
 */
void	auth_parse_offer(const struct reply *ehlo, struct auth_offer *o);

/*
 * The mechanism to use: the first of allowed[0..n) the server offers;
 * with n == 0 the default order PLAIN, LOGIN, CRAM-MD5 (XOAUTH2 and
 * OAUTHBEARER only when allowed names them). -1 if none fits.
 */
int	auth_choose(const int *allowed, size_t n, const struct auth_offer *o);

/* "PLAIN LOGIN CRAM-MD5" for allowed[0..n) (n == 0: the default). */
void	auth_allowed_text(const int *allowed, size_t n, char *out,
	    size_t len);

/*
 * The base64 response of step (0, 1, ...) of mech: PLAIN, XOAUTH2 and
 * OAUTHBEARER have step 0 only (on the AUTH line or after the first 334);
 * LOGIN step 0 is the user, step 1 the secret; CRAM-MD5 step 0 answers
 * challenge[0..clen), the decoded 334 text. host and port
 * are the server's, for OAUTHBEARER. NULL for a step the mechanism does
 * not have. The result holds the secret: free it with auth_wipe().
 */
char	*auth_response(enum auth_mech mech, int step, const char *user,
	    const char *secret, const char *host, int port,
	    const unsigned char *challenge, size_t clen);

/* Does mech send its response on the AUTH line (n bytes of base64)? */
bool	auth_inline(enum auth_mech mech, size_t n);

/* Zero s (its strlen) and free it; NULL is fine. */
void	auth_wipe(char *s);

/*
 * base64 of in[0..n), NUL-terminated, malloc'd. auth_b64_decode: the
 * bytes of a base64 text (whitespace and a bare "=" end refused) into a
 * malloc'd buffer with a NUL after them (*outlen without it); NULL if
 * the text is not base64.
 */
char	*auth_b64_encode(const unsigned char *in, size_t n);
unsigned char *auth_b64_decode(const char *in, size_t n, size_t *outlen);

/*
 * The status of an XOAUTH2 / OAUTHBEARER error challenge: the decoded
 * 334 text is JSON such as {"status":"invalid_token",...} or
 * {"status":"401","schemes":"bearer",...}. Writes the "status" string
 * value, printable ASCII, into out; false if there is none.
 */
bool	auth_oauth_status(const unsigned char *json, size_t n, char *out,
	    size_t len);

#endif
