/*
 * bench_decision.c - the shim's connect-time decision alone, measured inside a process that
 * has the shim preloaded (run by bench/bench_shim.sh inside the loopback world; it must be
 * listed in the shim's `programs`).
 *
 * The process first does what an MTA does before it connects: res_search(DOMAIN, MX) and
 * res_search(MXHOST, A) against the world's DNS, through the shim's hooks, so the shim's table
 * links the MX host's address to DOMAIN. It then listens on that address, port 25, itself (so
 * no receiver process is disturbed) and repeats, alternating one iteration of each:
 *
 *   shim:  socket(); t0; connect(); t1; close(); t2         connect/close resolve to the shim
 *   libc:  socket(); t0; libc connect(); t1; libc close(); t2
 *
 * "libc" calls the functions of libc.so.6 itself (dlopen RTLD_NOLOAD + dlsym), bypassing the
 * preloaded hooks in the same process, on the same kind of socket to the same peer. The
 * difference of the connect times is the decision: peer address -> candidate (domain, MX)
 * pairs from the DNS table, the policy cache read (open, get, close, clone), the MX pattern
 * check, the slot update. The difference of the close times is the end of the session: the
 * log line and the JSON report. Between iterations the listener's queue is drained (untimed).
 *
 * Before timing, connecting to REFUSE_DOMAIN's MX (a host not in that domain's enforce policy)
 * must fail with ECONNREFUSED: proof that the shim is active and deciding in this process.
 *
 * Usage: bench_decision [-n ITERATIONS] [-w WARMUP] DOMAIN [REFUSE_DOMAIN]
 * Prints one line per measured operation (median, mean, p90, p99 in microseconds) and the
 * differences. Exit status 0, or 1 with a message when the setup or the proof fails.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*close_fn)(int);

static connect_fn libc_connect;
static close_fn libc_close;

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void stats(const char *label, double *v, size_t n, double *median_out, double *mean_out)
{
	double sum = 0;

	qsort(v, n, sizeof(v[0]), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	*median_out = v[n / 2];
	*mean_out = sum / (double)n;
	printf("%-34s n=%zu  median %7.2f us  mean %7.2f us  p90 %7.2f us  p99 %7.2f us\n", label, n,
	       v[n / 2], sum / (double)n, v[(size_t)((double)n * 0.9)], v[(size_t)((double)n * 0.99)]);
}

/* The first MX host of domain, then its first A record, through res_search (hooked). */
static int resolve(const char *domain, char *host, size_t host_len, struct in_addr *addr)
{
	unsigned char answer[4096];
	ns_msg msg;
	ns_rr rr;
	int len;

	len = res_search(domain, C_IN, T_MX, answer, sizeof(answer));
	if (len < 0 || len > (int)sizeof(answer) || ns_initparse(answer, len, &msg) < 0)
		return -1;
	host[0] = '\0';
	for (int i = 0; i < ns_msg_count(msg, ns_s_an) && !host[0]; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) == 0 && ns_rr_type(rr) == ns_t_mx &&
		    ns_rr_rdlen(rr) >= 3 &&
		    dn_expand(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr) + 2, host,
		              (int)host_len) < 0)
			host[0] = '\0';
	}
	if (!host[0])
		return -1;
	len = res_search(host, C_IN, T_A, answer, sizeof(answer));
	if (len < 0 || len > (int)sizeof(answer) || ns_initparse(answer, len, &msg) < 0)
		return -1;
	for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) == 0 && ns_rr_type(rr) == ns_t_a &&
		    ns_rr_rdlen(rr) == 4) {
			memcpy(addr, ns_rr_rdata(rr), 4);
			return 0;
		}
	}
	return -1;
}

static int listener(const struct sockaddr_in *sa)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, 1024) < 0) {
		libc_close(fd);
		return -1;
	}
	return fd;
}

static void drain(int lfd)
{
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		libc_close(fd);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_decision [-n ITERATIONS] [-w WARMUP] DOMAIN [REFUSE_DOMAIN]\n");
	exit(1);
}

