/* Known loopback TCP traffic for the kernel matrix: CONNS connections, each ROUNDS one-byte
 * request/response pairs, client closes first, then one connect refused by a closed port.
 *
 *   traffic ADDR PORT CONNS ROUNDS REFUSED_PORT
 *
 * Every connection walks the full state sequence on both ends, 10 sock:inet_sock_set_state
 * events (client: CLOSE->SYN_SENT->ESTABLISHED->FIN_WAIT1->FIN_WAIT2->CLOSE; server:
 * LISTEN->SYN_RECV->ESTABLISHED->CLOSE_WAIT->LAST_ACK->CLOSE), plus 2 for the listener
 * (CLOSE->LISTEN, LISTEN->CLOSE) and 2 for the refused connect (CLOSE->SYN_SENT->CLOSE).
 * Connections run one after another, so the counts never depend on timing. The server is a
 * forked child; the program exits 0 only when every step went as planned.
 * Built with `gcc -static`: it runs in the test VM's initramfs with no library. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int family;
static struct sockaddr_storage addr;
static socklen_t addr_len;

static void die(const char *what)
{
	fprintf(stderr, "traffic: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_addr(const char *text, int port)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;

	memset(&addr, 0, sizeof(addr));
	if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
		family = AF_INET;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		addr_len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
		family = AF_INET6;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		addr_len = sizeof(*a6);
	} else {
		fprintf(stderr, "traffic: not an address: %s\n", text);
		exit(64);
	}
}

/* Reads exactly one byte; returns 0 at EOF. */
static int read_byte(int fd, char *c)
{
	ssize_t n;

	do
		n = read(fd, c, 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		die("read");
	return (int)n;
}

static void write_byte(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		die("write");
}

/* Accepts `conns` connections one at a time, echoes each byte until EOF, then closes. */
static void serve(int listener, long conns)
{
	char c;

	for (long i = 0; i < conns; i++) {
		int fd = accept(listener, NULL, NULL);

		if (fd < 0)
			die("accept");
		while (read_byte(fd, &c))
			write_byte(fd, c);
		close(fd);
	}
	close(listener);
	exit(0);
}

static int connect_once(void)
{
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	long conns, rounds;
	int listener, one = 1, status;
	pid_t server;
	char c;

	if (argc != 6) {
		fprintf(stderr, "usage: traffic ADDR PORT CONNS ROUNDS REFUSED_PORT\n");
		return 64;
	}
	conns = atol(argv[3]);
	rounds = atol(argv[4]);
	set_addr(argv[1], atoi(argv[2]));

	listener = socket(family, SOCK_STREAM, 0);
	if (listener < 0)
		die("socket");
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listener, (struct sockaddr *)&addr, addr_len) < 0)
		die("bind");
	if (listen(listener, 16) < 0)
		die("listen");
	server = fork();
	if (server < 0)
		die("fork");
	if (server == 0)
		serve(listener, conns);
	close(listener); /* the child holds the listener now */

	for (long i = 0; i < conns; i++) {
		int fd = connect_once();

		if (fd < 0)
			die("connect");
		for (long r = 0; r < rounds; r++) {
			write_byte(fd, 'x');
			if (!read_byte(fd, &c))
				die("early EOF");
		}
		/* Close first; wait for the server's FIN so this connection is over
		 * (FIN_WAIT2 -> CLOSE) before the next one starts. */
		if (shutdown(fd, SHUT_WR) < 0)
			die("shutdown");
		if (read_byte(fd, &c))
			die("data after FIN");
		close(fd);
	}
	if (waitpid(server, &status, 0) < 0)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "traffic: server failed\n");
		return 1;
	}

	set_addr(argv[1], atoi(argv[5]));
	if (connect_once() >= 0 || errno != ECONNREFUSED) {
		fprintf(stderr, "traffic: connect to closed port %s was not refused\n", argv[5]);
		return 1;
	}
	printf("traffic: %ld connections of %ld rounds and 1 refused connect on %s\n", conns,
	       rounds, argv[1]);
	return 0;
}
