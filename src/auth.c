/* auth.c - SMTP AUTH mechanisms, offers and challenges; no I/O. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "util.h"

/* Add the mechanism names in s[0..n) (space-separated) to o. */
static void
add_names(struct auth_offer *o, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		char name[32];
		size_t k = 0, used = strlen(o->names);
		int m;

		while (i < n && s[i] == ' ')
			i++;
		while (i + k < n && s[i + k] != ' ')
			k++;
		if (k == 0)
			break;
		snprintf(name, sizeof(name), "%.*s", (int)(k < 31 ? k : 31),
		    s + i);
		i += k;
		if ((m = auth_mech_parse(name)) >= 0) {
			if (o->mask & (1u << m))
				continue;
			o->mask |= 1u << m;
		}
		if (used + strlen(name) + 2 <= sizeof(o->names))
			snprintf(o->names + used, sizeof(o->names) - used,
			    "%s%s", used ? " " : "", name);
	}
}

void
auth_parse_offer(const struct reply *ehlo, struct auth_offer *o)
{
	size_t in = 0;

	memset(o, 0, sizeof(*o));
	if (!ehlo->done || ehlo->code != 250)
		return;
	while (in < ehlo->len) {
		const char *line = ehlo->buf + in;
		const char *nl = memchr(line, '\n', ehlo->len - in);
		size_t n = nl ? (size_t)(nl - line) + 1 : ehlo->len - in;
		size_t text = n;

		/* "250-AUTH ..." or "250 AUTH ...", never the first line */
		while (text > 0 && (line[text - 1] == '\n' ||
		    line[text - 1] == '\r'))
			text--;
		if (in > 0 && text > 8 && strncasecmp(line + 4, "AUTH", 4) ==
		    0 && (line[8] == ' ' || line[8] == '='))
			add_names(o, line + 9, text - 9);
		in += n;
	}
}

static const int default_order[] = { AUTH_PLAIN, AUTH_LOGIN,
    AUTH_CRAM_MD5 };

int
auth_choose(const int *allowed, size_t n, const struct auth_offer *o)
{
	if (n == 0) {
		allowed = default_order;
		n = sizeof(default_order) / sizeof(default_order[0]);
	}
	for (size_t i = 0; i < n; i++)
		if (allowed[i] >= 0 && allowed[i] < AUTH_NMECH &&
		    (o->mask & (1u << allowed[i])))
			return allowed[i];
	return -1;
}

void
auth_allowed_text(const int *allowed, size_t n, char *out, size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	out[0] = '\0';
	if (n == 0) {
		allowed = default_order;
		n = sizeof(default_order) / sizeof(default_order[0]);
	}
	for (size_t i = 0; i < n && o < len; i++) {
		if (allowed[i] < 0 || allowed[i] >= AUTH_NMECH)
			continue;
		o += (size_t)snprintf(out + o, len - o, "%s%s", o ? " " : "",
		    auth_mech_names[allowed[i]]);
	}
}

char *
auth_b64_encode(const unsigned char *in, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

unsigned char *
auth_b64_decode(const char *in, size_t n, size_t *outlen)
{
	unsigned char *out;
	int r;
	size_t pad = 0;

	if (n % 4 != 0)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '=') {
			if (i < n - 2 || (i == n - 2 && in[n - 1] != '='))
				return NULL;
			pad++;
		} else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' &&
		    c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
		    c == '/'))
			return NULL;
	}
	out = xmalloc(n / 4 * 3 + 1);
	r = n == 0 ? 0 : EVP_DecodeBlock(out, (const unsigned char *)in,
	    (int)n);
	if (r < 0 || (size_t)r < pad) {
		free(out);
		return NULL;
	}
	*outlen = (size_t)r - pad;
	out[*outlen] = '\0';
	return out;
}

/* base64 of s[0..n), then s wiped and freed. */
static char *
encode_wipe(char *s, size_t n)
{
	char *b = auth_b64_encode((unsigned char *)s, n);

	OPENSSL_cleanse(s, n);
	free(s);
	return b;
}

/* RFC 7628's saslname: ',' and '=' escaped. */
static char *
saslname(const char *user)
{
	struct strbuf b;

	sb_init(&b);
	for (const char *p = user; *p != '\0'; p++) {
		if (*p == ',')
			sb_add(&b, "=2C", 3);
		else if (*p == '=')
			sb_add(&b, "=3D", 3);
		else
			sb_add(&b, p, 1);
	}
	sb_add(&b, "", 0);
	return sb_steal(&b);
}

