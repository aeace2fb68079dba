/*
 * net.c - socket and fd hooks: connect, TCP Fast Open (sendto/sendmsg with MSG_FASTOPEN), the
 * write guard on write/writev/send/sendto/sendmsg, and the fd bookkeeping of socket, close,
 * close_range, closefrom, dup, dup2, dup3.
 *
 * Each hook is the exported symbol calling the real function after at most a couple of checks:
 * shim_engaged() (inert programs, our own work) and session_write_is_free() (an fd that is not
 * an SMTP connection under guard). Only then does it enter the shim.
 */
#include <errno.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "session.h"
#include "shim.h"

int close_range(unsigned int first, unsigned int last, int flags);
void closefrom(int lowfd);

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* ---- opening -------------------------------------------------------------------------------- */

static bool refused_open(int fd, const struct sockaddr *addr, socklen_t len)
{
	int saved = shim_enter();
	bool refuse = session_open(fd, addr, len);
	shim_leave(saved);
	return refuse;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (!shim_engaged())
		return REAL(connect)(fd, addr, len);
	if (refused_open(fd, addr, len)) {
		errno = ECONNREFUSED;
		return -1;
	}
	return REAL(connect)(fd, addr, len);
}

int socket(int domain, int type, int protocol)
{
	int fd = REAL(socket)(domain, type, protocol);

	if (fd >= 0 && shim_engaged()) {
		int saved = shim_enter();
		session_finish(fd);   /* a number we missed the close of (fclose, internal closes) */
		shim_leave(saved);
	}
	return fd;
}

/* ---- the write guard ------------------------------------------------------------------------ */

/* Before the real call: <0 refuse (errno set), 0 pass, >0 pass and report what was written. */
static int guard(int fd, const struct iovec *iov, int iovcnt, smtpscan *next)
{
	int saved = shim_enter();
	int verdict = session_guard(fd, iov, iovcnt, false, next);
	if (verdict < 0)
		saved = errno;
	shim_leave(saved);
	return verdict;
}

/* After it: the stream advanced by what the kernel took; errno stays the real call's. */
static ssize_t written(int fd, const struct iovec *iov, int iovcnt, const smtpscan *next,
                       int verdict, ssize_t rc)
{
	if (verdict > 0 && rc > 0) {
		int saved = shim_enter();
		session_written(fd, iov, iovcnt, next, (long long)rc);
		shim_leave(saved);
	}
	return rc;
}

/* The slow paths stay out of line: the hooks' pass-through frames stay small. */
static __attribute__((noinline)) ssize_t write_guarded(int fd, const void *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };
	smtpscan next;
	int verdict = guard(fd, &iov, 1, &next);

	if (verdict < 0)
		return -1;
	return written(fd, &iov, 1, &next, verdict, REAL(write)(fd, buf, n));
}

ssize_t write(int fd, const void *buf, size_t n)
{
	if (!shim_engaged() || session_write_is_free(fd, false))
		return REAL(write)(fd, buf, n);
	return write_guarded(fd, buf, n);
}

static __attribute__((noinline)) ssize_t writev_guarded(int fd, const struct iovec *iov,
                                                        int iovcnt)
{
	smtpscan next;
	int verdict = guard(fd, iov, iovcnt, &next);

	if (verdict < 0)
		return -1;
	return written(fd, iov, iovcnt, &next, verdict, REAL(writev)(fd, iov, iovcnt));
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (!shim_engaged() || session_write_is_free(fd, false) || iovcnt <= 0 || iovcnt > IOV_MAX)
		return REAL(writev)(fd, iov, iovcnt);
	return writev_guarded(fd, iov, iovcnt);
}

static __attribute__((noinline)) ssize_t send_guarded(int fd, const void *buf, size_t n,
                                                      int flags)
{
	struct iovec iov = { (void *)buf, n };
	smtpscan next;
	int verdict = guard(fd, &iov, 1, &next);

	if (verdict < 0)
		return -1;
	return written(fd, &iov, 1, &next, verdict, REAL(send)(fd, buf, n, flags));
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	if (!shim_engaged() || session_write_is_free(fd, false))
		return REAL(send)(fd, buf, n, flags);
	return send_guarded(fd, buf, n, flags);
}

