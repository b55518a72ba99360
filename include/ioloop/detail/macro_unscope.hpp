// ioloop: the internal macros end here (nlohmann/json's macro_unscope), at the end of
// <ioloop/ioloop.hpp> and of <ioloop/ssl.hpp>; IOLOOP_HAS_*, IOLOOP_DEFAULT_BACKEND and the
// version stay. No include guard: it is meant to be included again.
// IWYU pragma: private
#undef IOLOOP_NOINLINE
#undef IOLOOP_ALWAYS_INLINE
#undef IOLOOP_PREFETCH
#undef IOLOOP_NAMESPACE_BEGIN
#undef IOLOOP_NAMESPACE_END
#undef IOLOOP_ABI_TAG
#undef IOLOOP_ABI_CONCAT
#undef IOLOOP_ABI_CONCAT_