static char *
cram_md5(const char *user, const char *secret, const unsigned char *ch,
    size_t clen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t ulen = strlen(user), n = ulen + 1 + 32;
	char *s;

	if (HMAC(EVP_md5(), secret, (int)strlen(secret), ch, clen, mac,
	    &maclen) == NULL || maclen != 16)
		return NULL;
	s = xmalloc(n + 1);
	memcpy(s, user, ulen);
	s[ulen] = ' ';
	for (unsigned i = 0; i < 16; i++)
		snprintf(s + ulen + 1 + 2 * i, 3, "%02x", mac[i]);
	OPENSSL_cleanse(mac, sizeof(mac));
	return encode_wipe(s, n);
}

char *
auth_response(enum auth_mech mech, int step, const char *user,
    const char *secret, const char *host, int port,
    const unsigned char *challenge, size_t clen)
{
	char *s, *name;
	int n;

	switch (mech) {
	case AUTH_PLAIN: {
		size_t u = strlen(user), p = strlen(secret);

		if (step != 0)
			return NULL;
		s = xmalloc(u + p + 2);
		s[0] = '\0';
		memcpy(s + 1, user, u);
		s[1 + u] = '\0';
		memcpy(s + 2 + u, secret, p);
		return encode_wipe(s, u + p + 2);
	}
	case AUTH_LOGIN:
		if (step == 0)
			return auth_b64_encode((const unsigned char *)user,
			    strlen(user));
		if (step != 1)
			return NULL;
		return auth_b64_encode((const unsigned char *)secret,
		    strlen(secret));
	case AUTH_CRAM_MD5:
		return step == 0 && challenge != NULL ? cram_md5(user, secret,
		    challenge, clen) : NULL;
	case AUTH_XOAUTH2:
		if (step != 0)
			return NULL;
		n = asprintf(&s, "user=%s\001auth=Bearer %s\001\001", user,
		    secret);
		if (n < 0)
			return NULL;
		return encode_wipe(s, (size_t)n);
	case AUTH_OAUTHBEARER:
		if (step != 0)
			return NULL;
		name = saslname(user);
		n = asprintf(&s, "n,a=%s,\001host=%s\001port=%d\001auth=Bearer "
		    "%s\001\001", name, host, port, secret);
		free(name);
		if (n < 0)
			return NULL;
		return encode_wipe(s, (size_t)n);
	default:
		return NULL;
	}
}

bool
auth_inline(enum auth_mech mech, size_t n)
{
	const char *name = auth_mech_names[mech];

	/* Microsoft documents XOAUTH2 with the response after the 334; it
	 * is what Google takes too */
	if (mech == AUTH_XOAUTH2 || mech == AUTH_LOGIN ||
	    mech == AUTH_CRAM_MD5)
		return false;
	return strlen("AUTH ") + strlen(name) + 1 + n + 2 <= AUTH_LINE_MAX;
}

void
auth_wipe(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* Skip JSON white space. */
static size_t
ws(const unsigned char *j, size_t i, size_t n)
{
	while (i < n && (j[i] == ' ' || j[i] == '\t' || j[i] == '\r' ||
	    j[i] == '\n'))
		i++;
	return i;
}

bool
auth_oauth_status(const unsigned char *json, size_t n, char *out, size_t len)
{
	static const char key[] = "\"status\"";
	size_t k = sizeof(key) - 1;

	if (len == 0)
		return false;
	for (size_t i = 0; i + k <= n; i++) {
		size_t j, o = 0;

		if (memcmp(json + i, key, k) != 0)
			continue;
		j = ws(json, i + k, n);
		if (j >= n || json[j] != ':')
			continue;
		j = ws(json, j + 1, n);
		if (j >= n || json[j] != '"')
			continue;
		for (j++; j < n && json[j] != '"' && o + 1 < len; j++) {
			unsigned long c = json[j];

			if (c == '\\' && j + 1 < n) {
				c = json[++j];
				/* \uXXXX: the code point (a control character
				 * or non-ASCII one is shown as '?'); \n, \t
				 * and the like are control characters */
				if (c == 'u' && j + 4 < n &&
				    isxdigit(json[j + 1]) && isxdigit(json[j + 2]) &&
				    isxdigit(json[j + 3]) && isxdigit(json[j + 4])) {
					char hex[5] = { (char)json[j + 1],
					    (char)json[j + 2], (char)json[j + 3],
					    (char)json[j + 4], '\0' };

					c = strtoul(hex, NULL, 16);
					j += 4;
				} else if (strchr("bfnrt", (int)c) != NULL)
					c = 0;
			}
			out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
		}
		out[o] = '\0';
		return o > 0;
	}
	return false;
}