static __attribute__((noinline)) ssize_t sendto_guarded(int fd, const void *buf, size_t n,
                                                        int flags, const struct sockaddr *addr,
                                                        socklen_t len)
{
	struct iovec iov = { (void *)buf, n };
	smtpscan next;
	int verdict = guard(fd, &iov, 1, &next);

	if (verdict < 0)
		return -1;
	return written(fd, &iov, 1, &next, verdict, REAL(sendto)(fd, buf, n, flags, addr, len));
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
               socklen_t len)
{
	if (!shim_engaged())
		return REAL(sendto)(fd, buf, n, flags, addr, len);
	/* Exim opens SMTP with sendto(fd, NULL, 0, MSG_FASTOPEN, peer): that is the connect */
	if ((flags & MSG_FASTOPEN) && addr && refused_open(fd, addr, len)) {
		errno = ECONNREFUSED;
		return -1;
	}
	if (!n || !buf || session_write_is_free(fd, false))
		return REAL(sendto)(fd, buf, n, flags, addr, len);
	return sendto_guarded(fd, buf, n, flags, addr, len);
}

static __attribute__((noinline)) ssize_t sendmsg_guarded(int fd, const struct msghdr *msg,
                                                         int flags)
{
	smtpscan next;
	int verdict = guard(fd, msg->msg_iov, (int)msg->msg_iovlen, &next);

	if (verdict < 0)
		return -1;
	return written(fd, msg->msg_iov, (int)msg->msg_iovlen, &next, verdict,
	               REAL(sendmsg)(fd, msg, flags));
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (!shim_engaged() || !msg)
		return REAL(sendmsg)(fd, msg, flags);
	if ((flags & MSG_FASTOPEN) && msg->msg_name &&
	    refused_open(fd, msg->msg_name, msg->msg_namelen)) {
		errno = ECONNREFUSED;
		return -1;
	}
	if (msg->msg_iovlen == 0 || msg->msg_iovlen > IOV_MAX || !msg->msg_iov ||
	    session_write_is_free(fd, false))
		return REAL(sendmsg)(fd, msg, flags);
	return sendmsg_guarded(fd, msg, flags);
}

/* ---- closing and duplicating ---------------------------------------------------------------- */

static void finish(int fd)
{
	int saved = shim_enter();
	session_finish(fd);
	shim_leave(saved);
}

static void finish_range_one(int fd, conn *c)
{
	(void)c;
	session_finish(fd);
}

int close(int fd)
{
	if (shim_engaged()) {
		conn *c = conn_slot(fd, false);
		int kind = c ? atomic_load_explicit(&c->kind, memory_order_acquire) : KIND_UNKNOWN;
		if (kind == KIND_OTHER)   /* lock-free: close() is async-signal-safe */
			atomic_compare_exchange_strong(&c->kind, &kind, KIND_UNKNOWN);
		else if (kind != KIND_UNKNOWN)
			finish(fd);
	}
	return REAL(close)(fd);
}

int close_range(unsigned int first, unsigned int last, int flags)
{
	if (!REAL(close_range)) {
		errno = ENOSYS;
		return -1;
	}
	if (shim_engaged() && !(flags & CLOSE_RANGE_CLOEXEC) && first <= last) {
		int saved = shim_enter();
		conn_foreach_range(first, last, finish_range_one);
		shim_leave(saved);
	}
	return REAL(close_range)(first, last, flags);
}

void closefrom(int lowfd)
{
	if (shim_engaged() && lowfd >= 0) {
		int saved = shim_enter();
		conn_foreach_range((unsigned)lowfd, ~0U, finish_range_one);
		shim_leave(saved);
	}
	if (REAL(closefrom))
		REAL(closefrom)(lowfd);
}

static void follow_dup(int oldfd, int newfd)
{
	int saved = shim_enter();
	session_dup(oldfd, newfd);
	shim_leave(saved);
}

int dup(int oldfd)
{
	int fd = REAL(dup)(oldfd);

	if (fd >= 0 && shim_engaged())
		follow_dup(oldfd, fd);
	return fd;
}

int dup2(int oldfd, int newfd)
{
	int fd = REAL(dup2)(oldfd, newfd);

	if (fd >= 0 && shim_engaged())
		follow_dup(oldfd, fd);
	return fd;
}

int dup3(int oldfd, int newfd, int flags)
{
	if (!REAL(dup3)) {
		errno = ENOSYS;
		return -1;
	}
	int fd = REAL(dup3)(oldfd, newfd, flags);

	if (fd >= 0 && shim_engaged())
		follow_dup(oldfd, fd);
	return fd;
}
