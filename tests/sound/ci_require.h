/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/**
 * \file ci_require.h
 * \brief Tests that need root or a program: they fail under CI=true
 * (where tools/setup.sh --tests provides both) and are skipped elsewhere.
 */
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <unistd.h>

namespace sound_test {

/** \brief True under CI=true. */
inline bool in_ci()
{
	const char *ci = std::getenv("CI");
	return ci && std::string(ci) == "true";
}

/** \brief True when running as root; otherwise FAIL under CI, else WARN (skip) with \a why. */
inline bool root_or_fail(const std::string &why)
{
	if (::geteuid() == 0)
		return true;
	if (in_ci())
		FAIL("CI runs as root: " + why);
	WARN("not root, skipped: " + why);
	return false;
}

/** \brief True when \a name is in PATH; otherwise FAIL under CI, else WARN (skip). */
inline bool program_or_fail(const std::string &name)
{
	if (std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0)
		return true;
	if (in_ci())
		FAIL(name + " is missing: tools/setup.sh --tests installs it");
	WARN(name + " is missing; skipped");
	return false;
}

} // namespace sound_test
