/*
 * textout.h - text for people on a terminal, from bytes that others may
 * have written (the queue, a server's reply): nothing read reaches the
 * terminal as a command, and times say their zone.
 */
#ifndef POSTIE_TEXTOUT_H
#define POSTIE_TEXTOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

/*
 * s with every byte of a control character (C0, DEL, C1) and every byte
 * that is not well-formed UTF-8 shown as \xNN; other UTF-8 as it is.
 */
void	textout_str(FILE *out, const char *s);
/*
 * The same for n bytes of one line of a message (NUL bytes included; the
 * byte after them must be readable and NUL, as getline(3) leaves it): a
 * TAB is kept, a CR just before the final LF is dropped, the LF kept.
 */
void	textout_line(FILE *out, const char *s, size_t n);
/* Is c a control character (C0, DEL, C1)? */
bool	textout_is_control(unsigned long c);
/* t as local time with its numeric zone ("2026-11-23 20:27:08 +0100"),
 * or as its number when it has no date. */
void	textout_time(time_t t, char *buf, size_t len);
/* t in UTC, ISO 8601 ("2026-11-23T19:27:08Z"), or its number. */
void	textout_time_utc(time_t t, char *buf, size_t len);

#endif
