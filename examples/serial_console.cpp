// A serial console, the way a modem or a GPS receiver on /dev/ttyUSB0 is driven: the
// terminal in raw mode at a given speed, each command sent with CR LF, and the answer read
// line by line with a time limit on each line, since a device that says nothing must not
// hang the program.
//   serial_console /dev/ttyUSB0 [--baud 115200] [--timeout-ms 2000] [COMMAND...]
//     sends each COMMAND (or each line of stdin if none) and prints the answers;
//   serial_console
//     demonstrates itself over a pseudo-terminal: a fake device on the master side
//     answers a few commands, one of them with silence.
// POSIX only (termios).
#include <ioloop/ioloop.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace {

// The termios constant for a speed in baud; B0 for one the system does not know.
speed_t speed_of(long baud) {
    switch (baud) {
        case 9600: return B9600;
        case 19200: return B19200;
        case 38400: return B38400;
        case 57600: return B57600;
        case 115200: return B115200;
        case 230400: return B230400;
        default: return B0;
    }
}

// Opens a terminal device for reading and writing, raw (no echo, no line editing, no CR/LF
// translation, 8 bits), at `speed`. O_NOCTTY: it must not become our controlling terminal.
int open_device(const std::string& path, speed_t speed) {
    const int fd = ::open(path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd == -1) throw std::system_error(errno, std::generic_category(), "open " + path);
    termios mode{};
    if (::tcgetattr(fd, &mode) == -1) {
        const int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), path + " is not a terminal");
    }
    ::cfmakeraw(&mode);
    mode.c_cflag |= CLOCAL | CREAD;  // ignore the modem control lines; receiver on
    ::cfsetispeed(&mode, speed);
    ::cfsetospeed(&mode, speed);
    if (::tcsetattr(fd, TCSANOW, &mode) == -1) {
        const int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), "tcsetattr " + path);
    }
    return fd;
}

// "OK\r\n" -> "OK".
std::string_view trimmed(std::string_view line) {
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    return line;
}

// One line from the device, or nothing if none came within `limit`. A read cut short by
// the time limit loses nothing: what arrived stays in the reader for the next line.
ioloop::coro<std::pair<bool, std::string>> line_within(ioloop::stream_reader& device,
                                                       std::chrono::milliseconds limit) {
    try {
        std::string line = co_await ioloop::wait_for(
            [](ioloop::stream_reader& r) -> ioloop::coro<std::string> {
                co_return co_await r.readline();
            }(device),
            limit);
        co_return std::pair<bool, std::string>(true, std::move(line));
    } catch (const ioloop::timeout_error&) {
        co_return std::pair<bool, std::string>(false, std::string());
    }
}

// Sends one command and prints its answer, up to the final "OK" or "ERROR", a time limit
// on each line. False once the device has closed.
ioloop::coro<bool> converse(ioloop::stream_reader& device_in, ioloop::stream_writer& device_out,
                            std::string command, std::chrono::milliseconds limit) {
    std::printf("> %s\n", command.c_str());
    device_out.write(command + "\r\n");
    co_await device_out.drain();  // a slow device (9600 baud) takes 1 ms a byte
    for (;;) {
        auto [got, line] = co_await line_within(device_in, limit);
        if (!got) {
            std::printf("  (no answer within %lld ms)\n", static_cast<long long>(limit.count()));
            co_return true;
        }
        if (line.empty()) {
            std::printf("  (the device closed)\n");
            co_return false;
        }
        const std::string_view text = trimmed(line);
        std::printf("< %.*s\n", static_cast<int>(text.size()), text.data());
        if (text == "OK" || text == "ERROR") co_return true;
    }
}

