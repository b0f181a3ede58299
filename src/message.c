/* message.c - RFC 5322 header sections and address lists. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "message.h"

enum line_kind
msg_line_kind(const char *line, size_t len)
{
	size_t i = 0;

	if (len == 0 || line[0] == '\n' ||
	    (len >= 2 && line[0] == '\r' && line[1] == '\n') ||
	    (len == 1 && line[0] == '\r'))
		return LINE_BLANK;
	if (line[0] == ' ' || line[0] == '\t')
		return LINE_CONT;
	while (i < len && (unsigned char)line[i] > ' ' &&
	    (unsigned char)line[i] < 0x7f && line[i] != ':')
		i++;
	if (i == 0)
		return LINE_OTHER;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;	/* obsolete "Name :" */
	return i < len && line[i] == ':' ? LINE_FIELD : LINE_OTHER;
}

void
hdr_parse(struct headers *h, const char *buf, size_t len)
{
	size_t pos = 0, cap = 0;

	h->buf = buf;
	h->len = len;
	h->f = NULL;
	h->n = 0;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) + 1 : len;
		enum line_kind k = msg_line_kind(buf + pos, end - pos);

		if (k == LINE_CONT && h->n > 0) {
			h->f[h->n - 1].end = end;
		} else if (k == LINE_FIELD) {
			size_t nl_len = 0;

			while (buf[pos + nl_len] != ':' &&
			    buf[pos + nl_len] != ' ' &&
			    buf[pos + nl_len] != '\t')
				nl_len++;
			if (h->n == cap) {
				cap = cap ? cap * 2 : 16;
				h->f = xrealloc(h->f, cap * sizeof(*h->f));
			}
			h->f[h->n].start = pos;
			h->f[h->n].end = end;
			h->f[h->n].name_len = nl_len;
			h->n++;
		}
		/* Anything else cannot be in a block the reader built. */
		pos = end;
	}
}

void
hdr_free(struct headers *h)
{
	free(h->f);
	h->f = NULL;
	h->n = 0;
}

long
hdr_find(const struct headers *h, const char *name, size_t from)
{
	size_t nlen = strlen(name);

	for (size_t i = from; i < h->n; i++)
		if (h->f[i].name_len == nlen &&
		    strncasecmp(h->buf + h->f[i].start, name, nlen) == 0)
			return (long)i;
	return -1;
}

char *
hdr_value(const struct headers *h, size_t i)
{
	const struct field *f = &h->f[i];
	const char *p = memchr(h->buf + f->start, ':', f->end - f->start);
	const char *end = h->buf + f->end;
	struct strbuf sb;

	sb_init(&sb);
	sb_add(&sb, "", 0);
	for (p++; p < end; p++) {
		if (*p == '\r' || *p == '\n')
			continue;	/* unfold: drop the line break only */
		sb_addc(&sb, *p);
	}
	while (sb.len > 0 && (sb.s[sb.len - 1] == ' ' ||
	    sb.s[sb.len - 1] == '\t'))
		sb.s[--sb.len] = '\0';
	{
		size_t lead = strspn(sb.s, " \t");

		memmove(sb.s, sb.s + lead, sb.len - lead + 1);
		sb.len -= lead;
	}
	return sb_steal(&sb);
}

/* --- address lists ---------------------------------------------------- */

enum tok_kind { T_WORD, T_QSTR, T_DLIT, T_SPECIAL };

struct tok {
	enum tok_kind	 kind;
	const char	*s;
	size_t		 len;
};

struct toks {
	struct tok	*t;
	size_t		 n;
	size_t		 cap;
};

static void
toks_push(struct toks *ts, enum tok_kind k, const char *s, size_t len)
{
	if (ts->n == ts->cap) {
		ts->cap = ts->cap ? ts->cap * 2 : 16;
		ts->t = xrealloc(ts->t, ts->cap * sizeof(*ts->t));
	}
	ts->t[ts->n].kind = k;
	ts->t[ts->n].s = s;
	ts->t[ts->n].len = len;
	ts->n++;
}

static bool
is_special(char c)
{
	return strchr("<>,:;@.[]()\"\\", c) != NULL;
}