int main(int argc, char **argv)
{
	long iterations = 20000, warmup = 500;
	const char *domain, *refuse_domain = NULL;
	char host[NS_MAXDNAME];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(25) };
	double *t[4], med[4], mean[4];
	void *libc;
	int opt, lfd;

	while ((opt = getopt(argc, argv, "n:w:")) != -1) {
		switch (opt) {
		case 'n': iterations = atol(optarg); break;
		case 'w': warmup = atol(optarg); break;
		default: usage();
		}
	}
	if (optind >= argc || iterations < 10 || iterations > 10000000 || warmup < 0)
		usage();
	domain = argv[optind];
	if (optind + 1 < argc)
		refuse_domain = argv[optind + 1];

	libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	libc_connect = libc ? (connect_fn)dlsym(libc, "connect") : NULL;
	libc_close = libc ? (close_fn)dlsym(libc, "close") : NULL;
	if (!libc_connect || !libc_close) {
		fprintf(stderr, "bench_decision: libc's connect/close not found\n");
		return 1;
	}
	if ((void *)libc_connect == dlsym(RTLD_DEFAULT, "connect"))
		fprintf(stderr, "bench_decision: warning: connect is not hooked (shim not preloaded?)\n");

	if (refuse_domain) {
		struct sockaddr_in bad = sa;
		int fd, rc;
		if (resolve(refuse_domain, host, sizeof(host), &bad.sin_addr) < 0) {
			fprintf(stderr, "bench_decision: cannot resolve the MX of %s\n", refuse_domain);
			return 1;
		}
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		rc = connect(fd, (struct sockaddr *)&bad, sizeof(bad));
		if (rc == 0 || errno != ECONNREFUSED) {
			fprintf(stderr, "bench_decision: connect to %s (MX of %s) was not refused: the "
			        "shim is not deciding in this process\n", host, refuse_domain);
			return 1;
		}
		close(fd);
		printf("proof: connect to %s (MX of %s, not in its enforce policy) refused by the shim\n",
		       host, refuse_domain);
	}
	if (resolve(domain, host, sizeof(host), &sa.sin_addr) < 0) {
		fprintf(stderr, "bench_decision: cannot resolve the MX of %s\n", domain);
		return 1;
	}
	lfd = listener(&sa);
	if (lfd < 0) {
		fprintf(stderr, "bench_decision: cannot listen on %s:25: %s\n", inet_ntoa(sa.sin_addr),
		        strerror(errno));
		return 1;
	}
	printf("domain %s, MX %s, %s:25 (listened on by this process), %ld iterations of each\n",
	       domain, host, inet_ntoa(sa.sin_addr), iterations);
	for (int k = 0; k < 4; k++) {
		t[k] = calloc((size_t)iterations, sizeof(double));
		if (!t[k])
			return 1;
	}
	/* even i: through the shim, odd i: libc; warm-up iterations are not recorded */
	for (long i = 0; i < 2 * (warmup + iterations); i++) {
		int shim = (i & 1) == 0;
		long slot = i / 2 - warmup;
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		double t0, t1, t2;
		int rc;

		if (fd < 0) {
			perror("bench_decision: socket");
			return 1;
		}
		t0 = now_us();
		rc = shim ? connect(fd, (struct sockaddr *)&sa, sizeof(sa)) :
		            libc_connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		t1 = now_us();
		if (rc < 0 && errno != EINPROGRESS) {
			fprintf(stderr, "bench_decision: connect (%s): %s\n", shim ? "shim" : "libc",
			        strerror(errno));
			return 1;
		}
		if (shim)
			close(fd);
		else
			libc_close(fd);
		t2 = now_us();
		if (slot >= 0) {
			t[shim ? 0 : 1][slot] = t1 - t0;
			t[shim ? 2 : 3][slot] = t2 - t1;
		}
		drain(lfd);
	}
	stats("connect, shim (decision + syscall)", t[0], (size_t)iterations, &med[0], &mean[0]);
	stats("connect, libc (syscall only)", t[1], (size_t)iterations, &med[1], &mean[1]);
	stats("close, shim (session log + report)", t[2], (size_t)iterations, &med[2], &mean[2]);
	stats("close, libc", t[3], (size_t)iterations, &med[3], &mean[3]);
	printf("decision at connect (shim - libc): median %.2f us, mean %.2f us\n", med[0] - med[1],
	       mean[0] - mean[1]);
	printf("session end at close (shim - libc): median %.2f us, mean %.2f us\n", med[2] - med[3],
	       mean[2] - mean[3]);
	libc_close(lfd);
	for (int k = 0; k < 4; k++)
		free(t[k]);
	return 0;
}
