/*
 * relay.c - a TCP relay on 127.0.0.1 in front of a loopback server, plain
 * or as an implicit-TLS server, for the send benchmark's TLS flush.
 *
 *   relay TARGET_PORT [CERT KEY]
 *
 * Listens on a free loopback port and prints it (one line on stdout),
 * then serves one connection at a time, forever: each is relayed to
 * 127.0.0.1:TARGET_PORT, byte for byte; with CERT and KEY the client's
 * side is TLS (OpenSSL, as a C server such as Postfix's smtpd has it).
 * Both sides TCP_NODELAY. It ends when its parent does (PR_SET_PDEATHSIG)
 * or on SIGTERM.
 *
 * It reads a TLS record at a time and forwards each at once, as servers
 * built on OpenSSL do (SSL_read returns one record's bytes): a client
 * whose every piece is a record of its own pays for it here as it would
 * there. The Python relay the benchmark had before read all the records
 * that had come at once, in the benchmark's own process, and hid that.
 *
 * Over TLS postie ends each message's data with its own record (so the
 * server answers the dot before it reads the next MAIL group) and the
 * relay forwards the two apart: smtp-sink then answers in two writes, the
 * second held by its Nagle until the relay ACKs the first. So the relay
 * ACKs the sink at once (TCP_QUICKACK): with a delayed ACK the TLS flush
 * of 200 messages took 0.21-0.27 s here, with it 0.09 s; a client talking
 * to the server straight would pay that only for its own delayed ACK.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF	65536

/* All of b to fd, through ssl when there is one. */
static int
send_all(int fd, SSL *ssl, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = ssl != NULL ? SSL_write(ssl, b, n > BUF ? BUF :
		    (int)n) : write(fd, b, n);

		if (w < 0 && ssl == NULL && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void
nodelay(int fd)
{
	int on = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

/* ACK what came at once (Linux clears the flag as it goes): the sink,
 * whose replies may come in two writes, then waits for no delayed ACK
 * of ours (Nagle). */
static void
quickack(int fd)
{
	int on = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof(on));
}

/* One client, relayed until either side ends. */
static void
serve(int cfd, int port, SSL_CTX *ctx)
{
	static char buf[BUF];
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_port = htons((unsigned short)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	SSL *ssl = NULL;
	int sfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	nodelay(cfd);
	if (sfd < 0 || connect(sfd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
		goto out;
	nodelay(sfd);
	if (ctx != NULL) {
		if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, cfd) != 1 ||
		    SSL_accept(ssl) != 1)
			goto out;
	}
	for (;;) {
		struct pollfd pfd[2] = { { .fd = cfd, .events = POLLIN },
			{ .fd = sfd, .events = POLLIN } };
		ssize_t n;

		/* bytes OpenSSL already holds need no poll */
		if (ssl == NULL || SSL_pending(ssl) == 0) {
			if (poll(pfd, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
		} else
			pfd[0].revents = POLLIN;
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = ssl != NULL ? SSL_read(ssl, buf, BUF) :
			    read(cfd, buf, BUF);
			if (n <= 0 || send_all(sfd, NULL, buf, (size_t)n) < 0)
				break;
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(sfd, buf, BUF);
			quickack(sfd);
			if (n <= 0 || send_all(cfd, ssl, buf, (size_t)n) < 0)
				break;
		}
	}
out:
	if (ssl != NULL) {
		(void)SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	ERR_clear_error();
	if (sfd >= 0)
		close(sfd);
	close(cfd);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	SSL_CTX *ctx = NULL;
	int lfd, port;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: relay TARGET_PORT [CERT KEY]\n");
		return 2;
	}
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	port = atoi(argv[1]);
	if (argc == 4) {
		ctx = SSL_CTX_new(TLS_server_method());
		if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx,
		    argv[2]) != 1 || SSL_CTX_use_PrivateKey_file(ctx, argv[3],
		    SSL_FILETYPE_PEM) != 1) {
			fprintf(stderr, "relay: cannot load %s and %s\n",
			    argv[2], argv[3]);
			return 1;
		}
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(lfd, 16) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) < 0) {
		perror("relay: listen");
		return 1;
	}
	printf("%d\n", ntohs(sin.sin_port));
	fflush(stdout);
	for (;;) {
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("relay: accept");
			return 1;
		}
		serve(cfd, port, ctx);
	}
}
