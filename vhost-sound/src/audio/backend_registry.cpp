/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
#include "audio/backend_registry.h"

#include <array>

#include "audio/file/file_backend.h"
#include "audio/null/null_backend.h"

namespace vhost_sound {

namespace {

/* One entry per back-end; a back-end whose library is optional is listed
 * under the macro its meson.build defines. */
const auto kBackends = std::to_array<BackendInfo>({
	null_backend_info(),
	file_backend_info(),
});

} // namespace

std::span<const BackendInfo> backends()
{
	return kBackends;
}

const BackendInfo *find_backend(std::string_view name)
{
	for (const BackendInfo &info : kBackends) {
		if (info.name == name)
			return &info;
	}
	return nullptr;
}

std::string backend_names()
{
	std::string names;
	for (const BackendInfo &info : kBackends) {
		if (!names.empty())
			names += ", ";
		names += info.name;
	}
	return names;
}

} // namespace vhost_sound
