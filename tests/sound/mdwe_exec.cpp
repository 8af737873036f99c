/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * mdwe_exec PROGRAM ARGS...: run PROGRAM with write+execute mappings
 * refused (PR_SET_MDWE, Linux 6.3+), what systemd's
 * MemoryDenyWriteExecute= asks for, so the tests can run the daemon so.
 */
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/prctl.h>
#include <unistd.h>

/* Not in Debian 12's kernel headers (6.1). */
#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

int main(int argc, char *argv[])
{
	if (argc < 2) {
		std::fprintf(stderr, "usage: mdwe_exec PROGRAM [ARGS...]\n");
		return 2;
	}
	if (::prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0) {
		std::fprintf(stderr, "mdwe_exec: PR_SET_MDWE: %s (Linux 6.3 or later needed)\n",
			     std::strerror(errno));
		return 3;
	}
	::execvp(argv[1], argv + 1);
	std::fprintf(stderr, "mdwe_exec: %s: %s\n", argv[1], std::strerror(errno));
	return 127;
}
