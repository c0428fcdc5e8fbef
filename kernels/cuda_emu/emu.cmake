# emu.cmake - the CUDA backend built as host C++ on the CPU emulation layer
# (kernels/cuda_emu/README.md), included by CMakeLists.txt when -DMTP_CUDA_EMU=ON.
# The .cu files are compiled as C++ against this directory's cuda_runtime.h,
# cuda_bf16.h and cublas_v2.h; MTP_HAVE_CUDA is defined, so the CUDA tests run,
# and MTP_CUDA_EMU tells them they run emulated.
enable_language(CXX)
file(GLOB MTP_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu)
file(GLOB MTP_CUDA_EMU_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda_emu/*.cpp)
set_source_files_properties(${MTP_CUDA_SOURCES} PROPERTIES LANGUAGE CXX COMPILE_OPTIONS "-xc++")
add_library(mtp_cuda_emu OBJECT ${MTP_CUDA_SOURCES} ${MTP_CUDA_EMU_SOURCES})
set_target_properties(mtp_cuda_emu PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON
                      CXX_EXTENSIONS OFF POSITION_INDEPENDENT_CODE ON)
# The emulation's cuda_runtime.h, cuda_bf16.h and cublas_v2.h come first.
target_include_directories(mtp_cuda_emu BEFORE PRIVATE ${CMAKE_SOURCE_DIR}/kernels/cuda_emu)
target_include_directories(mtp_cuda_emu PRIVATE ${CMAKE_SOURCE_DIR})
target_compile_definitions(mtp_cuda_emu PRIVATE MTP_CUDA_EMU=1)
# -ffp-contract=off: no FMA contraction (nvcc --fmad=false); the CUDA
# sources rely on explicit __fmaf_rn. -fno-strict-aliasing: kernels read
# floats and BF16 through vector types. -fno-extern-tls-init: the per-thread
# state (threadIdx, shared memory) has no dynamic initialiser, so reads of it
# need no TLS wrapper call.
target_compile_options(mtp_cuda_emu PRIVATE -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas
                       ${MTP_ARCH_FLAGS} -O2 -g -ffp-contract=off -fno-strict-aliasing
                       -fno-extern-tls-init
                       $<$<BOOL:${MTP_WERROR}>:-Werror>)
if(MTP_SANITIZE OR MTP_FUZZ)
  target_compile_options(mtp_cuda_emu PRIVATE ${MTP_SAN_FLAGS})
endif()
target_sources(mtp PRIVATE $<TARGET_OBJECTS:mtp_cuda_emu>)
target_link_libraries(mtp PUBLIC stdc++)
target_compile_definitions(mtp PUBLIC MTP_HAVE_CUDA=1 MTP_CUDA_EMU=1)
message(STATUS "mtpbench: CUDA backend EMULATED on the CPU (kernels/cuda_emu)")
# The layer's own tests: schedules, divergence reports, checked copies.
set(MTP_EMU_SELFTEST ${CMAKE_SOURCE_DIR}/kernels/cuda_emu/selftest/emu_selftest.cu)
set_source_files_properties(${MTP_EMU_SELFTEST} PROPERTIES LANGUAGE CXX COMPILE_OPTIONS "-xc++")
add_executable(test_cuda_emu_selftest ${MTP_EMU_SELFTEST})
set_target_properties(test_cuda_emu_selftest PROPERTIES CXX_STANDARD 17 LINKER_LANGUAGE CXX)
target_include_directories(test_cuda_emu_selftest BEFORE PRIVATE ${CMAKE_SOURCE_DIR}/kernels/cuda_emu)
target_compile_options(test_cuda_emu_selftest PRIVATE -Wall -Wextra -Wno-unused-parameter
                       -ffp-contract=off -fno-extern-tls-init $<$<BOOL:${MTP_WERROR}>:-Werror>)
if(MTP_SANITIZE OR MTP_FUZZ)
  target_compile_options(test_cuda_emu_selftest PRIVATE ${MTP_SAN_FLAGS})
endif()
target_link_libraries(test_cuda_emu_selftest PRIVATE mtp)
add_test(NAME test_cuda_emu_selftest COMMAND test_cuda_emu_selftest WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
