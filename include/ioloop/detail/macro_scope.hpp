// ioloop: the internal macros, defined (nlohmann/json's macro_scope): included by
// detail/config.hpp, and again by <ioloop/ssl.hpp> after <ioloop/ioloop.hpp>, whose end
// undefines them (detail/macro_unscope.hpp). No include guard: it is meant to be included
// again; defining a macro again with the same text is allowed.
// IWYU pragma: private
// Keeps a cold path (errors, slow-path frees) out of the hot function that calls it.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define IOLOOP_NOINLINE __declspec(noinline)
#else
#define IOLOOP_NOINLINE
#endif

// Keeps a small hot function inlined where the compiler's budget would call it instead.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define IOLOOP_ALWAYS_INLINE __forceinline
#else
#define IOLOOP_ALWAYS_INLINE inline
#endif

// Asks for a cache line ahead of use: timers fire in deadline order, not memory order.
#if defined(__GNUC__) || defined(__clang__)
#define IOLOOP_PREFETCH(address) __builtin_prefetch(address)
#else
#define IOLOOP_PREFETCH(address) ((void)(address))
#endif

// The version and the default backend name the inline ABI namespace, so translation units
// built with different backend macros fail to link instead of silently breaking the ODR.
#define IOLOOP_ABI_CONCAT_(a, b, c, d) v##a##_##b##_##c##_##d
#define IOLOOP_ABI_CONCAT(a, b, c, d) IOLOOP_ABI_CONCAT_(a, b, c, d)
#define IOLOOP_ABI_TAG                                                                  \
    IOLOOP_ABI_CONCAT(IOLOOP_VERSION_MAJOR, IOLOOP_VERSION_MINOR, IOLOOP_VERSION_PATCH, \
                      IOLOOP_DEFAULT_BACKEND)
#define IOLOOP_NAMESPACE_BEGIN \
    namespace ioloop {         \
    inline namespace IOLOOP_ABI_TAG {
#define IOLOOP_NAMESPACE_END \
    }                        \
    }

