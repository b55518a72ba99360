# CMake toolchain: Windows x86-64 programs built with Debian's mingw-w64 (the posix thread
# model, so std::thread and std::mutex work) and run under Wine.
#   cmake -S . -B build-windows -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake
# Packages: g++-mingw-w64-x86-64-posix, and wine + wine64 to run what it builds.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(IOLOOP_MINGW_PREFIX x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${IOLOOP_MINGW_PREFIX}-gcc-posix)
set(CMAKE_CXX_COMPILER ${IOLOOP_MINGW_PREFIX}-g++-posix)
set(CMAKE_RC_COMPILER ${IOLOOP_MINGW_PREFIX}-windres)

# Everything linked in (libstdc++, libgcc, winpthread): a built .exe needs no DLL beside it,
# neither under Wine nor on a Windows machine it is copied to.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")

# Libraries and headers come from the cross toolchain's own root only; the build host's
# programs (python3, bash) are still found on the host. The test suite finds doctest, which
# is header-only, on the host on purpose (tests/CMakeLists.txt).
set(CMAKE_FIND_ROOT_PATH /usr/${IOLOOP_MINGW_PREFIX})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# CTest (and add_test commands that name a target) run each .exe through Wine.
# Without Wine installed yet the plain name stays, found on PATH when the tests run.
find_program(IOLOOP_WINE wine)
if(IOLOOP_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${IOLOOP_WINE})
else()
  set(CMAKE_CROSSCOMPILING_EMULATOR wine)
endif()
