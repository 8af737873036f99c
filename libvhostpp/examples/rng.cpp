/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * vhost-user-rng: a complete virtio-rng device on libvhostpp.
 *
 * With --pattern the bytes are not random but a known sequence: byte k of
 * everything the device has produced since it started is k % 251, so a
 * test can check what a guest read.
 */
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>
#include <iostream>
#include <sys/random.h>
#include <vector>

#include <vhostpp/vhostpp.h>

namespace po = boost::program_options;

class RngDevice : public vhostpp::Device
{
public:
	explicit RngDevice(bool pattern) : pattern_(pattern) {}

	unsigned num_queues() const override { return 1; }

	void queue_kicked(vhostpp::Virtqueue &queue) override
	{
		while (auto chain = queue.pop()) {
			std::vector<uint8_t> bytes(std::min<size_t>(chain->writable_bytes(), 65536));
			fill(bytes);
			queue.push(*chain, static_cast<uint32_t>(chain->write(0, bytes)));
		}
		queue.notify(); /* one notification for the whole batch */
	}

private:
	void fill(std::vector<uint8_t> &bytes)
	{
		if (!pattern_) {
			for (size_t done = 0; done < bytes.size();) {
				ssize_t n = getrandom(bytes.data() + done, bytes.size() - done, 0);
				done += n > 0 ? size_t(n) : 0;
			}
			return;
		}
		for (auto &b : bytes)
			b = static_cast<uint8_t>(produced_++ % 251);
	}

	bool pattern_;
	uint64_t produced_ = 0;
};

int main(int argc, char **argv)
{
	po::options_description opts("vhost-user-rng options");
	opts.add_options()("help,h", "show this help")
		("socket", po::value<std::string>(), "listen on this Unix socket path")
		("socket-fd", po::value<int>(), "serve on this inherited listening socket fd")
		("pattern", "produce the known sequence k % 251 instead of random bytes");
	po::variables_map vm;
	try {
		po::store(po::parse_command_line(argc, argv, opts), vm);
		po::notify(vm);
	} catch (const po::error &e) {
		std::cerr << "vhost-user-rng: " << e.what() << "\n";
		return 2;
	}
	if (vm.count("help")) {
		std::cout << opts;
		return 0;
	}

	boost::asio::io_context io;
	RngDevice device(vm.count("pattern") > 0);
	vhostpp::Server server(io, device);
	try {
		if (vm.count("socket"))
			server.listen(vm["socket"].as<std::string>());
		else if (vm.count("socket-fd"))
			server.listen_fd(vhostpp::UniqueFd(vm["socket-fd"].as<int>()));
		else if (!server.listen_systemd())
			throw std::runtime_error("one of --socket or --socket-fd is required");
	} catch (const std::exception &e) {
		std::cerr << "vhost-user-rng: " << e.what() << "\n";
		return 2;
	}

	boost::asio::signal_set signals(io, SIGINT, SIGTERM);
	signals.async_wait([&](auto, int) {
		server.stop();
		io.stop();
	});
	io.run();
	return 0;
}
