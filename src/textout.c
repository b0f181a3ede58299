/* textout.c - escaped text and zoned times for people. */
#include <string.h>

#include "textout.h"
#include "util.h"

bool
textout_is_control(unsigned long c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f);	/* C0, DEL, C1 */
}

/* Print s up to end, escaping; a TAB passes when tab is set. */
static void
put_escaped(FILE *out, const char *s, const char *end, bool tab)
{
	while (s < end) {
		unsigned long c;
		size_t n = util_utf8_char(s, &c);

		if (n > (size_t)(end - s))
			n = 0;	/* a sequence cut by the end: not UTF-8 */
		if (n == 0 || (textout_is_control(c) && !(tab && c == '\t'))) {
			for (size_t i = 0; i < (n ? n : 1); i++)
				fprintf(out, "\\x%02x", (unsigned char)s[i]);
			s += n ? n : 1;
		} else {
			fwrite(s, 1, n, out);
			s += n;
		}
	}
}

void
textout_str(FILE *out, const char *s)
{
	put_escaped(out, s, s + strlen(s), false);
}

void
textout_line(FILE *out, const char *s, size_t n)
{
	bool lf = n > 0 && s[n - 1] == '\n';

	if (lf)
		n--;
	if (lf && n > 0 && s[n - 1] == '\r')
		n--;
	put_escaped(out, s, s + n, true);
	if (lf)
		fputc('\n', out);
}

static void
fmt_time(time_t t, bool utc, char *buf, size_t len)
{
	struct tm tm;

	if ((utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) == NULL ||
	    strftime(buf, len, utc ? "%Y-%m-%dT%H:%M:%SZ" :
	    "%Y-%m-%d %H:%M:%S %z", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

void
textout_time(time_t t, char *buf, size_t len)
{
	fmt_time(t, false, buf, len);
}

void
textout_time_utc(time_t t, char *buf, size_t len)
{
	fmt_time(t, true, buf, len);
}
