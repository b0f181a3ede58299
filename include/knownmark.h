/*
 * knownmark.h - the marker lines of OpenSSH's known_hosts that libssh2
 * 1.10 does not understand: "@revoked" and "@cert-authority". libssh2
 * reads such a line as a host named "@revoked" and never matches it, so
 * a revoked key that another line lists for the host would be accepted.
 * postie reads the markers itself.
 */
#ifndef POSTIE_KNOWNMARK_H
#define POSTIE_KNOWNMARK_H

#include <stdbool.h>
#include <stddef.h>

struct known_marks {
	bool	 revoked;		/* an @revoked line holds the key */
	char	*revoked_file;		/* ... in this file (malloc'd) */
	size_t	 revoked_line;		/* ... at this line (from 1) */
	size_t	 cert_authority;	/* @cert-authority lines seen */
};

/*
 * One line (without its newline) against the server's host key blob
 * key[0..klen): an "@revoked HOSTS TYPE BASE64" line whose key is this
 * one sets m->revoked, whatever its host patterns (a revoked key is
 * refused for every host); an "@cert-authority" line is counted.
 * Returns true if the line set m->revoked.
 */
bool	knownmark_line(const char *line, size_t len, const unsigned char *key,
	    size_t klen, struct known_marks *m);

/* Every line of the file at path. 0 (a missing file has none), or -1
 * with errno when it is there and cannot be read: its @revoked lines
 * would be missed, so the caller refuses. */
int	knownmark_file(const char *path, const unsigned char *key,
	    size_t klen, struct known_marks *m);

void	knownmark_free(struct known_marks *m);

#endif
