/*
 * fuzz_message.c - the header section and address-list parser
 * (message.h). The input is a header block as the spool hands it to
 * hdr_parse; every field's value goes through the address-list parser,
 * as -t and the From: default do, and every address found through the
 * envelope check.
 */
#include <strings.h>

#include "fuzz.h"
#include "message.h"

static const char *const names[] = { "From", "To", "Cc", "Bcc", "Sender",
	"Reply-To", "Date", "Message-ID", "Resent-To" };

/* What addr_valid_envelope promises of an address it accepts. */
static void
check_envelope_addr(const char *a)
{
	const char *why = NULL;
	size_t len = strlen(a);

	if (!addr_valid_envelope(a, &why)) {
		FUZZ_CHECK(why != NULL && *why != '\0');
		return;
	}
	FUZZ_CHECK(len > 0 && len <= 254);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)a[i];

		FUZZ_CHECK(c >= 0x20 && c < 0x7f);
	}
	FUZZ_CHECK(strchr(a, '<') == NULL || strchr(a, '"') != NULL);
}

static void
check_address_list(const char *value)
{
	struct strvec out;
	const char *bad = NULL;

	sv_init(&out);
	if (addr_parse_list(value, &out, &bad) < 0)
		FUZZ_CHECK(bad != NULL && *bad != '\0');
	else
		for (size_t i = 0; i < out.n; i++) {
			/* empty elements and "<>" add nothing */
			FUZZ_CHECK(out.v[i][0] != '\0');
			FUZZ_CHECK(addr_list_contains(&out, out.v[i]));
			check_envelope_addr(out.v[i]);
		}
	sv_free(&out);
}

static void
check_field(const struct headers *h, size_t i)
{
	const struct field *f = &h->f[i];
	char *v;
	size_t vlen;

	FUZZ_CHECK(f->start < f->end && f->end <= h->len);
	FUZZ_CHECK(i == 0 || h->f[i - 1].end <= f->start);
	FUZZ_CHECK(f->name_len > 0 && f->name_len < f->end - f->start);
	FUZZ_CHECK(msg_line_kind(h->buf + f->start, f->end - f->start) ==
	    LINE_FIELD);
	v = hdr_value(h, i);
	vlen = strlen(v);
	/* unfolded and trimmed (a NUL byte cuts the string short: what
	 * came after it was trimmed, not what comes before) */
	FUZZ_CHECK(strchr(v, '\n') == NULL && strchr(v, '\r') == NULL);
	FUZZ_CHECK(vlen == 0 || (v[0] != ' ' && v[0] != '\t'));
	FUZZ_CHECK(vlen == 0 || (v[vlen - 1] != ' ' && v[vlen - 1] != '\t') ||
	    memchr(h->buf + f->start, '\0', f->end - f->start) != NULL);
	check_address_list(v);
	free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_strndup(data, size);
	struct headers h;

	hdr_parse(&h, buf, size);
	for (size_t i = 0; i < h.n; i++)
		check_field(&h, i);
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		size_t nlen = strlen(names[k]);

		for (long i = hdr_find(&h, names[k], 0); i >= 0;
		    i = hdr_find(&h, names[k], (size_t)i + 1)) {
			FUZZ_CHECK((size_t)i < h.n);
			FUZZ_CHECK(h.f[i].name_len == nlen &&
			    strncasecmp(buf + h.f[i].start, names[k],
			    nlen) == 0);
		}
	}
	hdr_free(&h);
	/* the whole input as one address list too */
	check_address_list(buf);
	free(buf);
	return 0;
}