// The pretend device on the pseudo-terminal's master: it answers AT commands, a GPS fix
// in two pieces (one line split across reads, as a slow serial link delivers it), and
// nothing at all to AT+SLEEP.
ioloop::coro<void> fake_device(int master) {
    ioloop::stream_reader in = co_await ioloop::connect_read_pipe(::dup(master));
    ioloop::stream_writer out = co_await ioloop::connect_write_pipe(master);
    for (;;) {
        const std::string line = co_await in.readline();
        if (line.empty()) break;  // the console side is closed
        const std::string_view command = trimmed(line);
        if (command == "AT") {
            out.write("OK\r\n");
        } else if (command == "ATI") {
            out.write("ioloop fake GPS 1.0\r\nOK\r\n");
        } else if (command == "AT+GPS?") {
            out.write("$GPGGA,123519,4807.038,N,");
            co_await out.drain();
            co_await ioloop::sleep(50ms);
            out.write("01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\nOK\r\n");
        } else if (command == "AT+SLEEP") {
            // Asleep: no answer.
        } else {
            out.write("ERROR\r\n");
        }
        co_await out.drain();
    }
}

struct options {
    std::string device;  // empty: the demo
    speed_t speed = B115200;
    std::chrono::milliseconds limit{2000};
    std::vector<std::string> commands;
};

ioloop::coro<int> console(options o) {
    ioloop::task<void> device_task;
    int master = -1;
    if (o.device.empty()) {
        master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master == -1 || ::grantpt(master) == -1 || ::unlockpt(master) == -1) {
            throw std::system_error(errno, std::generic_category(), "posix_openpt");
        }
        o.device = ::ptsname(master);
        o.limit = 500ms;
        o.commands = {"AT", "ATI", "AT+GPS?", "AT+SLEEP", "AT+FOO"};
        std::printf("serial_console: demo over a pseudo-terminal, a fake GPS on its master\n");
    }
    const int fd = open_device(o.device, o.speed);
    if (master != -1) device_task = ioloop::create_task(fake_device(master));
    std::printf("serial_console: %s open, raw, %lld ms per line\n",
                o.device.rfind("/dev/pts/", 0) == 0 ? "the pseudo-terminal" : o.device.c_str(),
                static_cast<long long>(o.limit.count()));
    // One descriptor each way: the transports own theirs.
    ioloop::stream_reader device_in = co_await ioloop::connect_read_pipe(::dup(fd));
    ioloop::stream_writer device_out = co_await ioloop::connect_write_pipe(fd);
    bool open = true;
    if (!o.commands.empty()) {
        for (std::string& command : o.commands) {
            if (!(open = co_await converse(device_in, device_out, std::move(command), o.limit)))
                break;
        }
    } else {
        // Commands from stdin (a terminal or a pipe), one a line.
        ioloop::stream_reader commands = co_await ioloop::connect_read_pipe(::dup(STDIN_FILENO));
        for (std::string line; open && !(line = co_await commands.readline()).empty();) {
            open = co_await converse(device_in, device_out, std::string(trimmed(line)), o.limit);
        }
    }
    device_out.close();
    co_await device_out.wait_closed();
    if (device_task) {
        device_task.cancel();  // its reader holds the master until the loop closes
        try {
            co_await device_task;
        } catch (const ioloop::cancelled_error&) {
        }
    }
    std::printf("serial_console: done\n");
    co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if ((arg == "--baud" || arg == "--timeout-ms") && i + 1 < argc) {
            const long value = std::strtol(argv[++i], nullptr, 10);
            if (arg == "--timeout-ms") {
                o.limit = std::chrono::milliseconds(value);
            } else if ((o.speed = speed_of(value)) == B0) {
                std::fprintf(stderr, "serial_console: %ld baud is not supported\n", value);
                return 2;
            }
        } else if (o.device.empty() && arg.rfind("--", 0) != 0) {
            o.device = std::string(arg);
        } else if (!o.device.empty()) {
            o.commands.emplace_back(arg);
        } else {
            std::fprintf(stderr,
                         "usage: serial_console [DEVICE [--baud N] [--timeout-ms N] [COMMAND...]]\n");
            return 2;
        }
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a pipe
    try {
        return ioloop::run(console(std::move(o)));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "serial_console: %s\n", e.what());
        return 1;
    }
}