/* Tokenize: comments dropped, blanks separate, specials stand alone. */
static int
tokenize(const char *s, struct toks *ts, const char **bad)
{
	const char *p = s;

	while (*p) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			p++;
		} else if (*p == '(') {
			int depth = 0;

			do {
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
				p++;
			} while (depth > 0 && *p);
			if (depth > 0) {
				*bad = "unclosed comment";
				return -1;
			}
		} else if (*p == '"') {
			const char *start = p++;

			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (*p != '"') {
				*bad = "unclosed quoted string";
				return -1;
			}
			p++;
			toks_push(ts, T_QSTR, start, (size_t)(p - start));
		} else if (*p == '[') {
			const char *start = p;

			while (*p && *p != ']')
				p++;
			if (*p != ']') {
				*bad = "unclosed domain literal";
				return -1;
			}
			p++;
			toks_push(ts, T_DLIT, start, (size_t)(p - start));
		} else if (*p == ')' || *p == ']' || *p == '\\') {
			*bad = "stray special character";
			return -1;
		} else if (is_special(*p)) {
			toks_push(ts, T_SPECIAL, p, 1);
			p++;
		} else {
			const char *start = p;

			while (*p && !is_special(*p) && *p != ' ' &&
			    *p != '\t' && *p != '\r' && *p != '\n')
				p++;
			toks_push(ts, T_WORD, start, (size_t)(p - start));
		}
	}
	return 0;
}

static bool
tok_is(const struct tok *t, char c)
{
	return t->kind == T_SPECIAL && t->s[0] == c;
}

/*
 * An addr-spec from tokens [a, b): local-part "@" domain, or one word
 * (a local recipient). Returns NULL if the tokens are no addr-spec.
 */
static char *
addr_spec(const struct tok *t, size_t a, size_t b)
{
	struct strbuf sb;
	size_t at = b;
	bool want_word = true;

	if (a >= b)
		return NULL;
	for (size_t i = a; i < b; i++)
		if (tok_is(&t[i], '@')) {
			at = i;
			break;
		}
	/* local-part: word *("." word), obsolete forms allow empty dots */
	for (size_t i = a; i < at; i++) {
		if (want_word && (t[i].kind == T_WORD || t[i].kind == T_QSTR))
			want_word = false;
		else if (!want_word && tok_is(&t[i], '.'))
			want_word = true;
		else
			return NULL;
	}
	if (want_word)
		return NULL;
	if (at < b) {
		want_word = true;
		if (at + 1 == b)
			return NULL;
		for (size_t i = at + 1; i < b; i++) {
			if (want_word && (t[i].kind == T_WORD ||
			    (t[i].kind == T_DLIT && i == at + 1 && i + 1 == b)))
				want_word = false;
			else if (!want_word && tok_is(&t[i], '.'))
				want_word = true;
			else
				return NULL;
		}
		if (want_word)
			return NULL;
	}
	sb_init(&sb);
	for (size_t i = a; i < b; i++)
		sb_add(&sb, t[i].s, t[i].len);
	return sb_steal(&sb);
}

/* One mailbox from tokens [a, b): name-addr or addr-spec. */
static int
mailbox(const struct tok *t, size_t a, size_t b, struct strvec *out,
    const char **bad)
{
	size_t lt = b, gt = b;
	char *addr;

	if (a == b)
		return 0;	/* empty list element */
	for (size_t i = a; i < b; i++) {
		if (tok_is(&t[i], '<') && lt == b)
			lt = i;
		else if (tok_is(&t[i], '>') && lt != b) {
			gt = i;
			break;
		}
	}
	if (lt != b) {
		size_t s = lt + 1;

		if (gt == b) {
			*bad = "'<' without '>'";
			return -1;
		}
		if (gt + 1 != b) {
			*bad = "text after '>'";
			return -1;
		}
		if (s == gt)
			return 0;	/* "<>" */
		/* obsolete route: <@a,@b:user@host> */
		for (size_t i = s; i < gt; i++)
			if (tok_is(&t[i], ':'))
				s = i + 1;
		addr = addr_spec(t, s, gt);
	} else
		addr = addr_spec(t, a, b);
	if (addr == NULL) {
		*bad = "not an address";
		return -1;
	}
	sv_push_owned(out, addr);
	return 0;
}

