/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "sound_log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace vhost_sound {

spdlog::logger &logger()
{
	/* Function-local static: created once, thread-safe, before any use. */
	static std::shared_ptr<spdlog::logger> instance = [] {
		auto l = spdlog::get("vhost-sound");
		if (!l) {
			l = spdlog::stderr_color_mt("vhost-sound");
			l->set_pattern("[%H:%M:%S.%e] [%n] [%l] %v");
		}
		return l;
	}();
	return *instance;
}

} // namespace vhost_sound
