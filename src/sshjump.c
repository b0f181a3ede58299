/* sshjump.c - an SSH session through ProxyJump hops, each verified. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dial.h"
#include "sshjump.h"
#include "tunnel.h"
#include "util.h"

struct sshjump {
	struct tunnel	 t[SSHROUTE_MAX_JUMPS];
	size_t		 n;	/* tunnels to close */
};

/* "jump host NAME (hop I of N): what went wrong" */
static void
name_hop(const struct ssh_route *r, size_t i, struct err *e)
{
	struct err le;
	const struct ssh_hop *h = &r->hop[i];

	err_set(&le, e->code, "ProxyJump host %s (hop %zu of %zu): %.900s",
	    h->name, i + 1, r->n - 1, e->msg);
	*e = le;
}

int
sshjump_open(const struct ssh_params *p, const struct ssh_route *r,
    struct sshjump **out, int *fd, bool *unreachable, struct err *e)
{
	struct sshjump *j = xcalloc(1, sizeof(*j));
	int sock = -1;

	*out = NULL;
	*unreachable = false;
	for (size_t i = 0; i + 1 < r->n; i++) {
		const struct ssh_hop *h = &r->hop[i], *next = &r->hop[i + 1];
		struct tunnel *t = &j->t[i];

		tunnel_init(t);
		j->n = i + 1;
		if (i == 0 && dial_tcp(h->host, h->port, p->route,
		    p->connect_timeout, &sock, e) < 0) {
			*unreachable = true;
			goto fail;
		}
		/* the session takes the socket, open or not */
		if (sshconn_start(p, h, false, i > 0 ? &r->hop[i - 1] : NULL,
		    sock, &t->ssh, e) < 0) {
			*unreachable = t->ssh.unreachable;
			goto fail;
		}
		sock = -1;
		if (p->verbose)
			fprintf(stderr, "%s: ssh: jump host %s (hop %zu of %zu) "
			    "open, on to %s port %d\n", p->prog, h->name, i + 1,
			    r->n - 1, next->host, next->port);
		t->hop = true;
		if (tunnel_start(t, p, h->name, next->host, next->port, &sock,
		    unreachable, e) < 0)
			goto fail;
	}
	*out = j;
	*fd = sock;
	return 0;
fail:
	name_hop(r, j->n - 1, e);
	sshjump_close(j);
	return -1;
}

void
sshjump_close(struct sshjump *j)
{
	if (j == NULL)
		return;
	while (j->n > 0)
		tunnel_close(&j->t[--j->n]);
	free(j);
}
