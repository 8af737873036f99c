/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file proc_stats.h
 * \brief What /proc says about a process: CPU time, context switches,
 * resident memory split into anonymous and file-backed, threads.
 *
 * Read from /proc/PID/stat (utime, stime in clock ticks) and
 * /proc/PID/status (RssAnon, RssFile, Threads, voluntary_ctxt_switches,
 * nonvoluntary_ctxt_switches). Context switches are summed over all the
 * process's threads (/proc/PID/task/TID/status), since the status file of
 * the process counts only its main thread.
 */
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace vhostpp::bench {

/** \brief One snapshot of a process. valid is false once it has gone. */
struct ProcStats {
	bool valid = false;
	double cpu_s = 0;	   /* user + system, all threads (schedstat ns where it has them) */
	long voluntary = 0;	   /* context switches, all threads */
	long involuntary = 0;
	long rss_anon_kib = 0;
	long rss_file_kib = 0;
	long threads = 0;
};

namespace detail {
inline long status_field(const std::string &path, const char *name)
{
	FILE *f = std::fopen(path.c_str(), "r");
	if (!f)
		return -1;
	char line[256];
	long value = -1;
	size_t n = std::strlen(name);
	while (std::fgets(line, sizeof line, f)) {
		if (std::strncmp(line, name, n) == 0 && line[n] == ':') {
			value = std::strtol(line + n + 1, nullptr, 10);
			break;
		}
	}
	std::fclose(f);
	return value;
}
} // namespace detail

/** \brief Snapshot of process \a pid. */
inline ProcStats read_proc(int pid)
{
	ProcStats s;
	std::string base = "/proc/" + std::to_string(pid);
	FILE *f = std::fopen((base + "/stat").c_str(), "r");
	if (!f)
		return s;
	char buf[2048];
	size_t n = std::fread(buf, 1, sizeof buf - 1, f);
	std::fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: start after the last ')'. */
	char *p = std::strrchr(buf, ')');
	if (!p)
		return s;
	unsigned long utime = 0, stime = 0;
	/* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
	if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
			&stime) != 2)
		return s;
	static const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
	s.cpu_s = static_cast<double>(utime + stime) / tick;
	s.rss_anon_kib = detail::status_field(base + "/status", "RssAnon");
	s.rss_file_kib = detail::status_field(base + "/status", "RssFile");
	s.threads = detail::status_field(base + "/status", "Threads");
	unsigned long long sched_ns = 0;
	if (DIR *d = opendir((base + "/task").c_str())) {
		while (dirent *e = readdir(d)) {
			if (e->d_name[0] == '.')
				continue;
			std::string t = base + "/task/" + e->d_name + "/status";
			long v = detail::status_field(t, "voluntary_ctxt_switches");
			long iv = detail::status_field(t, "nonvoluntary_ctxt_switches");
			s.voluntary += v > 0 ? v : 0;
			s.involuntary += iv > 0 ? iv : 0;
			/* schedstat: nanoseconds on the CPU, where stat has 10 ms ticks. */
			std::string ss = base + "/task/" + e->d_name + "/schedstat";
			if (FILE *sf = std::fopen(ss.c_str(), "r")) {
				unsigned long long ns = 0;
				if (std::fscanf(sf, "%llu", &ns) == 1)
					sched_ns += ns;
				std::fclose(sf);
			}
		}
		closedir(d);
	}
	/* Live threads count in nanoseconds in schedstat, exited ones only in stat's
	 * ticks: take schedstat unless stat shows clearly more (a thread has gone). */
	double sched_s = static_cast<double>(sched_ns) / 1e9;
	if (sched_s > 0 && sched_s + 0.02 >= s.cpu_s)
		s.cpu_s = sched_s;
	s.valid = s.threads > 0;
	return s;
}

} // namespace vhostpp::bench
