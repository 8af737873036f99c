/* SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause */
/*
 * vhost-user-rng: a complete virtio-rng device on libvhostpp.
 *
 * With --pattern the bytes are a known sequence instead of random ones:
 * byte k of everything the device produced since it started is k % 251,
 * so a test can check what a guest read.
 */
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>
#include <iostream>
#include <sys/random.h>
#include <vhostpp/vhostpp.h>

class RngDevice : public vhostpp::Device
{
public:
	explicit RngDevice(bool pattern) : pattern_(pattern) {}

	unsigned num_queues() const override { return 1; }

	void queue_kicked(vhostpp::Virtqueue &queue) override
	{
		while (auto chain = queue.pop()) {
			std::vector<uint8_t> bytes(std::min<size_t>(chain->writable_bytes(), 65536));
			if (pattern_) {
				for (auto &b : bytes)
					b = static_cast<uint8_t>(produced_++ % 251);
			} else {
				ssize_t n = getrandom(bytes.data(), bytes.size(), 0);
				bytes.resize(n > 0 ? size_t(n) : 0);
			}
			queue.push(*chain, static_cast<uint32_t>(chain->write(0, bytes)));
		}
		queue.notify(); /* one notification for the whole batch */
	}

private:
	bool pattern_;
	uint64_t produced_ = 0;
};

int main(int argc, char **argv)
{
	namespace po = boost::program_options;
	po::options_description opts("vhost-user-rng options");
	opts.add_options()("help,h", "show this help")
		("socket", po::value<std::string>(), "listen on this Unix socket path")
		("socket-fd", po::value<int>(), "serve on this inherited listening socket")
		("pattern", "produce the known sequence k % 251 instead of random bytes")
		("no-mem-slots", "do not offer CONFIGURE_MEM_SLOTS (lets QEMU 7.2 resume after a reconnect)");
	po::variables_map vm;
	boost::asio::io_context io;
	std::unique_ptr<RngDevice> device;
	std::unique_ptr<vhostpp::Server> server;
	/* Before the socket exists: once it does, the process holds every fd it
	 * will hold while idle (asio's signal pipe included). */
	boost::asio::signal_set signals(io, SIGINT, SIGTERM);
	try {
		po::store(po::parse_command_line(argc, argv, opts), vm);
		if (vm.count("help")) {
			std::cout << opts;
			return 0;
		}
		device = std::make_unique<RngDevice>(vm.count("pattern") > 0);
		vhostpp::ServerOptions options;
		options.offer_mem_slots = vm.count("no-mem-slots") == 0;
		server = std::make_unique<vhostpp::Server>(io, *device, options);
		if (vm.count("socket"))
			server->listen(vm["socket"].as<std::string>());
		else if (vm.count("socket-fd"))
			server->listen_fd(vhostpp::UniqueFd(vm["socket-fd"].as<int>()));
		else if (!server->listen_systemd())
			throw std::runtime_error("one of --socket or --socket-fd is required");
	} catch (const std::exception &e) {
		std::cerr << "vhost-user-rng: " << e.what() << "\n";
		return 2;
	}
	signals.async_wait([&](auto, int) { server->stop(); io.stop(); });
	io.run();
}
