/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file bench_util.h
 * \brief Shared helpers of the benchmark programs: clocks, repetitions,
 * min/median summaries, percentiles and the printing format.
 *
 * Figures on a shared machine are noisy, so every program repeats each
 * measurement and reports the minimum and the median; comparisons are
 * ratios of figures measured side by side in the same run.
 */
#pragma once

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace vhostpp::bench {

/** \brief Seconds on the monotonic clock. */
inline double now_s()
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

/** \brief The \a p-th percentile (0..100) of \a v, nearest rank; 0 for an empty set. */
inline double percentile(std::vector<double> v, double p)
{
	if (v.empty())
		return 0;
	std::sort(v.begin(), v.end());
	size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
	return v[std::min(rank, v.size() - 1)];
}

/** \brief Min and median of a set of repetitions. */
struct Summary {
	double min = 0;
	double median = 0;
	double max = 0;
};

/** \brief Summarise the repetitions in \a v. */
inline Summary summarise(const std::vector<double> &v)
{
	if (v.empty())
		return {};
	return {*std::min_element(v.begin(), v.end()), percentile(v, 50),
		*std::max_element(v.begin(), v.end())};
}

/** \brief A flag's value from argv ("--name value" or "--name=value"), else \a fallback. */
inline std::string arg(int argc, char **argv, std::string_view name, std::string fallback = "")
{
	for (int i = 1; i < argc; i++) {
		std::string_view a = argv[i];
		if (a == name && i + 1 < argc)
			return argv[i + 1];
		if (a.size() > name.size() && a.substr(0, name.size()) == name &&
		    a[name.size()] == '=')
			return std::string(a.substr(name.size() + 1));
	}
	return fallback;
}

/** \brief True when the bare flag \a name is on the command line. */
inline bool has_flag(int argc, char **argv, std::string_view name)
{
	for (int i = 1; i < argc; i++)
		if (argv[i] == name)
			return true;
	return false;
}

/** \brief A numeric flag, exiting with a message naming it when it does not parse. */
inline double num_arg(int argc, char **argv, std::string_view name, double fallback)
{
	std::string s = arg(argc, argv, name);
	if (s.empty())
		return fallback;
	char *end = nullptr;
	double v = std::strtod(s.c_str(), &end);
	if (end == s.c_str() || *end != '\0') {
		std::fprintf(stderr, "%.*s: not a number: %s\n", static_cast<int>(name.size()),
			     name.data(), s.c_str());
		std::exit(2);
	}
	return v;
}

/** \brief The machine line every program prints first: cores, CPU model, load. */
inline void print_machine()
{
	std::string model = "unknown";
	if (FILE *f = std::fopen("/proc/cpuinfo", "r")) {
		char line[512];
		while (std::fgets(line, sizeof line, f)) {
			std::string_view l = line;
			if (l.rfind("model name", 0) == 0) {
				auto colon = l.find(':');
				model = std::string(l.substr(colon + 2));
				if (!model.empty() && model.back() == '\n')
					model.pop_back();
				break;
			}
		}
		std::fclose(f);
	}
	double load[3] = {0, 0, 0};
	if (FILE *f = std::fopen("/proc/loadavg", "r")) {
		if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = load[1] = load[2] = 0;
		std::fclose(f);
	}
	/* What nproc prints: the CPUs this process may run on. */
	cpu_set_t set;
	long cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
	std::printf("machine: nproc %ld, %s, load %.2f %.2f %.2f\n", cores, model.c_str(), load[0],
		    load[1], load[2]);
}

} // namespace vhostpp::bench
