/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * Runs a fuzz target without libFuzzer: every file named on the command
 * line, or found in a directory named there, goes through
 * LLVMFuzzerTestOneInput once. The normal build replays the checked-in
 * seeds and regression inputs this way on every test run; a crash, a
 * sanitizer report or an fd leak fails the test.
 */
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace {

bool replay(const std::filesystem::path &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in) {
		std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
		return false;
	}
	const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
	LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
	return true;
}

} // namespace

int main(int argc, char *argv[])
{
	size_t inputs = 0;
	bool ok = true;
	for (int i = 1; i < argc; i++) {
		const std::filesystem::path arg(argv[i]);
		if (std::filesystem::is_directory(arg)) {
			std::vector<std::filesystem::path> files;
			for (const auto &entry : std::filesystem::directory_iterator(arg))
				if (entry.is_regular_file())
					files.push_back(entry.path());
			std::sort(files.begin(), files.end());
			for (const auto &file : files) {
				ok = replay(file) && ok;
				inputs++;
			}
		} else if (std::filesystem::exists(arg)) {
			ok = replay(arg) && ok;
			inputs++;
		} else {
			std::fprintf(stderr, "replay: %s does not exist\n", argv[i]);
			ok = false;
		}
	}
	std::printf("replayed %zu inputs\n", inputs);
	/* A corpus that went missing must not pass as "nothing crashed". */
	return ok && inputs > 0 ? 0 : 1;
}