int
addr_parse_list(const char *value, struct strvec *out, const char **bad)
{
	struct toks ts = { 0 };
	size_t start = 0;
	bool in_angle = false, in_group = false;
	int rc = 0;

	if (tokenize(value, &ts, bad) < 0) {
		free(ts.t);
		return -1;
	}
	for (size_t i = 0; i <= ts.n && rc == 0; i++) {
		const struct tok *t = i < ts.n ? &ts.t[i] : NULL;

		if (t != NULL && tok_is(t, '<'))
			in_angle = true;
		else if (t != NULL && tok_is(t, '>'))
			in_angle = false;
		if (t != NULL && in_angle)
			continue;
		if (t != NULL && tok_is(t, ':')) {
			/* "display name:" opens a group */
			if (in_group) {
				*bad = "a group inside a group";
				rc = -1;
				break;
			}
			for (size_t j = start; j < i; j++)
				if (ts.t[j].kind == T_SPECIAL &&
				    !tok_is(&ts.t[j], '.')) {
					*bad = "':' in the wrong place";
					rc = -1;
				}
			in_group = true;
			start = i + 1;
		} else if (t == NULL || tok_is(t, ',') || tok_is(t, ';')) {
			if (t != NULL && tok_is(t, ';')) {
				if (!in_group) {
					*bad = "';' outside a group";
					rc = -1;
					break;
				}
				in_group = false;
			}
			if (mailbox(ts.t, start, i, out, bad) < 0)
				rc = -1;
			start = i + 1;
		}
	}
	if (rc == 0 && in_angle) {
		*bad = "'<' without '>'";
		rc = -1;
	}
	free(ts.t);
	return rc;
}

bool
addr_valid_envelope(const char *addr, const char **why)
{
	bool quoted = false, escaped = false;
	size_t len = strlen(addr);

	if (len == 0) {
		*why = "is empty";
		return false;
	}
	if (len > 254) {
		*why = "is longer than 254 bytes";
		return false;
	}
	for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
		if (*p >= 0x80) {
			/* punycode (xn--) exists for domains only */
			const char *at = strrchr(addr, '@');

			*why = at != NULL && (const char *)p > at ?
			    "has a non-ASCII domain (SMTPUTF8 is not "
			    "supported: write the domain in its ASCII "
			    "xn-- form)" :
			    "has a non-ASCII local part (SMTPUTF8 is not "
			    "supported, and a local part has no ASCII form: "
			    "use an ASCII address)";
			return false;
		}
		if (*p < 0x20 || *p == 0x7f) {
			*why = "has control characters";
			return false;
		}
		/* A quoted-pair's second byte is checked above, too. */
		if (escaped)
			escaped = false;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '\\' && quoted)
			escaped = true;
		else if (!quoted && (*p == ' ' || *p == '<' || *p == '>' ||
		    *p == '(' || *p == ')' || *p == ',' || *p == ';')) {
			*why = "has a blank or special character outside "
			    "quotes";
			return false;
		}
	}
	if (quoted) {
		*why = "has an unclosed quote";
		return false;
	}
	return true;
}

bool
addr_list_contains(const struct strvec *list, const char *addr)
{
	for (size_t i = 0; i < list->n; i++)
		if (strcasecmp(list->v[i], addr) == 0)
			return true;
	return false;
}

void
addr_set_init(struct addr_set *set)
{
	set->slot = NULL;
	set->cap = 0;
	set->n = 0;
}

void
addr_set_free(struct addr_set *set)
{
	free(set->slot);
	addr_set_init(set);
}

static unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* FNV-1a over the lower-cased bytes: equal addresses hash alike. */
static size_t
addr_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= ascii_lower(*p);
		h *= 1099511628211ULL;
	}
	return (size_t)h;
}

/* The slot holding addr, or the empty one where it would go. */
static const char **
addr_set_find(const struct addr_set *set, const char *addr)
{
	size_t i = addr_hash(addr) & (set->cap - 1);

	while (set->slot[i] != NULL && strcasecmp(set->slot[i], addr) != 0)
		i = (i + 1) & (set->cap - 1);
	return &set->slot[i];
}

static void
addr_set_grow(struct addr_set *set)
{
	struct addr_set bigger = { NULL, set->cap ? set->cap * 2 : 64, 0 };

	bigger.slot = xcalloc(bigger.cap, sizeof(*bigger.slot));
	for (size_t i = 0; i < set->cap; i++)
		if (set->slot[i] != NULL) {
			*addr_set_find(&bigger, set->slot[i]) = set->slot[i];
			bigger.n++;
		}
	free(set->slot);
	*set = bigger;
}

bool
addr_list_add(struct strvec *list, struct addr_set *seen, const char *addr)
{
	const char **slot;

	if (2 * (seen->n + 1) > seen->cap)	/* at most half full */
		addr_set_grow(seen);
	slot = addr_set_find(seen, addr);
	if (*slot != NULL)
		return false;
	sv_push(list, addr);
	*slot = list->v[list->n - 1];
	seen->n++;
	return true;
}

