// runtime/src/log.cpp
// Library setup: logging, fatal errors, debug mode, error category, version.
#include <coev/runtime/log.hpp>
#include <coev/runtime/result.hpp>
#include <coev/runtime/version.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace coev {
namespace {

std::mutex log_mutex;
std::function<void(log_level, std::string_view)>& handler() {
    static std::function<void(log_level, std::string_view)> h;
    return h;
}
std::atomic<int> min_level{int(log_level::warn)};
std::atomic<void (*)(std::string_view)> fatal_handler{nullptr};

bool debug_from_env() noexcept {
    const char* v = std::getenv("COEV_DEBUG");
    return v && *v && *v != '0';
}


const char* level_name(log_level l) noexcept {
    switch (l) {
        case log_level::debug: return "debug";
        case log_level::info: return "info";
        case log_level::warn: return "warn";
        case log_level::error: return "error";
    }
    return "?";
}

class coev_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "coev"; }
    std::string message(int v) const override {
        switch (static_cast<error>(v)) {
            case error::ok: return "success";
            case error::line_too_long: return "line too long";
            case error::no_backend: return "no event backend satisfies the configuration";
            case error::busy: return "another task already waits for this";
            case error::closed: return "closed while waiting";
            case error::unexpected_eof: return "peer closed before the expected bytes arrived";
        }
        return "unknown coev error";
    }
};

}  // namespace

namespace detail {
std::atomic<bool> debug_on{debug_from_env()};
}  // namespace detail

const std::error_category& error_category() noexcept {
    static const coev_category c;
    return c;
}

void set_log_handler(std::function<void(log_level, std::string_view)> h) {
    std::lock_guard lock(log_mutex);
    handler() = std::move(h);
}

void set_log_level(log_level level) noexcept { min_level.store(int(level)); }
log_level get_log_level() noexcept { return log_level(min_level.load()); }

// Set while this thread runs the log handler: what the handler logs itself goes to stderr
// instead of back into the handler (and into the lock this thread already holds).
static thread_local bool in_log_handler = false;

void log(log_level level, std::string_view message) noexcept {
    if (int(level) < min_level.load(std::memory_order_relaxed)) return;
    std::unique_lock lock(log_mutex, std::defer_lock);
    if (!in_log_handler) {
        lock.lock();
        if (handler()) {
            in_log_handler = true;
            try {
                handler()(level, message);
            } catch (...) {
            }
            in_log_handler = false;
            return;
        }
    }
    std::fprintf(stderr, "[coev %s] %.*s\n", level_name(level), int(message.size()),
                 message.data());
}

void set_fatal_handler(void (*h)(std::string_view)) { fatal_handler.store(h); }

void fatal(std::string_view message) noexcept {
    if (auto h = fatal_handler.load()) h(message);
    else std::fprintf(stderr, "[coev fatal] %.*s\n", int(message.size()), message.data());
    std::abort();
}

void set_debug_mode(bool on) noexcept { detail::debug_on.store(on); }

void report_misuse(std::string_view what, const coev::source_location& where) noexcept {
    try {
        std::string line = "misuse: ";
        line += what;
        line += " at ";
        line += where.file_name();
        line += ':';
        line += std::to_string(where.line());
        log(log_level::error, line);
    } catch (...) {
    }
}

std::string_view version() noexcept { return COEV_VERSION_STRING; }
std::uint32_t version_number() noexcept { return COEV_VERSION_NUMBER; }

}  // namespace coev
