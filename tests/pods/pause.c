/* The pod sandbox's pause process for the pod tests' images (tests/common/cri.rs): it
 * holds the pod's namespaces, reaps children that reparent to it, and exits 0 on SIGTERM
 * or SIGINT. Built with `gcc -static`: the image has no library. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig)
{
	(void)sig;
	_exit(0);
}

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(void)
{
	struct sigaction end = { .sa_handler = quit };
	struct sigaction chld = { .sa_handler = reap, .sa_flags = SA_NOCLDSTOP };

	sigaction(SIGTERM, &end, NULL);
	sigaction(SIGINT, &end, NULL);
	sigaction(SIGCHLD, &chld, NULL);
	for (;;)
		pause();
}
