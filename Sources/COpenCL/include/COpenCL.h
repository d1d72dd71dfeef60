#ifndef CLNN_COPENCL_H
#define CLNN_COPENCL_H
// CLNN targets the OpenCL 1.2 API: every driver we care about (POCL, rusticl, NVIDIA, AMD, Intel) offers it,
// and it keeps clCreateCommandQueue undeprecated.
#define CL_TARGET_OPENCL_VERSION 120
#if defined(__APPLE__)
#include <OpenCL/opencl.h>
#else
#include <CL/cl.h>
#endif

// The OpenCL entry points CLNN calls are defined in loader.c: each loads the ICD loader (libOpenCL.so.1) with
// dlopen on first use and forwards to it. Without one, clGetPlatformIDs returns CL_PLATFORM_NOT_FOUND_KHR, so a
// machine with no OpenCL at all still runs CLNN on cpu (the binary does not link libOpenCL).

/// Why the OpenCL library could not be loaded (dlerror's text), or NULL when it was loaded or not yet tried.
const char *clnn_opencl_load_error(void);

/// The library that was loaded (its name as given to dlopen), or NULL.
const char *clnn_opencl_library(void);

/// The first OpenCL entry point the loaded library lacked (a library that is not an OpenCL ICD loader), or NULL.
const char *clnn_opencl_missing_symbol(void);

#endif
