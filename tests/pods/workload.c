/* A pod test's workload (tests/common/cri.rs): known TCP connections, one after another.
 *
 *   workload client ADDR PORT CONNS ROUNDS [hold] [gated]
 *       CONNS connections to ADDR:PORT; on each, ROUNDS one-byte exchanges (write one,
 *       read one back), then the client closes first and reads the server's EOF.
 *   workload server ADDR PORT CONNS [hold] [gated]
 *       listens on ADDR:PORT, accepts CONNS connections one at a time, echoes every
 *       byte until EOF, then closes.
 *   workload wait
 *       does nothing until SIGTERM.
 *
 * With `hold` it waits for SIGTERM after the traffic instead of exiting. With `gated` it
 * starts the traffic when a SIGUSR1 arrives: a test that must know the container's
 * cgroup before its first socket sends it, once /proc/PID/status' SigCgt shows SIGUSR1
 * caught (its handler is set first thing; one sent earlier would end the process). It prints one line when the traffic is done and exits 0
 * only when every step went as planned; SIGTERM and SIGINT end it with 0. Built with
 * `gcc -static`: the image has no library. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_storage addr;
static socklen_t addr_len;

static void die(const char *what)
{
	fprintf(stderr, "workload: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void quit(int sig)
{
	(void)sig;
	_exit(0);
}

static void set_addr(const char *text, const char *port)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;

	memset(&addr, 0, sizeof(addr));
	if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(atoi(port));
		addr_len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(atoi(port));
		addr_len = sizeof(*a6);
	} else {
		fprintf(stderr, "workload: not an address: %s\n", text);
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

static void client_once(long rounds)
{
	int fd = socket(addr.ss_family, SOCK_STREAM, 0);
	char c;

	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&addr, addr_len) < 0)
		die("connect");
	for (long r = 0; r < rounds; r++) {
		write_byte(fd, 'x');
		if (!read_byte(fd, &c))
			die("early EOF");
	}
	if (shutdown(fd, SHUT_WR) < 0)
		die("shutdown");
	if (read_byte(fd, &c))
		die("data after FIN");
	close(fd);
}

static void serve(long conns)
{
	int one = 1, listener = socket(addr.ss_family, SOCK_STREAM, 0);
	char c;

	if (listener < 0)
		die("socket");
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listener, (struct sockaddr *)&addr, addr_len) < 0)
		die("bind");
	if (listen(listener, 16) < 0)
		die("listen");
	for (long i = 0; i < conns; i++) {
		int fd = accept(listener, NULL, NULL);

		if (fd < 0)
			die("accept");
		while (read_byte(fd, &c))
			write_byte(fd, c);
		close(fd);
	}
	close(listener);
}

static void wait_for_sigterm(void)
{
	for (;;)
		pause();
}

static int usage(void)
{
	fprintf(stderr, "usage: workload client ADDR PORT CONNS ROUNDS [hold] [gated]\n"
			"       workload server ADDR PORT CONNS [hold] [gated]\n"
			"       workload wait\n");
	return 64;
}

static volatile sig_atomic_t opened;

static void open_gate(int sig)
{
	(void)sig;
	opened = 1;
}

/* Waits for SIGUSR1, blocked since its handler was set (so one sent since is kept). */
static void wait_for_usr1(void)
{
	sigset_t none;

	sigemptyset(&none);
	while (!opened)
		sigsuspend(&none);
}

int main(int argc, char **argv)
{
	struct sigaction end = { .sa_handler = quit }, gate = { .sa_handler = open_gate };
	int client = argc >= 6 && !strcmp(argv[1], "client");
	int server = argc >= 5 && !strcmp(argv[1], "server");
	int fixed = client ? 6 : 5, hold = 0, gated = 0;
	sigset_t usr1;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	sigaction(SIGUSR1, &gate, NULL);
	sigaction(SIGTERM, &end, NULL);
	sigaction(SIGINT, &end, NULL);
	if (argc == 2 && !strcmp(argv[1], "wait"))
		wait_for_sigterm();
	if (!(client || server))
		return usage();
	for (int i = fixed; i < argc; i++) {
		if (!strcmp(argv[i], "hold") && !hold)
			hold = 1;
		else if (!strcmp(argv[i], "gated") && !gated)
			gated = 1;
		else
			return usage();
	}
	set_addr(argv[2], argv[3]);
	if (gated)
		wait_for_usr1();
	if (client)
		for (long i = 0; i < atol(argv[4]); i++)
			client_once(atol(argv[5]));
	else
		serve(atol(argv[4]));
	printf("workload: %s %s connections on %s port %s\n", argv[1], argv[4], argv[2], argv[3]);
	fflush(stdout);
	if (hold)
		wait_for_sigterm();
	return 0;
}
