// ioloop: connect_errors, what a connect call throws when no address connected and
// connect_options::all_errors is set: every address tried, with its error (asyncio's
// ExceptionGroup of OSErrors). It is a std::system_error too, whose code is the last
// attempt's, so code that catches one failure catches this.
#ifndef IOLOOP_NET_CONNECT_ERRORS_HPP
#define IOLOOP_NET_CONNECT_ERRORS_HPP

#include "ioloop/detail/config.hpp"
#include "ioloop/detail/message.hpp"
#include "ioloop/net/endpoint.hpp"

#include <cstddef>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

IOLOOP_NAMESPACE_BEGIN

// One address's failed attempt.
struct connect_failure {
    endpoint address;
    std::error_code code;
    std::string message;  // the attempt's what(), e.g. "connect to 127.0.0.1:80: ..."
};

class connect_errors : public std::system_error {
public:
    // `failures` is not empty.
    connect_errors(std::vector<connect_failure> failures, const char* what)
        : std::system_error(failures.back().code, describe(failures, what)),
          failures_(std::move(failures)) {}

    // In the order the attempts were started.
    const std::vector<connect_failure>& errors() const noexcept { return failures_; }

private:
    static std::string describe(const std::vector<connect_failure>& failures, const char* what) {
        std::string text = detail::concat(
            {what, " failed (", detail::decimal(static_cast<long long>(failures.size())),
             failures.size() == 1 ? " address): " : " addresses): "});
        for (std::size_t i = 0; i < failures.size(); ++i) {
            if (i != 0) text += "; ";
            text += failures[i].message;
        }
        return text;
    }

    std::vector<connect_failure> failures_;
};

IOLOOP_NAMESPACE_END

#endif