bool
msg_encode_phrase(const char *name, struct strbuf *out)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
	    "qrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)name;
	size_t n = strlen(name), at = 0;
	bool high = false;

	for (size_t i = 0; i < n; i++)
		high |= s[i] >= 0x80;
	if (!high)
		return false;
	while (at < n) {
		/* 45 bytes: 60 base64 characters, 72 with =?UTF-8?B? ?= */
		size_t take = n - at > 45 ? 45 : n - at;

		/* not inside a UTF-8 sequence: back off continuation bytes */
		while (take < n - at && take > 1 && (s[at + take] & 0xc0) ==
		    0x80)
			take--;
		sb_adds(out, at > 0 ? " =?UTF-8?B?" : "=?UTF-8?B?");
		for (size_t i = 0; i < take; i += 3) {
			unsigned v = (unsigned)s[at + i] << 16;
			size_t k = take - i;

			if (k > 1)
				v |= (unsigned)s[at + i + 1] << 8;
			if (k > 2)
				v |= s[at + i + 2];
			sb_addc(out, b64[(v >> 18) & 63]);
			sb_addc(out, b64[(v >> 12) & 63]);
			sb_addc(out, k > 1 ? b64[(v >> 6) & 63] : '=');
			sb_addc(out, k > 2 ? b64[v & 63] : '=');
		}
		sb_adds(out, "?=");
		at += take;
	}
	return true;
}

void
msg_format_date(time_t t, char *buf, size_t len)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off;
	char sign = '+';

	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
	    off / 60, off % 60);
}

/* An atext byte, or '.' (a dot-atom's run). */
static bool
atom_byte(char c)
{
	return isalnum((unsigned char)c) || (c != '\0' &&
	    strchr("!#$%&'*+/=?^_`{|}~-.", c) != NULL);
}

/*
 * One element of an address list, s[0..n): where a bare address (one
 * dot-atom, no '@') ends, or 0 if the element is anything else.
 */
static size_t
bare_end(const char *s, size_t n)
{
	size_t runs = 0, end = 0, lt = n, gt = n;
	int depth = 0;
	bool quoted = false;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && (quoted || depth > 0)) {
			i++;
			continue;
		}
		if (quoted) {
			quoted = s[i] != '"';
			continue;
		}
		if (depth > 0) {
			depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
			continue;
		}
		if (s[i] == '(')
			depth = 1;
		else if (s[i] == '"')
			quoted = true;
		else if (s[i] == '@' || s[i] == ':' || s[i] == ';')
			return 0;
		else if (s[i] == '<' && lt == n)
			lt = i;
		else if (s[i] == '>' && gt == n)
			gt = i;
	}
	if (quoted || depth != 0 || (lt < n) != (gt < n) || gt < lt)
		return 0;
	/* the address: inside <...> if there are brackets, else all of it */
	for (size_t i = lt < n ? lt + 1 : 0; i < (lt < n ? gt : n); i++) {
		if (s[i] == '"')
			return 0;	/* a quoted local part: left alone */
		if (s[i] == '(') {
			for (depth = 1, i++; i < n && depth > 0; i++)
				depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
			i--;
			continue;
		}
		if (atom_byte(s[i])) {
			runs++;
			while (i < n && atom_byte(s[i]))
				i++;
			end = i--;
		}
	}
	return runs == 1 ? end : 0;
}

bool
msg_qualify_field(const char *field, size_t len, const char *domain,
    struct strbuf *out)
{
	const char *colon = memchr(field, ':', len);
	size_t start, done = 0;
	bool changed = false, quoted = false;
	int depth = 0;

	if (colon == NULL)
		return false;
	start = (size_t)(colon - field) + 1;
	for (size_t i = start; i <= len; i++) {
		size_t end;

		if (i < len && field[i] == '\\' && (quoted || depth > 0)) {
			i++;
			continue;
		}
		if (i < len && quoted) {
			quoted = field[i] != '"';
			continue;
		}
		if (i < len && depth > 0) {
			depth += field[i] == '(' ? 1 : field[i] == ')' ? -1 : 0;
			continue;
		}
		if (i < len && field[i] != ',') {
			depth = field[i] == '(';
			quoted = field[i] == '"';
			continue;
		}
		end = bare_end(field + start, i - start);
		if (end > 0) {
			sb_add(out, field + done, start + end - done);
			sb_addf(out, "@%s", domain);
			done = start + end;
			changed = true;
		}
		start = i + 1;
	}
	if (changed)
		sb_add(out, field + done, len - done);
	return changed;
}
